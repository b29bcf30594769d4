import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { BinaryPackage, SourcePackage } from '../../../../../node/rebuild/debian/archive.js'
import {
  exactRepositoryLines,
  fileRepositoryDirs,
  findOfficialBuildinfo,
  officialMismatch,
  parseBuildinfo,
  poolPrefix,
  versionDifferences
} from '../../../../../node/rebuild/debian/faithful.js'
import { makeTempDir } from '../../../../utils/tmp.js'

const H = (c: string): string => c.repeat(64)
const MIRROR = 'http://deb.debian.org/debian'

const OFFICIAL = `-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

Format: 1.0
Source: sl
Binary: sl
Architecture: amd64
Version: 5.02-1+b1
Binary-Only-Changes:
 sl (5.02-1+b1) sid; urgency=low, binary-only=yes
 .
   * Binary-only non-maintainer upload for amd64; no source changes.
 .
  -- amd64 / i386 Build Daemon <buildd@example.org>  Wed, 07 Aug 2019 06:15:10 +0000
Checksums-Sha256:
 ${H('a')} 14000 sl_5.02-1+b1_amd64.deb
 ${H('d')} 9000 sl-dbgsym_5.02-1+b1_amd64.deb
Build-Origin: Debian
Build-Architecture: amd64
Build-Date: Wed, 07 Aug 2019 06:15:30 +0000
Build-Path: /build/sl-abc/sl-5.02
Installed-Build-Depends:
 gcc-8 (= 8.3.0-19),
 libc6:amd64 (= 2.28-10),
 libncurses-dev (= 6.1+20190803-1)
Environment:
 DEB_BUILD_OPTIONS="parallel=4"
 LC_ALL="POSIX"
 PATH="/evil"
 SOURCE_DATE_EPOCH="1565158510"
-----BEGIN PGP SIGNATURE-----

iQ==
-----END PGP SIGNATURE-----
`

const src: SourcePackage = {
  name: 'sl',
  version: '5.02-1',
  mirror: MIRROR,
  directory: 'pool/main/s/sl',
  files: [{ name: 'sl_5.02-1.dsc', sha256: H('e'), size: 1 }],
  dsc: { name: 'sl_5.02-1.dsc', sha256: H('e'), size: 1 }
}
const nmu: BinaryPackage = {
  name: 'sl',
  version: '5.02-1+b1',
  mirror: MIRROR,
  architecture: 'amd64',
  sourceVersion: '5.02-1',
  binNmu: '+b1',
  filename: 'pool/main/s/sl/sl_5.02-1+b1_amd64.deb',
  sha256: H('a'),
  size: 14000
}

describe('official .buildinfo', () => {
  it('reads exact versions, environment (not PATH), build path and the binNMU entry', () => {
    const bi = parseBuildinfo(OFFICIAL, 'sl_5.02-1+b1_amd64.buildinfo')
    expect(bi.installed).toEqual([
      { name: 'gcc-8', arch: undefined, version: '8.3.0-19' },
      { name: 'libc6', arch: 'amd64', version: '2.28-10' },
      { name: 'libncurses-dev', arch: undefined, version: '6.1+20190803-1' }
    ])
    expect(bi.environment).toEqual({ DEB_BUILD_OPTIONS: 'parallel=4', LC_ALL: 'POSIX', SOURCE_DATE_EPOCH: '1565158510' })
    expect(bi.buildPath).toBe('/build/sl-abc/sl-5.02')
    expect(bi.architectures).toEqual(['amd64'])
    expect(bi.binaryOnlyChanges).toBe(
      'sl (5.02-1+b1) sid; urgency=low, binary-only=yes\n\n  * Binary-only non-maintainer upload for amd64; no source changes.\n\n -- amd64 / i386 Build Daemon <buildd@example.org>  Wed, 07 Aug 2019 06:15:10 +0000'
    )
    expect(exactRepositoryLines({ buildinfoSources: [], repositories: ['deb https://snapshot.example/{build_date}/ {suite} main'] }, bi, 'bookworm')).toEqual([
      'deb https://snapshot.example/20190807T061530Z/ bookworm main'
    ])
    expect(() => parseBuildinfo('Format: 1.0\nSource: x\nVersion: 1\nInstalled-Build-Depends:\n gcc (>= 8)\n', 'x')).toThrow(/name \(= version\)/)
  })

  it('is the archive build only when the archive publishes the files it lists with the same digests', () => {
    const bi = parseBuildinfo(OFFICIAL, 'x.buildinfo')
    expect(officialMismatch(bi, src, [nmu], 'amd64')).toBeUndefined() // the dbgsym is skipped
    expect(officialMismatch(bi, src, [{ ...nmu, sha256: H('b') }], 'amd64')).toMatch(/not the archive's build/)
    expect(officialMismatch(bi, src, [], 'amd64')).toMatch(/lists none/)
    expect(officialMismatch(bi, { ...src, version: '5.02-2' }, [nmu], 'amd64')).toMatch(/not sl 5.02-2/)
    expect(officialMismatch(bi, { ...src, version: '1.0-1' }, [nmu], 'amd64')).toMatch(/not sl 1.0-1/)
    expect(officialMismatch(bi, src, [nmu], 'arm64')).toMatch(/built on amd64/)
  })

  it('checks every listed version against dpkg-query output', () => {
    const bi = parseBuildinfo(OFFICIAL, 'x')
    const q = 'gcc-8 8.3.0-19 ii \nlibc6 2.36-9 ii \nlibncurses-dev 6.1+20190803-1 rc \n'
    expect(versionDifferences(bi.installed, q)).toEqual(['libc6 2.28-10 (have 2.36-9)', 'libncurses-dev 6.1+20190803-1 (not installed)'])
    expect(versionDifferences(bi.installed, 'gcc-8 8.3.0-19 ii\nlibc6 2.28-10 ii\nlibncurses-dev 6.1+20190803-1 ii\n')).toEqual([])
  })

  it('names the file: repositories to bind into the build root', () => {
    expect(fileRepositoryDirs(['deb [trusted=yes] file:/srv/repo ./', 'deb file:///srv/b bookworm main', 'deb http://x/debian sid main'])).toEqual(['/srv/repo', '/srv/b'])
    expect(poolPrefix('libtry-tiny-perl')).toBe('libt')
    expect(poolPrefix('sl')).toBe('s')
  })
})

describe('finding the official .buildinfo', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let server: Server | undefined
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir()))
  afterEach(async () => {
    await new Promise((r) => (server === undefined ? r(undefined) : server.close(r)))
    server = undefined
    await cleanup()
  })

  it('skips an unreachable service quickly, with a note, and takes the binNMU version from a directory', async () => {
    await writeFile(join(dir, 'sl_5.02-1+b1_amd64.buildinfo'), OFFICIAL)
    const notes: string[] = []
    const config = { buildinfoSources: ['http://127.0.0.1:9/{prefix}/{source}_{version}_{arch}.buildinfo', dir], repositories: [] }
    const bi = await findOfficialBuildinfo(src, [nmu], 'amd64', config, notes)
    expect(bi?.uri).toBe('sl_5.02-1+b1_amd64.buildinfo')
    expect(notes).toEqual([expect.stringMatching(/^127\.0\.0\.1:9 unreachable/)])
  })

  it('fetches over HTTP (loopback), treating 404 as absent', async () => {
    const asked: string[] = []
    server = createServer((req, res) => {
      asked.push(req.url ?? '')
      if (req.url === '/s/sl/sl_5.02-1_all.buildinfo') res.end(OFFICIAL.replace('5.02-1+b1', '5.02-1'))
      else res.writeHead(404).end()
    })
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r))
    const port = (server.address() as AddressInfo).port
    const notes: string[] = []
    const config = { buildinfoSources: [`http://127.0.0.1:${port}/{prefix}/{source}/{source}_{version}_{arch}.buildinfo`], repositories: [] }
    const bi = await findOfficialBuildinfo(src, [], 'amd64', config, notes)
    expect(bi?.version).toBe('5.02-1')
    expect(asked).toEqual(['/s/sl/sl_5.02-1_amd64.buildinfo', '/s/sl/sl_5.02-1_all.buildinfo'])
    const none = await findOfficialBuildinfo({ ...src, name: 'hello' }, [], 'amd64', config, notes)
    expect(none).toBeUndefined()
    expect(notes.at(-1)).toMatch(/no official .buildinfo for hello/)
  })
})
