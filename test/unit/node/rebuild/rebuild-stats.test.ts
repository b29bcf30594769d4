/**
 * rbq stats numbers against a real LevelDB store holding known attestations signed with test
 * keys; the suite scope against the real bookworm Sources indexes (shared test cache).
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTrustGraph } from '../../../../node/consensus/index.js'
import { Store } from '../../../../node/db/store.js'
import { openArchive } from '../../../../node/rebuild/debian/archive.js'
import { archiveSuites, networkStats, packageState } from '../../../../node/rebuild/rebuild-stats.js'
import type { AttestationFrame } from '../../../../protocol/index.js'
import { makeTempDir } from '../../../utils/tmp.js'
import { attest, key, NOW, policy } from '../consensus/fixtures.js'

const A = key('stats alpha')
const B = key('stats beta')
const C = key('stats gamma')
const src = (name: string, version: string) => `pkg:deb/debian/${name}@${version}?arch=source`

/** The known store: see the expectations below for what each package is. */
function knownFrames(): AttestationFrame[] {
  return [
    // hello: two keys reproduced 2.10-3; an older version (2.10-2) is superseded.
    attest(A, { seq: 1, pkg: src('hello', '2.10-3') }),
    attest(B, { seq: 1, pkg: src('hello', '2.10-3') }),
    attest(A, { seq: 2, pkg: src('hello', '2.10-2'), outcome: 'mismatch' }),
    // libfoo: both got other bytes (A today's toolchain, B the official environment).
    attest(A, { seq: 3, pkg: src('libfoo', '1.0-1'), outcome: 'mismatch', diff: { tags: ['build-id', 'timestamps'], summary: 'x' } }),
    attest(B, { seq: 2, pkg: src('libfoo', '1.0-1'), outcome: 'mismatch', environment: 'faithful', diff: { tags: ['build-id'], summary: 'x' } }),
    // bar: A reproduced, then (latest seq) got other bytes with no cause tag.
    attest(A, { seq: 4, pkg: src('bar', '1.0'), outcome: 'reproduced' }),
    attest(A, { seq: 5, pkg: src('bar', '1.0'), outcome: 'mismatch' }),
    // baz: disputed.
    attest(A, { seq: 6, pkg: src('baz', '2'), outcome: 'reproduced' }),
    attest(C, { seq: 1, pkg: src('baz', '2'), outcome: 'mismatch', diff: { tags: ['locale'], summary: 'x' } }),
    // qux: failed.
    attest(B, { seq: 3, pkg: src('qux', '3'), outcome: 'failed' }),
    // Not counted: a binary purl, another distribution, another type.
    attest(C, { seq: 2, pkg: 'pkg:deb/debian/hello@2.10-3?arch=amd64' }),
    attest(C, { seq: 3, pkg: 'pkg:deb/ubuntu/hello@2.10-3?arch=source' }),
    attest(C, { seq: 4, pkg: 'pkg:generic/hello@1.0' })
  ]
}

let dir: string
let cleanup: () => Promise<void>
let store: Store

beforeAll(async () => {
  ;({ dir, cleanup } = await makeTempDir('rbq-stats-'))
  store = await Store.open(join(dir, 'db'))
  const outcomes = await store.putFrames(knownFrames())
  expect(outcomes.every((o) => o.status === 'stored')).toBe(true)
})

afterAll(async () => {
  await store.close()
  await cleanup()
})

describe('networkStats', () => {
  it('counts source packages, parties, outcomes and cause tags of the newest version', async () => {
    const s = await networkStats(store, { distribution: 'debian' })
    expect(s.suite).toBeNull()
    expect(s.packages).toEqual({ rebuilt: 5, reproduced: 1, unreproducible: 2, disputed: 1, failed: 1, built: 0 })
    expect(s.versionsSkipped).toBe(1)
    expect(s.parties).toEqual({ keys: 3, byCount: [{ parties: 1, packages: 2 }, { parties: 2, packages: 3 }] })
    expect(s.trustedParties).toBeNull()
    expect(s.claims).toEqual({ reproduced: 3, mismatch: 4, failed: 1, built: 0 })
    expect(s.unreproducible).toEqual({
      faithful: 1,
      current: 3,
      untagged: 1,
      causes: [{ tag: 'build-id', packages: 1 }, { tag: 'locale', packages: 1 }, { tag: 'timestamps', packages: 1 }]
    })
    expect(s.attestations).toBe(9)
  })

  it('counts parties under a policy: keys it does not trust are no party', async () => {
    const graph = buildTrustGraph({ policy: policy({ threshold: 2, roots: [{ name: 'alpha', key: A }, { name: 'beta', key: B }] }), now: NOW })
    const s = await networkStats(store, { distribution: 'debian', buildersFor: (p) => graph.buildersFor(p) })
    expect(s.trustedParties).toEqual({ byCount: [{ parties: 1, packages: 3 }, { parties: 2, packages: 2 }] })
  })

  it('another distribution counts its own purls; a bad name is a usage error', async () => {
    const s = await networkStats(store, { distribution: 'ubuntu' })
    expect(s.packages.rebuilt).toBe(1)
    expect(s.parties.keys).toBe(1)
    await expect(networkStats(store, { distribution: '../x' })).rejects.toMatchObject({ code: 'USAGE' })
  })

  it('package state from the keys\' latest outcomes', () => {
    expect(packageState([{ outcome: 'built' }, { outcome: 'failed' }])).toBe('built')
    expect(packageState([{ outcome: 'failed' }])).toBe('failed')
    expect(packageState([{ outcome: 'reproduced' }, { outcome: 'failed' }])).toBe('reproduced')
  })
})

describe('suite scope against the real bookworm indexes', () => {
  it('counts the version bookworm lists, not a newer one it does not', async () => {
    const cacheDir = process.env.RBQ_DEBIAN_TEST_CACHE!
    const real = (await (await openArchive({ cacheDir })).sourcePackage('base-files')).version
    const { dir: d, cleanup: c } = await makeTempDir('rbq-stats-suite-')
    const s2 = await Store.open(join(d, 'db'))
    try {
      await s2.putFrames(
[attest(A, { seq: 1, pkg: src('base-files', real) }), attest(A, { seq: 2, pkg: src('base-files', '99.0'), outcome: 'mismatch' })])
      const all = await networkStats(s2, { distribution: 'debian' })
      expect(all.packages).toMatchObject({ rebuilt: 1, unreproducible: 1 }) // 99.0 is the newest
      const suite = await archiveSuites({ cacheDir })('bookworm')
      expect(suite.describe).toContain('bookworm')
      const scoped = await networkStats(s2, { distribution: 'debian', suite })
      expect(scoped.suite).toBe('bookworm')
      expect(scoped.packages).toMatchObject({ rebuilt: 1, reproduced: 1, unreproducible: 0 })
      expect(scoped.versionsSkipped).toBe(1)
    } finally {
      await s2.close()
      await c()
    }
  })
})
