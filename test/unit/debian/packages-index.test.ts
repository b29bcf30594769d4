import { spawnSync } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { binaryKey, listPackagesIndexes, lookupIndexedBinaries, scanPackagesIndex, type IndexedBinary } from '../../../debian/packages-index.js'
import { makeTempDir } from '../../utils/tmp.js'

const A = 'a'.repeat(64)
const B = 'b'.repeat(64)
const INDEX = `Package: hello
Version: 2.10-3
Installed-Size: 280
Maintainer: Someone <x@example.org>
Architecture: amd64
Description: example package
Filename: pool/main/h/hello/hello_2.10-3_amd64.deb
Size: 56000
SHA256: ${A}

Package: mount
Source: util-linux (2.38.1-5)
Version: 2.38.1-5+b1
Architecture: amd64
Filename: pool/main/u/util-linux/mount_2.38.1-5+b1_amd64.deb
Size: 134000
SHA256: ${B}
`

describe('Packages index', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir()))
  afterEach(async () => cleanup())

  it('finds only the wanted package/version/arch', () => {
    const found = new Map<string, IndexedBinary[]>()
    const wanted = new Set([binaryKey({ package: 'mount', version: '2.38.1-5+b1', architecture: 'amd64' }), 'hello 9.9 amd64'])
    scanPackagesIndex(INDEX, 'idx', wanted, found)
    expect([...found.keys()]).toEqual(['mount 2.38.1-5+b1 amd64'])
    expect(found.get('mount 2.38.1-5+b1 amd64')).toEqual([
      { sha256: B, size: 134000, filename: 'pool/main/u/util-linux/mount_2.38.1-5+b1_amd64.deb', source: 'util-linux (2.38.1-5)', index: 'idx', indexes: ['idx'] }
    ])
  })

  it('reads plain and compressed indexes, and reports two different files under one name', async () => {
    await writeFile(join(dir, 'mirror_dists_x_main_binary-amd64_Packages'), INDEX)
    await writeFile(join(dir, 'other_dists_y_main_binary-amd64_Packages.gz'), gzipSync(INDEX.replace(A, 'c'.repeat(64))))
    await writeFile(join(dir, 'mirror_dists_x_InRelease'), 'not an index')
    expect((await listPackagesIndexes(dir)).map((p) => p.slice(dir.length + 1))).toEqual([
      'mirror_dists_x_main_binary-amd64_Packages',
      'other_dists_y_main_binary-amd64_Packages.gz'
    ])
    if (spawnSync('/usr/lib/apt/apt-helper', ['cat-file', '/dev/null']).status !== 0) return console.log('skipped: apt-helper not available')
    const found = await lookupIndexedBinaries(new Set(['hello 2.10-3 amd64', 'mount 2.38.1-5+b1 amd64']), { listsDir: dir })
    expect(found.get('hello 2.10-3 amd64')?.map((e) => e.sha256)).toEqual([A, 'c'.repeat(64)])
    expect(found.get('mount 2.38.1-5+b1 amd64')?.map((e) => e.sha256)).toEqual([B]) // same file in both: once
    expect(found.get('mount 2.38.1-5+b1 amd64')?.[0]?.indexes?.map((p) => p.slice(dir.length + 1))).toEqual(['mirror_dists_x_main_binary-amd64_Packages', 'other_dists_y_main_binary-amd64_Packages.gz'])
  })

  it('a missing lists directory is no indexes, not an error', async () => {
    expect(await listPackagesIndexes(join(dir, 'nope'))).toEqual([])
  })
})
