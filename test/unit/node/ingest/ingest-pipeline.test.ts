import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Store } from '../../../../node/db/store.js'
import { IngestPipeline, type IngestPipelineInit } from '../../../../node/ingest/ingest-pipeline.js'
import { StatementSigner } from '../../../../identity/statement-signer.js'
import { toGossipResult } from '../../../../node/p2p/gossip-decision.js'
import type { IngestSource } from '../../../../node/ingest/ingest-types.js'
import { Metrics } from '../../../../node/metrics.js'
import {
  MAX_FRAME_BYTES,
  PAYLOAD_TYPE_EQUIVOCATION,
  STATEMENT_TYPE_EQUIVOCATION,
  canonicalBytes,
  encodeFrame,
  frameText,
  signEnvelope,
  generateSigningKey,
  signEquivocationProof,
  utf8,
  type EquivocationFrame,
  type VerifiedFrame
} from '../../../../protocol/index.js'
import { makeTempDir } from '../../../utils/tmp.js'
import { attestation, delegation, tampered } from '../../../utils/frames.js'
import { frameBytes, hasFrame } from '../../../utils/store-reads.js'

const alice = generateSigningKey()
const bob = generateSigningKey()
const reporter = generateSigningKey()

let dir: string
let cleanup: () => Promise<void>
let store: Store
const pipelines: IngestPipeline[] = []

beforeEach(async () => {
  ;({ dir, cleanup } = await makeTempDir('rbq-ingest-'))
  store = await Store.open(join(dir, 'db'))
})
afterEach(async () => {
  for (const p of pipelines.splice(0)) await p.stop()
  await store.close()
  await cleanup()
})

async function startPipeline(init: Partial<IngestPipelineInit> = {}, metrics?: Metrics): Promise<IngestPipeline> {
  // One decode worker keeps the tests light on a shared machine; the pool itself is tested in decode-pool.test.ts.
  const pipeline = new IngestPipeline({ store, ...(metrics ? { metrics } : {}) }, { signer: new StatementSigner(reporter, join(dir, 'signing.key.seq')), workers: 1, ...init })
  pipelines.push(pipeline)
  await pipeline.start()
  return pipeline
}

function collect(pipeline: IngestPipeline) {
  const stored: [VerifiedFrame, IngestSource][] = []
  const proofs: EquivocationFrame[] = []
  pipeline.on('stored', (frame, source) => stored.push([frame, source]))
  pipeline.on('equivocation', (proof) => proofs.push(proof))
  return { stored, proofs }
}

describe('IngestPipeline', () => {
  it('stores valid frames of every kind and emits them with their source', async () => {
    const pipeline = await startPipeline()
    expect(pipeline.workers).toBe(1) // the compiled worker was found (npm test builds dist/ first)
    const events = collect(pipeline)
    const a = attestation(alice, 1)
    const d = delegation(alice, bob)
    const results = await pipeline.submitMany([a.bytes, d.bytes], 'sync', 'peer-1')
    expect(results.map((r) => [r.status, r.id])).toEqual([
      ['stored', a.id],
      ['stored', d.id]
    ])
    expect(results[0]?.frame?.payloadDigest).toBe(a.payloadDigest)
    expect(events.stored.map(([f, s]) => [f.id, s])).toEqual([
      [a.id, 'sync'],
      [d.id, 'sync']
    ])
    expect(await frameBytes(store, a.id)).toEqual(a.bytes)
    expect(await store.count()).toBe(2)
    expect(toGossipResult('stored')).toBe('accept')
  })

  it('rejects bad input with its code and stores nothing', async () => {
    const pipeline = await startPipeline()
    const a = attestation(alice, 1)
    const sig = a.frame.envelope.signatures[0]!.sig
    const cases: [string, Uint8Array][] = [
      ['INPUT_TOO_LARGE', new Uint8Array(MAX_FRAME_BYTES + 1).fill(0x20)],
      ['NOT_CANONICAL', utf8(JSON.stringify(a.frame, null, 2))],
      ['JSON_MALFORMED', utf8(frameText(a.bytes).slice(0, -1))],
      ['SIGNATURE_INVALID', tampered(a.frame, (f) => (f.envelope.signatures[0].sig = (sig.startsWith('A') ? 'B' : 'A') + sig.slice(1)))],
      ['SCHEMA_INVALID', tampered(a.frame, (f) => (f.extra = 1))],
      ['KEYID_MISMATCH', tampered(a.frame, (f) => (f.envelope.signatures[0].keyid = bob.publicKey.keyid))],
      ['VERSION_UNSUPPORTED', tampered(a.frame, (f) => (f.v = 2))]
    ]
    const results = await pipeline.submitMany(
      cases.map(([, bytes]) => bytes),
      'gossip'
    )
    expect(results.map((r) => [r.status, r.error?.code])).toEqual(cases.map(([code]) => ['rejected', code]))
    expect(toGossipResult('rejected')).toBe('reject')
    expect(await store.count()).toBe(0)
    for (const r of results.slice(1)) expect(await hasFrame(store, r.id as string)).toBe(false)
  })

  it('ignores duplicates: in flight and already stored', async () => {
    const pipeline = await startPipeline()
    const a = attestation(alice, 1)
    const [first, second] = await Promise.all([pipeline.submit(a.bytes, 'gossip'), pipeline.submit(a.bytes, 'sync')])
    expect([first?.status, second?.status]).toEqual(['stored', 'duplicate'])
    const again = await pipeline.submit(a.bytes, 'gossip')
    expect([again.status, again.error?.code, again.id]).toEqual(['duplicate', 'DUPLICATE', a.id])
    expect(toGossipResult('duplicate')).toBe('ignore')
    expect(await store.count()).toBe(1)
  })

  it('holds untrusted keys to their quota, trusted keys and its own key to none', async () => {
    const pipeline = await startPipeline({ quota: { maxFramesPerKey: 2 }, isTrusted: (k) => k === bob.publicKey.keyid })
    const results = await pipeline.submitMany([1, 2, 3].map((s) => attestation(alice, s).bytes), 'gossip')
    expect(results.map((r) => [r.status, r.error?.code])).toEqual([
      ['stored', undefined],
      ['stored', undefined],
      ['ignored', 'QUOTA_EXCEEDED']
    ])
    expect((await pipeline.submit(attestation(alice, 4).bytes, 'sync')).error?.code).toBe('QUOTA_EXCEEDED')
    const trusted = await pipeline.submitMany([1, 2, 3].map((s) => attestation(bob, s).bytes), 'gossip')
    expect(trusted.every((r) => r.status === 'stored')).toBe(true)
    const own = await pipeline.submitMany([1, 2, 3].map((s) => attestation(reporter, s).bytes), 'local')
    expect(own.every((r) => r.status === 'stored')).toBe(true)

    const byBytes = await startPipeline({ quota: { maxBytesPerKey: attestation(alice, 1).bytes.length * 2 + 10 } })
    const carol = generateSigningKey()
    const r = await byBytes.submitMany([1, 2, 3].map((s) => attestation(carol, s).bytes), 'api')
    expect(r.map((x) => x.error?.code)).toEqual([undefined, undefined, 'QUOTA_EXCEEDED'])
  })

  it('drops the newest frames when the queue is full, never local ones', async () => {
    const pipeline = await startPipeline({ maxQueuedFrames: 2 })
    const frames = [1, 2, 3, 4].map((s) => attestation(alice, s).bytes)
    const results = await pipeline.submitMany(frames, 'gossip')
    expect(results.map((r) => r.error?.code ?? r.status)).toEqual(['stored', 'stored', 'QUEUE_FULL', 'QUEUE_FULL'])
    expect(results[2]?.status).toBe('ignored')
    const own = await pipeline.submitMany([1, 2, 3, 4].map((s) => attestation(reporter, s).bytes), 'local')
    expect(own.every((r) => r.status === 'stored')).toBe(true)
    expect(pipeline.queued).toBe(0)
  })

  it('detects equivocation, stores one proof per key and emits it', async () => {
    const pipeline = await startPipeline()
    const events = collect(pipeline)
    const x = attestation(alice, 7, { variant: 1 })
    const y = attestation(alice, 7, { variant: 2 })
    const z = attestation(alice, 7, { variant: 3 })
    expect((await pipeline.submit(x.bytes, 'gossip')).proof).toBeUndefined()
    const r = await pipeline.submit(y.bytes, 'sync')
    expect(r.status).toBe('stored')
    const proof = r.proof as EquivocationFrame
    expect(proof.proof.keyid).toBe(alice.publicKey.keyid)
    expect(proof.proof.seq).toBe(7)
    expect(proof.signer.keyid).toBe(reporter.publicKey.keyid)
    expect(events.proofs.map((p) => p.id)).toEqual([proof.id])
    expect(events.stored.map(([f, s]) => [f.kind, s])).toEqual([
      ['attestation', 'gossip'],
      ['attestation', 'sync'],
      ['equivocation', 'local']
    ])
    expect(await store.proofIdFor(alice.publicKey.keyid)).toBe(proof.id)
    expect(await store.allProofs()).toEqual([proof.bytes])
    // A third statement is stored as evidence, but the key is already proven.
    const r3 = await pipeline.submit(z.bytes, 'gossip')
    expect([r3.status, r3.proof]).toEqual(['stored', undefined])
    expect(events.proofs).toHaveLength(1)
    // Conflicting statements in one batch are caught too.
    const b1 = attestation(bob, 1, { variant: 1 })
    const b2 = attestation(bob, 1, { variant: 2 })
    const both = await pipeline.submitMany([b1.bytes, b2.bytes], 'sync')
    expect(both[1]?.proof?.proof.keyid).toBe(bob.publicKey.keyid)
    expect(await store.count('equivocation')).toBe(2)
  })

  it('verifies and stores proofs from outside; later proofs for the same key are duplicates', async () => {
    const pipeline = await startPipeline()
    const events = collect(pipeline)
    const x = attestation(bob, 3, { variant: 1 })
    const y = attestation(bob, 3, { variant: 2 })
    const proof = signEquivocationProof(alice, x, y)
    expect((await pipeline.submit(proof.bytes, 'gossip')).status).toBe('stored')
    expect(events.proofs).toEqual([]) // not this node's proof: gossip already forwards it
    expect(await store.proofIdFor(bob.publicKey.keyid)).toBe(proof.id)
    const later = await pipeline.submit(signEquivocationProof(reporter, x, y).bytes, 'gossip')
    expect([later.status, later.error?.code]).toEqual(['duplicate', 'DUPLICATE'])
    // A "proof" of two statements with different seqs proves nothing (signed by hand: protocol refuses to).
    const statement = { _type: STATEMENT_TYPE_EQUIVOCATION, a: x.frame, b: attestation(bob, 4, { variant: 2 }).frame }
    const envelope = signEnvelope(alice, PAYLOAD_TYPE_EQUIVOCATION, canonicalBytes(statement))
    const notAProof = encodeFrame({ v: 1, publicKey: alice.publicKey.text, envelope })
    expect(await pipeline.submit(notAProof, 'gossip')).toMatchObject({ status: 'rejected', error: { code: 'EQUIVOCATION_INVALID' } })
  })

  it('turns store write failures into STORE_ERROR results and keeps answering reads', async () => {
    const pipeline = await startPipeline()
    const a1 = attestation(alice, 1)
    await pipeline.submit(a1.bytes, 'gossip')
    const level = store.sublevel('meta').db
    const diskFull = () => {
      throw new Error('ENOSPC: no space left on device')
    }
    level.hooks.prewrite.add(diskFull)
    const a2 = attestation(alice, 2)
    const failed = await pipeline.submit(a2.bytes, 'gossip')
    expect([failed.status, failed.error?.code]).toEqual(['ignored', 'STORE_ERROR'])
    expect(await hasFrame(store, a2.id)).toBe(false)
    expect(await frameBytes(store, a1.id)).toEqual(a1.bytes)
    level.hooks.prewrite.delete(diskFull)
    expect((await pipeline.submit(a2.bytes, 'gossip')).status).toBe('stored')

    // The database closed underneath: still a result, not a crash.
    await store.close()
    const closed = await pipeline.submit(attestation(alice, 3).bytes, 'gossip')
    expect([closed.status, closed.error?.code]).toEqual(['ignored', 'STORE_ERROR'])
  })

  it('counts every result by source, status and code', async () => {
    const metrics = new Metrics()
    const pipeline = await startPipeline({}, metrics)
    const a = attestation(alice, 1)
    await pipeline.submit(a.bytes, 'gossip')
    await pipeline.submit(a.bytes, 'sync')
    await pipeline.submit(utf8('{}'), 'api')
    const text = await metrics.text()
    expect(text).toContain('rbq_ingest_frames_total{source="gossip",status="stored",code="none"} 1')
    expect(text).toContain('rbq_ingest_frames_total{source="sync",status="duplicate",code="DUPLICATE"} 1')
    expect(text).toContain('rbq_ingest_frames_total{source="api",status="rejected",code="VERSION_UNSUPPORTED"} 1')
    expect(text).toContain('rbq_store_frames{kind="attestation"} 1')
    expect(text).toContain('rbq_ingest_queued_frames 0')
  })

  it('finishes frames in flight on stop, then refuses new ones; decodes inline without workers', async () => {
    const pipeline = await startPipeline({ workers: 0 })
    expect(pipeline.workers).toBe(0)
    const pending = pipeline.submitMany([1, 2, 3].map((s) => attestation(alice, s).bytes), 'sync')
    await pipeline.stop()
    expect((await pending).map((r) => r.status)).toEqual(['stored', 'stored', 'stored'])
    const late = await pipeline.submit(attestation(alice, 4).bytes, 'gossip')
    expect([late.status, late.error?.code]).toEqual(['ignored', 'QUEUE_FULL'])
  })
})
