/**
 * Catch-up through /rbq/sync/1.0.0 alone: frames stored before a node existed or while it was
 * down cannot arrive by gossip, so they arrive by sync or not at all.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { generateSigningKey, type SigningKey, type VerifiedFrame } from '../../protocol/index.js'
import type { RbqNode } from '../../node/node.js'
import { attestation, delegation } from '../utils/frames.js'
import { connect, startTestNode, waitFor, type TestNode } from '../utils/network.js'
import { makeTempDir } from '../utils/tmp.js'

/** `count` attestations spread over `keys`, seqs 1.. per key. */
function attestations(keys: SigningKey[], count: number, firstSeq = 1): VerifiedFrame[] {
  return Array.from({ length: count }, (_, i) => attestation(keys[i % keys.length] as SigningKey, firstSeq + Math.floor(i / keys.length)))
}

async function submit(node: RbqNode, frames: VerifiedFrame[]): Promise<void> {
  const results = await node.pipeline.submitMany(
    frames.map((f) => f.bytes),
    'local'
  )
  expect(results.filter((r) => r.status === 'stored').length).toBe(frames.length)
}

async function holdsAll(node: RbqNode, frames: VerifiedFrame[]): Promise<boolean> {
  return (await node.store.hasFrames(frames.map((f) => f.id))).every(Boolean)
}

async function counts(node: RbqNode): Promise<number[]> {
  return Promise.all([node.store.count('attestation'), node.store.count('delegation'), node.store.count('equivocation')])
}

describe('sync', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })
  async function node(options: Parameters<typeof startTestNode>[0] = {}): Promise<TestNode> {
    const n = await startTestNode(options)
    cleanups.push(n.cleanup)
    return n
  }

  it('a node started after 1,000 frames were published catches up through sync alone', async () => {
    const a = (await node()).node
    const keys = Array.from({ length: 4 }, () => generateSigningKey())
    const frames = attestations(keys, 1000)
    // A key with a permanent gap (seq 6 never published) and frames above it.
    const gapped = generateSigningKey()
    const aboveGap = [1, 2, 3, 4, 5, 7, 8, 9].map((seq) => attestation(gapped, seq))
    const delegations = [delegation(keys[0] as SigningKey, keys[1] as SigningKey), delegation(keys[2] as SigningKey, keys[3] as SigningKey)]
    // An equivocation: a's pipeline signs and stores a proof.
    const liar = generateSigningKey()
    const conflicting = [attestation(liar, 1), attestation(liar, 1, { variant: 1 })]
    await submit(a, [...frames, ...aboveGap, ...delegations])
    await submit(a, conflicting)
    expect(await a.store.count('equivocation')).toBe(1)

    const b = (await node()).node
    await connect(b, a)
    await waitFor(async () => (await b.store.count()) === (await a.store.count()), { what: 'b to hold as many frames as a', timeoutMs: 40_000 })
    expect(await counts(b)).toEqual(await counts(a))
    expect(await holdsAll(b, [...frames, ...aboveGap, ...delegations, ...conflicting])).toBe(true)
    // b took a's proof instead of signing its own.
    expect(await b.store.proofIdFor(liar.publicKey.keyid)).toBe(await a.store.proofIdFor(liar.publicKey.keyid))
    // Nothing came by gossip: it was all stored before b existed.
    expect(await b.store.count()).toBe(1000 + 8 + 2 + 2 + 1)
  })

  it('in small batches every frame arrives, both statements of an equivocation included', async () => {
    const [k, l] = [generateSigningKey(), generateSigningKey()]
    const kSeqs = Array.from({ length: 30 }, (_, i) => i + 1).filter((s) => s !== 11 && s !== 12)
    const frames = [
      ...kSeqs.map((s) => attestation(k, s)),
      attestation(k, 5, { variant: 1 }),
      attestation(k, 20, { variant: 1 }),
      ...Array.from({ length: 25 }, (_, i) => attestation(l, i + 1))
    ]
    const a = (await node()).node
    await submit(a, frames)
    const b = (await node({ toml: { sync: { batch_frames: 3 } } })).node
    await connect(b, a)
    await waitFor(async () => (await b.store.count()) === (await a.store.count()), { what: 'b to catch up' })
    expect(await holdsAll(b, frames)).toBe(true)
    expect(await counts(b)).toEqual([frames.length, 0, 1])
  })

  it('peers with different gaps converge to the union', async () => {
    const key = generateSigningKey()
    const all = Array.from({ length: 12 }, (_, i) => attestation(key, i + 1))
    const pick = (seqs: number[]) => seqs.map((s) => all[s - 1] as VerifiedFrame)
    const a = (await node()).node
    const b = (await node()).node
    await submit(a, pick([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))
    await submit(b, pick([1, 2, 3, 5, 6, 7, 12]))
    await connect(a, b)
    await waitFor(async () => (await holdsAll(a, pick([12]))) && (await holdsAll(b, pick([4, 8, 9, 10]))), { what: 'both to hold the union' })
    expect(await a.store.count()).toBe(11)
    expect(await b.store.count()).toBe(11)
  })

  it('a node stopped and restarted keeps its data, its peer id, and catches up on what it missed', async () => {
    const keys = [generateSigningKey(), generateSigningKey()]
    const a = (await node()).node
    const { dir, cleanup } = await makeTempDir('rbq-restart-')
    cleanups.push(cleanup)
    let b = await startTestNode({ dataDir: dir })
    cleanups.push(b.cleanup)
    const before = attestations(keys, 100)
    await submit(a, before)
    await connect(b.node, a)
    await waitFor(() => holdsAll(b.node, before), { what: 'b to catch up the first time' })
    const peerId = b.node.peerId.toString()
    await b.node.stop()

    const missed = attestations(keys, 100, 51)
    await submit(a, missed)
    b = await startTestNode({ dataDir: dir })
    cleanups.push(b.cleanup)
    expect(b.node.peerId.toString()).toBe(peerId)
    expect(await holdsAll(b.node, before)).toBe(true)
    expect(await b.node.store.count()).toBe(100)
    await connect(b.node, a)
    await waitFor(() => holdsAll(b.node, missed), { what: 'b to catch up on what it missed' })
    expect(await b.node.store.count()).toBe(200)
  })

  it('a restarted node continues its seq above the last persisted value', async () => {
    const { dir, cleanup } = await makeTempDir('rbq-seq-')
    cleanups.push(cleanup)
    const statement = {
      package: 'pkg:deb/debian/hello@2.10-3?arch=source',
      subject: [{ name: 'hello.deb', sha256: 'c'.repeat(64) }],
      outcome: 'built' as const,
      upstream: [],
      inputs: { sha256: 'd'.repeat(64), materials: [] },
      startedOn: new Date('2026-01-01T00:00:00Z'),
      finishedOn: new Date('2026-01-01T00:01:00Z'),
      backend: 'debian'
    }
    let n = await startTestNode({ dataDir: dir })
    cleanups.push(n.cleanup)
    const seqs = []
    for (let i = 0; i < 3; i++) seqs.push((await n.node.publisher.attest(statement)).statement.predicate.builder.seq)
    const keyid = n.node.signingKey.publicKey.keyid
    await n.node.stop()

    n = await startTestNode({ dataDir: dir })
    cleanups.push(n.cleanup)
    expect(n.node.signingKey.publicKey.keyid).toBe(keyid)
    expect(await n.node.store.count()).toBe(3)
    const next = await n.node.publisher.attest(statement)
    expect(seqs).toEqual([1, 2, 3])
    expect(next.statement.predicate.builder.seq).toBe(4)
  })
})
