import { describe, expect, it } from 'vitest'
import type { BinaryPackage } from '../../../../../node/rebuild/debian/archive.js'
import { compareWithArchive } from '../../../../../node/rebuild/debian/debian-builder.js'
import { debianSourcePurl } from '../../../../../debian/binary-package.js'
import type { RebuildArtifact } from '../../../../../node/rebuild/rebuild-types.js'

const H = (c: string): string => c.repeat(64)

function ours(name: string, sha256: string): RebuildArtifact {
  return { name, sha256, size: 1, path: `/out/${name}` }
}

function archived(name: string, version: string, architecture: string, sha256: string, binNmu?: string, ext = 'deb'): BinaryPackage {
  const filename = `pool/main/h/hello/${name}_${version}_${architecture}.${ext}`
  const mirror = 'http://deb.debian.org/debian'
  return { name, version, mirror, architecture, sourceVersion: version.replace(/\+b\d+$/, ''), binNmu, filename, sha256, size: 1 }
}

describe('comparing rebuilt .debs with the archive', () => {
  it('reproduced: every .deb equals the archive file of the same name, none missing', () => {
    const c = compareWithArchive(
      [ours('hello_2.10-3_amd64.deb', H('a')), ours('hello-doc_2.10-3_all.deb', H('b'))],
      [archived('hello', '2.10-3', 'amd64', H('a')), archived('hello-doc', '2.10-3', 'all', H('b'))]
    )
    expect(c.reproduced).toBe(true)
    expect(c.upstream).toEqual([
      { name: 'hello_2.10-3_amd64.deb', sha256: H('a') },
      { name: 'hello-doc_2.10-3_all.deb', sha256: H('b') }
    ])
  })

  it('a bit-identical rebuild that also builds a .udeb is reproduced (udebs come from the debian-installer index)', () => {
    const c = compareWithArchive(
      [ours('debian-archive-keyring_2023.3+deb12u1_all.deb', H('a')), ours('debian-archive-keyring-udeb_2023.3+deb12u1_all.udeb', H('b'))],
      [
        archived('debian-archive-keyring', '2023.3+deb12u1', 'all', H('a')),
        archived('debian-archive-keyring-udeb', '2023.3+deb12u1', 'all', H('b'), undefined, 'udeb')
      ]
    )
    expect(c.reproduced).toBe(true)
    expect(c.upstream.map((u) => u.name)).toEqual(['debian-archive-keyring_2023.3+deb12u1_all.deb', 'debian-archive-keyring-udeb_2023.3+deb12u1_all.udeb'])
    // Without the udeb index the same rebuild would be a mismatch: that is what it was before.
    const withoutUdebs = compareWithArchive(
      [ours('debian-archive-keyring_2023.3+deb12u1_all.deb', H('a')), ours('debian-archive-keyring-udeb_2023.3+deb12u1_all.udeb', H('b'))],
      [archived('debian-archive-keyring', '2023.3+deb12u1', 'all', H('a'))]
    )
    expect(withoutUdebs.noUpstream).toEqual(['debian-archive-keyring-udeb_2023.3+deb12u1_all.udeb'])
  })

  it('a rebuilt binNMU (+bN in our file name) compares with the archive file of that name', () => {
    const c = compareWithArchive([ours('sl_5.02-1+b1_amd64.deb', H('a'))], [archived('sl', '5.02-1+b1', 'amd64', H('a'), '+b1')])
    expect(c.reproduced).toBe(true)
    expect(c.binNmu).toEqual([])
  })

  it('mismatch: a digest differs', () => {
    const c = compareWithArchive([ours('hello_2.10-3_amd64.deb', H('a'))], [archived('hello', '2.10-3', 'amd64', H('c'))])
    expect(c.reproduced).toBe(false)
    expect(c.differing.map((d) => d.artifact.name)).toEqual(['hello_2.10-3_amd64.deb'])
  })

  it('mismatch: the archive only has a binNMU of the package', () => {
    const c = compareWithArchive([ours('hello_2.10-3_amd64.deb', H('a'))], [archived('hello', '2.10-3+b1', 'amd64', H('a'), '+b1')])
    expect(c.reproduced).toBe(false)
    expect(c.binNmu).toEqual([{ ours: 'hello_2.10-3_amd64.deb', archive: 'hello_2.10-3+b1_amd64.deb' }])
    expect(c.differing).toEqual([])
    expect(c.missing).toEqual([])
  })

  it('mismatch: produced something the archive lacks, or missed something it has', () => {
    const extra = compareWithArchive([ours('hello_2.10-3_amd64.deb', H('a')), ours('extra_2.10-3_all.deb', H('e'))], [archived('hello', '2.10-3', 'amd64', H('a'))])
    expect(extra.reproduced).toBe(false)
    expect(extra.noUpstream).toEqual(['extra_2.10-3_all.deb'])
    const missing = compareWithArchive([ours('hello_2.10-3_amd64.deb', H('a'))], [archived('hello', '2.10-3', 'amd64', H('a')), archived('hello-doc', '2.10-3', 'all', H('b'))])
    expect(missing.reproduced).toBe(false)
    expect(missing.missing).toEqual(['hello-doc_2.10-3_all.deb'])
    // What we compared with includes the file we did not produce, so the statement is a valid mismatch.
    expect(missing.upstream.map((u) => u.name)).toContain('hello-doc_2.10-3_all.deb')
  })

  it('names the source package with a canonical purl', () => {
    expect(debianSourcePurl('hello', '2.10-3')).toBe('pkg:deb/debian/hello@2.10-3?arch=source')
    expect(debianSourcePurl('libstdc++6', '1:12.2-1')).toBe('pkg:deb/debian/libstdc%2B%2B6@1:12.2-1?arch=source')
  })
})
