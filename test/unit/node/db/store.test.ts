import { join } from 'node:path'
import { Level } from 'level'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Bucket, bucketName, keys, prefixRange, seqPart, STORE_LAYOUT_VERSION } from '../../../../node/db/buckets.js'
import { Store } from '../../../../node/db/store.js'
import { loadSeqRuns } from '../../../../node/p2p/seq-runs.js'
import { buildRebuildStatement, generateSigningKey, isRbqError, signAttestation, signEquivocationProof } from '../../../../protocol/index.js'
import { makeTempDir } from '../../../utils/tmp.js'
import { attestation, delegation, hex64, PKG } from '../../../utils/frames.js'
import { attestationIdsAtSeq, frameBytes, frameIdsByPackageKey, hasFrame } from '../../../utils/store-reads.js'

const alice = generateSigningKey()
const bob = generateSigningKey()
const reporter = generateSigningKey()

let dir: string
let cleanup: () => Promise<void>
let store: Store
beforeEach(async () => {
  ;({ dir, cleanup } = await makeTempDir('rbq-store-'))
  store = await Store.open(join(dir, 'db'))
})
afterEach(async () => {
  await store.close()
  await cleanup()
})

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (e) {
    return isRbqError(e) ? e.code : `not ours: ${String(e)}`
  }
  return 'no error'
}

/** The underlying classic-level instance (the root database of any sublevel). */
function levelOf(s: Store) {
  return s.sublevel('meta').db
}

describe('key encoding', () => {
  it('orders seqs numerically and bounds prefixes exactly', () => {
    expect(seqPart(2) < seqPart(10)).toBe(true)
    expect(seqPart(Number.MAX_SAFE_INTEGER)).toHaveLength(16)
    const range = prefixRange('pkg:deb/debian/hello@1')
    const other = keys.byArtifact('pkg:deb/debian/hello@10', 'a.deb', 'id')
    expect(other >= range.gte && other < range.lt).toBe(false)
    expect(keys.byArtifact('pkg:deb/debian/hello@1', 'a.deb', 'id') >= range.gte).toBe(true)
    expect(() => keys.bySha256('a\x00b', 'k', 'id')).toThrow()
    expect(bucketName(Bucket.frame)).toBe('01')
  })
})

describe('Store', () => {
  it('round-trips frames in their canonical bytes', async () => {
    const a = attestation(alice, 1)
    expect(await store.putFrame(a)).toBe('stored')
    expect(await frameBytes(store, a.id)).toEqual(a.bytes)
    expect(await hasFrame(store, a.id)).toBe(true)
    expect(await hasFrame(store, hex64(1))).toBe(false)
    expect(await frameBytes(store, hex64(1))).toBeUndefined()
    const verified = await store.getVerifiedFrame(a.id)
    expect(verified?.kind).toBe('attestation')
    expect(verified?.payloadDigest).toBe(a.payloadDigest)
  })

  it('is idempotent: the same frame twice stores once', async () => {
    const a = attestation(alice, 1)
    expect(await store.putFrame(a)).toBe('stored')
    const bytes = (await store.keyStats(alice.publicKey.keyid)).bytes
    expect(await store.putFrame(a)).toBe('duplicate')
    expect((await store.putFrames([attestation(alice, 2), attestation(alice, 2)])).map((o) => o.status)).toEqual(['stored', 'duplicate'])
    expect(await store.count('attestation')).toBe(2)
    expect((await store.keyStats(alice.publicKey.keyid)).bytes).toBe(bytes + attestation(alice, 2).bytes.length)
    expect(await attestationIdsAtSeq(store, alice.publicKey.keyid, 1)).toEqual([a.id])
  })

  it('indexes attestations by output sha256, package|artifact, package and keyid|seq', async () => {
    const shared = hex64(0xabc)
    const a1 = attestation(alice, 1, { subjects: [{ name: 'hello.deb', sha256: shared }, { name: 'hello-dbg.deb', sha256: hex64(7) }] })
    const b1 = attestation(bob, 1, { subjects: [{ name: 'hello.deb', sha256: shared }] })
    const a2 = attestation(alice, 2, { pkg: 'pkg:deb/debian/hello@2.10-30?arch=source', subjects: [{ name: 'hello.deb', sha256: hex64(8) }] })
    const a10 = attestation(alice, 10)
    for (const f of [a10, a2, b1, a1]) expect(await store.putFrame(f)).toBe('stored')

    expect(await store.frameIdsBySha256(shared)).toEqual([a1.id, b1.id].sort())
    expect(await store.frameIdsBySha256(hex64(7))).toEqual([a1.id])
    expect(await store.frameIdsByArtifact(PKG, 'hello.deb')).toEqual([a1.id, b1.id].sort())
    expect(await store.frameIdsByArtifact(PKG, 'hello-dbg.deb')).toEqual([a1.id])
    // A package is not a prefix of another ("…@2.10-3" vs "…@2.10-30"), and each frame appears once.
    expect((await store.frameIdsByPackage(PKG)).sort()).toEqual([a1.id, a10.id, b1.id].sort())
    expect(await store.frameIdsByPackage('pkg:deb/debian/hello@2.10-30?arch=source')).toEqual([a2.id])

    const k = alice.publicKey.keyid
    expect(await store.frameIdsByBuilder(k)).toEqual([a1.id, a2.id, a10.id]) // by seq: 2 before 10
    expect(await store.frameIdsByBuilder(k, 2)).toEqual([a2.id, a10.id])
    expect(await store.frameIdsByBuilder(k, 1, 2)).toEqual([a1.id, a2.id])
    expect(await attestationIdsAtSeq(store, k, 10)).toEqual([a10.id])
    expect(await attestationIdsAtSeq(store, k, 3)).toEqual([])
    expect(await store.attestationsInRange(k, 1, 10, 10)).toEqual([a1.bytes, a2.bytes, a10.bytes])
    expect(await store.attestationsInRange(k, 2, 9, 10)).toEqual([a2.bytes])
    expect(await store.attestationsInRange(k, 1, 10, 2)).toEqual([a1.bytes, a2.bytes])
    expect(await store.attestationsInRange(k, 5, 4, 10)).toEqual([])
    expect(await store.count()).toBe(4)
    expect(await store.count('delegation')).toBe(0)
  })

  it('reads many (package, signer) ranges and digest entries through one iterator, as the single-range reads do', async () => {
    // 150 frames over 3 packages and 2 signers (more than one page of entries), one package a prefix of another.
    const pkgs = [PKG, 'pkg:deb/debian/hello@2.10-30?arch=source', 'pkg:deb/debian/zzz@1?arch=source']
    const frames = Array.from({ length: 150 }, (_, i) => attestation(i % 2 === 0 ? alice : bob, i + 1, { pkg: pkgs[i % 3]!, subjects: [{ name: `f${i}.deb`, sha256: hex64(i % 5) }] }))
    for (let i = 0; i < frames.length; i += 50) await store.putFrames(frames.slice(i, i + 50))
    const pairs = [
      ...pkgs.flatMap((pkg) => [alice, bob, reporter].map((k) => ({ package: pkg, keyid: k.publicKey.keyid }))),
      { package: 'pkg:deb/debian/absent@1?arch=source', keyid: alice.publicKey.keyid },
      { package: PKG, keyid: alice.publicKey.keyid } // asked twice
    ].reverse()
    const many = await store.frameIdsByPackageKeys(pairs)
    const one = await Promise.all(pairs.map((p) => frameIdsByPackageKey(store, p.package, p.keyid)))
    expect(many).toEqual(one)
    expect(many.flat().length).toBe(150 + 25)
    expect(await store.frameIdsByPackageKeys([])).toEqual([])
    const entries = await store.digestEntries(hex64(1), [bob.publicKey.keyid, alice.publicKey.keyid, reporter.publicKey.keyid])
    const expected = frames.filter((_, i) => i % 5 === 1)
    expect(entries.map((e) => e.id).sort()).toEqual(expected.map((f) => f.id).sort())
    for (const e of entries) {
      const f = expected.find((x) => x.id === e.id)!
      expect(e).toEqual({ id: f.id, keyid: f.signer.keyid, package: f.statement.predicate.package })
    }
  })

  it('indexes delegations by delegate and proofs by key; first proof per key wins', async () => {
    const d1 = delegation(alice, bob, 1)
    const d2 = delegation(alice, bob, 2)
    const d3 = delegation(bob, alice, 1)
    for (const f of [d1, d2, d3]) expect(await store.putFrame(f)).toBe('stored')
    expect(await store.delegationIdsByDelegate(bob.publicKey.keyid)).toEqual([d1.id, d2.id].sort())
    expect((await store.allDelegations()).length).toBe(3)
    expect(await store.count('delegation')).toBe(3)

    const x = attestation(bob, 5, { variant: 1 })
    const y = attestation(bob, 5, { variant: 2 })
    const proof = signEquivocationProof(reporter, x, y)
    const otherReport = signEquivocationProof(alice, x, y)
    expect(await store.putFrame(proof)).toBe('stored')
    expect(await store.putFrame(otherReport)).toBe('duplicate')
    expect(await store.allProofs()).toEqual([proof.bytes])
    expect(await store.proofIdFor(bob.publicKey.keyid)).toBe(proof.id)
    expect(await store.count('equivocation')).toBe(1)
    expect((await store.keyStats(reporter.publicKey.keyid)).bytes).toBe(proof.bytes.length)
  })

  it('reports conflicting statements at one (keyid, seq) and keeps both', async () => {
    const x = attestation(alice, 3, { variant: 1 })
    const y = attestation(alice, 3, { variant: 2 })
    const z = attestation(alice, 3, { variant: 3 })
    expect(await store.putFrames([x])).toEqual([{ status: 'stored', conflictsWith: [] }])
    expect(await store.putFrames([y])).toEqual([{ status: 'stored', conflictsWith: [x.id] }])
    // In one batch too: z conflicts with both.
    const [out] = await store.putFrames([z])
    expect(out?.conflictsWith.sort()).toEqual([x.id, y.id].sort())
    expect((await attestationIdsAtSeq(store, alice.publicKey.keyid, 3)).length).toBe(3)
    const s2 = attestation(bob, 2, { variant: 1 })
    const s2b = attestation(bob, 2, { variant: 2 })
    expect(await store.putFrames([s2, s2b])).toEqual([
      { status: 'stored', conflictsWith: [] },
      { status: 'stored', conflictsWith: [s2.id] }
    ])
  })

  it('keeps the highest contiguous seq per key through gaps and out-of-order arrival', async () => {
    const k = alice.publicKey.keyid
    const put = (seqs: number[]) => store.putFrames(seqs.map((s) => attestation(alice, s)))
    await put([2])
    expect((await store.seqSummary()).get(k)).toBe(0) // seq 1 missing
    await put([1, 4])
    expect((await store.seqSummary()).get(k)).toBe(2)
    expect((await loadSeqRuns(store)).runs(k)).toEqual([[1, 2], [4, 4]])
    await put([7, 6])
    expect((await loadSeqRuns(store)).runs(k)).toEqual([[1, 2], [4, 4], [6, 7]])
    await put([3]) // fills the gap: 1..4 stored
    expect((await store.seqSummary()).get(k)).toBe(4)
    await put([5]) // walks on through stored 6 and 7
    expect((await store.seqSummary()).get(k)).toBe(7)
    expect((await loadSeqRuns(store)).runs(k)).toEqual([[1, 7]])
    // Descending arrival in one batch.
    await store.putFrames([3, 2, 1].map((s) => attestation(bob, s)))
    expect((await store.seqSummary()).get(bob.publicKey.keyid)).toBe(3)
    // Keys with only delegations have no summary entry.
    await store.putFrame(delegation(reporter, alice))
    expect([...(await store.seqSummary()).keys()].sort()).toEqual([k, bob.publicKey.keyid].sort())
    expect((await store.keyStats(k)).maxSeq).toBe(7)
  })

  it('persists frames, indexes and counters across close and reopen', async () => {
    const path = join(dir, 'db')
    const a = [1, 2, 4].map((s) => attestation(alice, s))
    const d = delegation(alice, bob)
    const proof = signEquivocationProof(reporter, attestation(bob, 1, { variant: 1 }), attestation(bob, 1, { variant: 2 }))
    await store.putFrames([...a, d, proof])
    await store.sublevel<{ tries: number }>('jobs').put('job-1', { tries: 2 })
    await store.close()

    store = await Store.open(path)
    expect(await frameBytes(store, a[2]!.id)).toEqual(a[2]!.bytes)
    expect(await store.count()).toBe(5)
    expect(await store.count('equivocation')).toBe(1)
    // The proven key is remembered: another proof against it is a duplicate.
    expect(await store.proofIdFor(bob.publicKey.keyid)).toBe(proof.id)
    expect(await store.putFrame(signEquivocationProof(alice, attestation(bob, 1, { variant: 1 }), attestation(bob, 1, { variant: 2 })))).toBe('duplicate')
    expect((await store.seqSummary()).get(alice.publicKey.keyid)).toBe(2)
    expect(await store.frameIdsBySha256(hex64(4))).toEqual([a[2]!.id])
    expect(await store.sublevel<{ tries: number }>('jobs').get('job-1')).toEqual({ tries: 2 })
    expect(await store.putFrame(a[0]!)).toBe('duplicate')
    await store.putFrame(attestation(alice, 3))
    expect((await store.seqSummary()).get(alice.publicKey.keyid)).toBe(4)
  })

  it('writes a frame and its indexes atomically: a failed write leaves nothing behind', async () => {
    const a1 = attestation(alice, 1)
    await store.putFrame(a1)
    const before = await store.keyStats(alice.publicKey.keyid)
    // Fail the batch at its 3rd operation (an index entry), as a full disk would fail the write.
    let ops = 0
    const failing = () => {
      if (++ops === 3) throw new Error('ENOSPC: no space left on device')
    }
    levelOf(store).hooks.prewrite.add(failing)
    const a2 = attestation(alice, 2)
    expect(await codeOf(store.putFrame(a2))).toBe('STORE_ERROR')
    levelOf(store).hooks.prewrite.delete(failing)

    expect(await hasFrame(store, a2.id)).toBe(false)
    expect(await store.frameIdsBySha256(hex64(2))).toEqual([])
    expect(await attestationIdsAtSeq(store, alice.publicKey.keyid, 2)).toEqual([])
    expect(await store.keyStats(alice.publicKey.keyid)).toEqual(before)
    expect(await store.count()).toBe(1)
    // Reads kept working, and the same frame stores fine once the disk is back.
    expect(await frameBytes(store, a1.id)).toEqual(a1.bytes)
    expect(await store.putFrame(a2)).toBe('stored')
    expect((await store.seqSummary()).get(alice.publicKey.keyid)).toBe(2)
  })

  it('turns LevelDB failures into STORE_ERROR: closed database, locked directory, unknown layout', async () => {
    const path = join(dir, 'db')
    expect(await codeOf(Store.open(path))).toBe('STORE_ERROR') // locked by `store`
    await store.close()
    expect(await codeOf(store.putFrame(attestation(alice, 1)))).toBe('STORE_ERROR')
    expect(await codeOf(frameBytes(store, hex64(1)))).toBe('STORE_ERROR')
    expect(await codeOf(store.frameIdsBySha256(hex64(1)))).toBe('STORE_ERROR')

    const raw = new Level<string, unknown>(path, { valueEncoding: 'json' })
    await raw.sublevel<string, number>(bucketName(Bucket.schema), { valueEncoding: 'json' }).put('version', 99)
    await raw.close()
    expect(await codeOf(Store.open(path))).toBe('STORE_ERROR')
    expect(await codeOf(Store.open(join(dir, 'missing'), { createIfMissing: false }))).toBe('STORE_ERROR')
  })

  it('indexes upstream digests and names; a layout-1 store is reindexed when opened', async () => {
    // A rebuild that made hello_1.deb (sha X) while the archive published hello_1+b1.deb (sha U).
    const X = hex64(0x10)
    const U = hex64(0x11)
    const a = signAttestation(
      alice,
      buildRebuildStatement({
        package: PKG,
        subject: [{ name: 'hello_1.deb', sha256: X }],
        outcome: 'mismatch',
        upstream: [{ name: 'hello_1+b1.deb', sha256: U }],
        inputs: { sha256: hex64(0), materials: [] },
        builder: { id: alice.publicKey.keyid, seq: 1, backend: 'debian', software: 'rebuild-quorum/test' },
        startedOn: new Date('2026-01-01T00:00:00Z'),
        finishedOn: new Date('2026-01-01T00:01:00Z')
      })
    )
    const b = attestation(bob, 1)
    await store.putFrames([a, b])
    const check = async (s: Store) => {
      expect(await s.frameIdsByUpstreamSha256(U)).toEqual([a.id])
      expect(await s.frameIdsBySha256(U)).toEqual([])
      expect(await s.frameIdsByArtifact(PKG, 'hello_1+b1.deb')).toEqual([a.id])
      expect(await s.frameIdsByArtifact(PKG, 'hello_1.deb')).toEqual([a.id, b.id].sort())
    }
    await check(store)

    // Roll the directory back to what layout 1 wrote: no upstream entries, version 1.
    await store.close()
    const path = join(dir, 'db')
    const raw = new Level<string, unknown>(path, { valueEncoding: 'json' })
    await raw.sublevel(bucketName(Bucket.framesByUpstreamSha256)).clear()
    await raw.sublevel(bucketName(Bucket.framesByArtifact)).del(keys.byArtifact(PKG, 'hello_1+b1.deb', a.id))
    await raw.sublevel<string, number>(bucketName(Bucket.schema), { valueEncoding: 'json' }).put('version', 1)
    await raw.close()

    store = await Store.open(path)
    await check(store)
    expect(await store.count('attestation')).toBe(2)
    await store.close()
    const after = new Level<string, unknown>(path, { valueEncoding: 'json' })
    expect(await after.sublevel<string, number>(bucketName(Bucket.schema), { valueEncoding: 'json' }).get('version')).toBe(STORE_LAYOUT_VERSION)
    await after.close()
    store = await Store.open(path)
  })

  it('gives other subsystems separate JSON spaces', async () => {
    await store.sublevel('jobs').put('x', { a: 1 })
    await store.sublevel('watched').put('x', [1, 2])
    await store.sublevel('meta').put('x', 'meta')
    expect(await store.sublevel('jobs').get('x')).toEqual({ a: 1 })
    expect(await store.sublevel('watched').get('x')).toEqual([1, 2])
    expect(await store.sublevel('meta').get('x')).toBe('meta')
    expect(await store.count()).toBe(0)
  })
})
