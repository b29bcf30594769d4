import { join } from 'node:path'
import { Level } from 'level'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Bucket, bucketName, keys, STORE_LAYOUT_VERSION } from '../../../../node/db/buckets.js'
import { checkStore } from '../../../../node/db/check.js'
import { Store } from '../../../../node/db/store.js'
import { StrangerBudget } from '../../../../node/ingest/quota.js'
import { Metrics } from '../../../../node/metrics.js'
import { generateSigningKey, isRbqError } from '../../../../protocol/index.js'
import { makeTempDir } from '../../../utils/tmp.js'
import { attestation, delegation, hex64, PKG } from '../../../utils/frames.js'
import { frameIdsByPackageKey, hasFrame } from '../../../utils/store-reads.js'

const trusted = generateSigningKey()
const own = generateSigningKey()
const strangers = Array.from({ length: 4 }, () => generateSigningKey())

let dir: string
let path: string
let cleanup: () => Promise<void>
let store: Store
beforeEach(async () => {
  ;({ dir, cleanup } = await makeTempDir('rbq-evict-'))
  path = join(dir, 'db')
  store = await Store.open(path)
})
afterEach(async () => {
  await store.close()
  await cleanup()
})

describe('layout 3 indexes', () => {
  it('indexes attestations by (package, signer) and digests by (digest, signer)', async () => {
    const t = attestation(trusted, 1)
    const s = attestation(strangers[0]!, 1, { subjects: [{ name: 'hello_1.deb', sha256: hex64(1) }] })
    const other = attestation(strangers[0]!, 2, { pkg: 'pkg:deb/debian/other@1?arch=source', subjects: [{ name: 'x.deb', sha256: hex64(1) }] })
    await store.putFrames([t, s, other])
    expect(await frameIdsByPackageKey(store, PKG, trusted.publicKey.keyid)).toEqual([t.id])
    expect(await frameIdsByPackageKey(store, PKG, strangers[0]!.publicKey.keyid)).toEqual([s.id])
    const signers = [trusted, strangers[0]!].map((k) => k.publicKey.keyid)
    expect(await store.digestEntries(hex64(1), [trusted.publicKey.keyid])).toEqual([{ id: t.id, keyid: trusted.publicKey.keyid, package: PKG }])
    const entries = (await store.digestEntries(hex64(1), signers)).sort((a, b) => (a.id < b.id ? -1 : 1))
    expect(entries).toEqual(
      [
        { id: t.id, keyid: trusted.publicKey.keyid, package: PKG },
        { id: s.id, keyid: strangers[0]!.publicKey.keyid, package: PKG },
        { id: other.id, keyid: strangers[0]!.publicKey.keyid, package: 'pkg:deb/debian/other@1?arch=source' }
      ].sort((a, b) => (a.id < b.id ? -1 : 1))
    )
    expect((await store.arrivals(undefined, 10)).map((e) => e.id)).toEqual([t.id, s.id, other.id])
    expect(store.usage()).toEqual({ frames: 3, bytes: t.bytes.length + s.bytes.length + other.bytes.length })
  })

  it('reindexes a layout-2 store when opened (clean by rbq db check afterwards)', async () => {
    const frames = [attestation(trusted, 1), attestation(strangers[0]!, 1), delegation(trusted, strangers[1]!)]
    await store.putFrames(frames)
    await store.close()
    // Roll back to what layout 2 wrote: no (package, signer) or arrival entries, empty digest values.
    const raw = new Level<string, string>(path)
    await raw.sublevel(bucketName(Bucket.framesByPackageKey)).clear()
    await raw.sublevel(bucketName(Bucket.frameByArrival)).clear()
    const bySha = raw.sublevel<string, string>(bucketName(Bucket.framesBySha256), { valueEncoding: 'utf8' })
    for (const key of await bySha.keys().all()) await bySha.put(key, '')
    await raw.sublevel<string, number>(bucketName(Bucket.schema), { valueEncoding: 'json' }).put('version', 2)
    await raw.close()
    expect((await checkStore(path)).counts.layout).toBe(1)

    store = await Store.open(path)
    expect(await frameIdsByPackageKey(store, PKG, trusted.publicKey.keyid)).toEqual([frames[0]!.id])
    expect((await store.arrivals(undefined, 10)).length).toBe(3)
    await store.close()
    const report = await checkStore(path)
    expect(report.problems).toEqual([])
    expect(report.frames).toBe(3)
    store = await Store.open(path)
    expect(STORE_LAYOUT_VERSION).toBe(3)
  })
})

describe('Store.evict', () => {
  it('removes frames with every index entry and counter in one batch; seq counters follow', async () => {
    const k = strangers[0]!
    const frames = [1, 2, 3, 4].map((seq) => attestation(k, seq))
    await store.putFrames(frames)
    const [first, , third] = await store.arrivals(undefined, 10)
    const freed = await store.evict([first!, third!])
    expect(freed).toEqual({ frames: 2, bytes: frames[0]!.bytes.length + frames[2]!.bytes.length })
    expect(await store.hasFrames(frames.map((f) => f.id))).toEqual([false, true, false, true])
    expect(await store.keyStats(k.publicKey.keyid)).toMatchObject({ frames: 2, maxSeq: 4, contiguousSeq: 0 })
    expect(await store.count('attestation')).toBe(2)
    expect(await store.frameIdsBySha256(hex64(1))).toEqual([])
    expect(await frameIdsByPackageKey(store, PKG, k.publicKey.keyid)).toEqual([frames[1]!.id, frames[3]!.id].sort())
    const rest = await store.arrivals(undefined, 10)
    await store.evict(rest.filter((e) => e.id === frames[3]!.id))
    expect(await store.keyStats(k.publicKey.keyid)).toMatchObject({ frames: 1, maxSeq: 2, contiguousSeq: 0 })
    await store.close()
    expect((await checkStore(path)).problems).toEqual([])
    store = await Store.open(path)
    expect(store.usage().frames).toBe(1)
  })
})

describe('StrangerBudget', () => {
  it("evicts strangers' oldest frames beyond the budget, never trusted or own frames, and counts it", async () => {
    const metrics = new Metrics()
    const trustedSet = new Set([trusted.publicKey.keyid])
    const budget = new StrangerBudget({ store, trustedKeys: () => trustedSet, ownKey: own.publicKey.keyid, metrics }, { maxStrangerFrames: 5, maxStrangerBytes: 1e9 })
    const writtenByStrangers: string[] = []
    for (let seq = 1; seq <= 4; seq++) {
      const fromStrangers = strangers.map((k) => attestation(k, seq))
      await store.putFrames([attestation(trusted, seq), attestation(own, seq), ...fromStrangers])
      writtenByStrangers.push(...fromStrangers.map((f) => f.id))
      await budget.enforce()
      expect((await budget.usage()).frames).toBeLessThanOrEqual(5)
    }
    expect((await budget.usage()).frames).toBe(5)
    // Trusted and own frames are all there; the strangers' newest five are.
    for (const k of [trusted, own]) expect((await store.keyStats(k.publicKey.keyid)).frames).toBe(4)
    const keptStrangers = (await store.arrivals(undefined, 100)).filter((e) => strangers.some((k) => k.publicKey.keyid === e.keyid)).map((e) => e.id)
    expect(keptStrangers).toEqual(writtenByStrangers.slice(-5))
    const text = await metrics.registry.metrics()
    expect(text).toMatch(/rbq_store_evicted_frames_total 11/)
    expect(text).toMatch(/rbq_store_stranger_frames 5/)
    await store.close()
    expect((await checkStore(path)).problems).toEqual([])
    store = await Store.open(path)
  })

  it('bounds bytes too', async () => {
    const f = attestation(strangers[0]!, 1)
    const budget = new StrangerBudget({ store, trustedKeys: () => new Set(), ownKey: own.publicKey.keyid }, { maxStrangerFrames: 1000, maxStrangerBytes: f.bytes.length * 2 + 10 })
    await store.putFrames([f, attestation(strangers[0]!, 2), attestation(strangers[1]!, 1)])
    expect(await budget.enforce()).toMatchObject({ frames: 1 })
    expect(await hasFrame(store, f.id)).toBe(false)
  })
})

describe('checkStore', () => {
  it('finds a dangling entry, a missing entry, a corrupted frame and a wrong counter; --repair fixes them', async () => {
    const frames = [attestation(trusted, 1), attestation(trusted, 2), attestation(strangers[0]!, 1)]
    await store.putFrames(frames)
    await store.close()
    expect(await checkStore(path)).toMatchObject({ frames: 3, problems: [] })

    const raw = new Level<string, string>(path)
    await raw.sublevel<string, string>(bucketName(Bucket.framesByArtifact), { valueEncoding: 'utf8' }).put(keys.byArtifact(PKG, 'ghost.deb', hex64(9)), '')
    await raw.sublevel<string, string>(bucketName(Bucket.framesBySha256), { valueEncoding: 'utf8' }).del(keys.bySha256(hex64(2), trusted.publicKey.keyid, frames[1]!.id))
    const corrupt = new Uint8Array(frames[2]!.bytes)
    corrupt[corrupt.length - 5] = corrupt[corrupt.length - 5]! ^ 1
    await raw.sublevel<string, Uint8Array>(bucketName(Bucket.frame), { valueEncoding: 'view' }).put(frames[2]!.id, corrupt)
    await raw.sublevel<string, number>(bucketName(Bucket.frameCount), { valueEncoding: 'json' }).put('delegation', 7)
    await raw.close()

    const found = await checkStore(path)
    expect(found.counts).toMatchObject({ 'dangling-entry': expect.any(Number), 'missing-entry': 1, 'bad-frame-id': 1, 'wrong-counter': expect.any(Number) })
    expect(found.problems.map((p) => p.message).join('\n')).toContain('ghost.deb')

    const repaired = await checkStore(path, { repair: true })
    expect(repaired.problems).toEqual([])
    expect(repaired.found?.problems.length).toBeGreaterThan(0)
    expect(repaired.frames).toBe(2)
    store = await Store.open(path)
    expect(await store.frameIdsBySha256(hex64(2))).toEqual([frames[1]!.id])
    expect(await store.count()).toBe(2)
  })

  it('refuses a store another process holds', async () => {
    const error = await checkStore(path).catch((e: unknown) => e)
    expect(isRbqError(error) && error.code).toBe('STORE_ERROR')
    expect((error as Error).message).toMatch(/in use by another process: stop the node first/)
  })
})
