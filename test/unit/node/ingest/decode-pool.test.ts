import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeOne, type DecodeOutcome } from '../../../../node/ingest/decode-job.js'
import { DecodePool, findWorkerScript } from '../../../../node/ingest/decode-pool.js'
import { canonicalBytes, decodeFrame, generateSigningKey, signAttestation, signEquivocationProof } from '../../../../protocol/index.js'
import { rebuildStatementArb } from '../../../utils/arbitraries.js'
import { attestation, delegation } from '../../../utils/frames.js'
import { waitFor } from '../../../utils/network.js'

const key = generateSigningKey()
const other = generateSigningKey()

/** The verdict of protocol decodeFrame, the reference. */
function reference(bytes: Uint8Array): string {
  try {
    const f = decodeFrame(bytes)
    return `ok ${f.kind} ${f.id} ${f.payloadDigest}`
  } catch (e) {
    const err = e as { code: string; field?: string }
    return `error ${err.code} ${err.field ?? ''}`
  }
}

function verdict(outcome: DecodeOutcome | undefined): string {
  if (outcome === undefined) return 'missing'
  return outcome.ok ? `ok ${outcome.frame.kind} ${outcome.frame.id} ${outcome.frame.payloadDigest}` : `error ${outcome.error.code} ${outcome.error.field ?? ''}`
}

/** Valid frames and corruptions of them: flipped bytes, truncation, re-encoded JSON edits. */
const frameArb = fc.oneof(
  rebuildStatementArb(key).map((s) => signAttestation(key, s).bytes),
  fc.tuple(rebuildStatementArb(key), fc.nat(), fc.integer({ min: 1, max: 255 })).map(([s, at, x]) => {
    const bytes = new Uint8Array(signAttestation(key, s).bytes)
    bytes[at % bytes.length] = (bytes[at % bytes.length] as number) ^ x
    return bytes
  }),
  fc.tuple(rebuildStatementArb(key), fc.nat()).map(([s, n]) => {
    const bytes = signAttestation(key, s).bytes
    return bytes.slice(0, n % bytes.length)
  }),
  fc.tuple(rebuildStatementArb(key), fc.constantFrom('sig', 'keyid', 'publicKey', 'extra', 'payloadType')).map(([s, what]) => {
    const frame = structuredClone(signAttestation(key, s).frame) as Record<string, any>
    const entry = frame.envelope.signatures[0]
    if (what === 'sig') entry.sig = Buffer.from(Buffer.from(entry.sig, 'base64').reverse()).toString('base64')
    if (what === 'keyid') entry.keyid = other.publicKey.keyid
    if (what === 'publicKey') frame.publicKey = other.publicKey.text
    if (what === 'extra') frame.envelope.extra = true
    if (what === 'payloadType') frame.envelope.payloadType = 'application/json'
    return canonicalBytes(frame)
  })
)

describe('DecodePool', () => {
  const pool = new DecodePool({}, { workers: 2 })
  beforeAll(async () => {
    expect(findWorkerScript()).toBeDefined() // `npm test` builds dist/ before vitest
    await pool.start()
  })
  afterAll(() => pool.stop())

  it('runs worker threads', () => {
    expect(pool.size).toBe(2)
  })

  it('gives the verdict of protocol decodeFrame for random valid and corrupted frames', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(frameArb, { minLength: 1, maxLength: 12 }), async (frames) => {
        const outcomes = await pool.decode(frames)
        expect(outcomes.map(verdict)).toEqual(frames.map(reference))
        expect(frames.map((b) => verdict(decodeOne(b)))).toEqual(frames.map(reference))
      }),
      { numRuns: 60 }
    )
  })

  it('returns whole verified frames: delegations and proofs with their embedded frames', async () => {
    const x = attestation(other, 2, { variant: 1 })
    const y = attestation(other, 2, { variant: 2 })
    const frames = [delegation(key, other), signEquivocationProof(key, x, y)]
    const outcomes = await pool.decode(frames.map((f) => f.bytes))
    expect(outcomes.map((o) => (o.ok ? o.frame : o.error))).toEqual(frames)
  })

  it('decodes many batches concurrently, in order per batch', async () => {
    const batches = Array.from({ length: 10 }, (_, b) => Array.from({ length: 5 }, (_, i) => attestation(key, b * 5 + i + 1).bytes))
    const results = await Promise.all(batches.map((batch) => pool.decode(batch)))
    results.forEach((outcomes, b) => expect(outcomes.map(verdict)).toEqual(batches[b]!.map(reference)))
  })
})

describe('DecodePool parked while idle', () => {
  const pool = new DecodePool({}, { workers: 2 })
  beforeAll(() => pool.start())
  afterAll(() => pool.stop())

  it('lets its workers go, starts them again for the next batches, and decodes them in workers', async () => {
    await pool.park()
    expect(pool.size).toBe(0)
    const batches = Array.from({ length: 6 }, (_, b) => Array.from({ length: 4 }, (_, i) => attestation(key, b * 4 + i + 1).bytes))
    const results = await Promise.all(batches.map((batch) => pool.decode(batch)))
    results.forEach((outcomes, b) => expect(outcomes.map(verdict)).toEqual(batches[b]!.map(reference)))
    expect(pool.size).toBeGreaterThan(0) // decoded by a worker started again, not inline
    await waitFor(() => pool.size === 2, { what: 'both workers back' })
  })

  it('is not parked while a batch is in flight', async () => {
    const decoding = pool.decode([attestation(key, 1).bytes])
    await pool.park()
    expect(pool.size).toBe(2)
    expect((await decoding).map(verdict)).toEqual([reference(attestation(key, 1).bytes)])
  })

  it('stops cleanly while parked', async () => {
    const another = new DecodePool({}, { workers: 1 })
    await another.start()
    await another.park()
    await another.stop()
    expect(another.size).toBe(0)
    // After stop, batches are decoded inline.
    expect((await another.decode([attestation(key, 2).bytes])).map(verdict)).toEqual([reference(attestation(key, 2).bytes)])
  })
})
