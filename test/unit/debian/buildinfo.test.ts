import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { canonicalBuildinfo, inputsDigest } from '../../../debian/buildinfo.js'

// Shape of what dpkg-genbuildinfo 1.21 writes for `dpkg-buildpackage -b` (trimmed).
const BUILDINFO = `Format: 1.0
Source: base-files
Binary: base-files
Architecture: amd64
Version: 12.4+deb12u15
Checksums-Md5:
 0d863c1ee183c8e006bd085d63f4874f 70936 base-files_12.4+deb12u15_amd64.deb
Checksums-Sha1:
 9127e8b37cee2d2f4be081488fc45c1aa155efb7 70936 base-files_12.4+deb12u15_amd64.deb
Checksums-Sha256:
 3eb1ea6d85488f488cc2a163b98ad640ef88cee4c79287cf14e361aaf6206f47 70936 base-files_12.4+deb12u15_amd64.deb
Build-Origin: Debian
Build-Architecture: amd64
Build-Date: Sun, 22 Nov 2026 02:13:19 +0000
Build-Path: /build/base-files-12.4+deb12u15
Installed-Build-Depends:
 autoconf (= 2.71-3),
 base-files (= 12.4+deb12u15)
Environment:
 DEB_BUILD_OPTIONS="parallel=2"
 LC_ALL="C.UTF-8"
 SOURCE_DATE_EPOCH="1783019100"
`

const SOURCE_FILES = [
  { name: 'base-files_12.4+deb12u15.tar.xz', sha256: '9fb369194365fe9da74621da247ea70884fc3d1d9c063db310764ef0e43c02c5', size: 66280 },
  { name: 'base-files_12.4+deb12u15.dsc', sha256: 'e531274d0c3916dacfe55bbd27148d775b004e1836bc2fbb01549f142d524e8c', size: 1137 }
]

const CANONICAL = `Format: 1.0
Source: base-files
Binary: base-files
Architecture: amd64
Version: 12.4+deb12u15
Build-Origin: Debian
Build-Architecture: amd64
Build-Path: /build/base-files-12.4+deb12u15
Installed-Build-Depends:
 autoconf (= 2.71-3),
 base-files (= 12.4+deb12u15)
Environment:
 DEB_BUILD_OPTIONS="parallel=2"
 LC_ALL="C.UTF-8"
 SOURCE_DATE_EPOCH="1783019100"
Checksums-Sha256:
 e531274d0c3916dacfe55bbd27148d775b004e1836bc2fbb01549f142d524e8c 1137 base-files_12.4+deb12u15.dsc
 9fb369194365fe9da74621da247ea70884fc3d1d9c063db310764ef0e43c02c5 66280 base-files_12.4+deb12u15.tar.xz
`

describe('inputs digest from the .buildinfo', () => {
  it('has the documented canonical form: outputs and Build-Date out, source files in (sorted)', () => {
    expect(canonicalBuildinfo(BUILDINFO, SOURCE_FILES)).toBe(CANONICAL)
    expect(inputsDigest(BUILDINFO, SOURCE_FILES)).toBe(createHash('sha256').update(CANONICAL).digest('hex'))
  })

  it('ignores Build-Date, output checksums, CRLF and a clearsign wrapper', () => {
    const other = BUILDINFO.replace(/^Build-Date: .*$/m, 'Build-Date: Mon, 01 Jan 2035 00:00:00 +0000').replace(/3eb1ea6d/g, '00000000')
    const signed = `-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n${BUILDINFO}-----BEGIN PGP SIGNATURE-----\n\nxx\n-----END PGP SIGNATURE-----\n`
    const digest = inputsDigest(BUILDINFO, SOURCE_FILES)
    expect(inputsDigest(other, SOURCE_FILES)).toBe(digest)
    expect(inputsDigest(BUILDINFO.replace(/\n/g, '\r\n'), SOURCE_FILES)).toBe(digest)
    expect(inputsDigest(signed, SOURCE_FILES)).toBe(digest)
    expect(inputsDigest(BUILDINFO, [...SOURCE_FILES].reverse())).toBe(digest)
  })

  it('changes with anything that is an input', () => {
    const digest = inputsDigest(BUILDINFO, SOURCE_FILES)
    expect(inputsDigest(BUILDINFO.replace('autoconf (= 2.71-3)', 'autoconf (= 2.71-4)'), SOURCE_FILES)).not.toBe(digest)
    expect(inputsDigest(BUILDINFO.replace('/build/base-files', '/tmp/base-files'), SOURCE_FILES)).not.toBe(digest)
    expect(inputsDigest(BUILDINFO.replace('parallel=2', 'parallel=4'), SOURCE_FILES)).not.toBe(digest)
    expect(inputsDigest(BUILDINFO, [{ ...SOURCE_FILES[0]!, sha256: '0'.repeat(64) }, SOURCE_FILES[1]!])).not.toBe(digest)
  })
})
