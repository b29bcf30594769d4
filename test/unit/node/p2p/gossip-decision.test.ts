/**
 * What this node publishes on gossip (node/p2p/gossip-decision.ts), over a real store, ingest
 * pipeline and publisher: the frames that entered the network here, and nothing else.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { gossipResultOfCode, publishWhatEntersHere, toGossipResult } from '../../../../node/p2p/gossip-decision.js'
import { generateSigningKey, type VerifiedFrame } from '../../../../protocol/index.js'
import { makeTempDir } from '../../../utils/tmp.js'
import { startPublishingParts, type PublishingParts } from '../../../utils/publishing-parts.js'
import { attestation, delegation, hex64, PKG } from '../../../utils/frames.js'

const own = generateSigningKey()
const alice = generateSigningKey()
const bob = generateSigningKey()

let cleanup: () => Promise<void>
let parts: PublishingParts & { published: VerifiedFrame[]; stopPublishing: () => void }

beforeEach(async () => {
  let dir: string
  ;({ dir, cleanup } = await makeTempDir('rbq-gossip-decision-'))
  const node = await startPublishingParts(dir, own)
  const published: VerifiedFrame[] = []
  parts = { ...node, published, stopPublishing: publishWhatEntersHere(node, (frame) => published.push(frame)) }
})
afterEach(async () => {
  parts.stopPublishing()
  await parts.stop()
  await cleanup()
})

describe('what this node publishes on gossip', () => {
  it('frames stored through its API, not those from gossip, sync or an in-process preload', async () => {
    const viaApi = attestation(alice, 1)
    const others = [attestation(alice, 2), attestation(alice, 3), delegation(alice, bob)]
    expect((await parts.pipeline.submit(viaApi.bytes, 'api')).status).toBe('stored')
    const sources = ['gossip', 'sync', 'local'] as const
    for (const [i, f] of others.entries()) expect((await parts.pipeline.submit(f.bytes, sources[i]!)).status).toBe('stored')
    // A duplicate through the API is not stored again, so not published again.
    expect((await parts.pipeline.submit(viaApi.bytes, 'api')).status).toBe('duplicate')
    expect(parts.published.map((f) => f.id)).toEqual([viaApi.id])
  })

  it("its own statements, once stored, and the equivocation proofs it signs (once each)", async () => {
    const mine = await parts.publisher.attest({
      package: PKG,
      subject: [{ name: 'hello_1.deb', sha256: hex64(1) }],
      outcome: 'built',
      upstream: [],
      inputs: { sha256: hex64(2), materials: [] },
      backend: 'debian',
      startedOn: new Date('2026-01-01T00:00:00Z'),
      finishedOn: new Date('2026-01-01T00:05:00Z')
    })
    const r = await parts.pipeline.submit(attestation(bob, 7, { variant: 1 }).bytes, 'gossip')
    expect(r.status).toBe('stored')
    const conflicting = await parts.pipeline.submit(attestation(bob, 7, { variant: 2 }).bytes, 'gossip')
    const proof = conflicting.proof
    expect(proof?.kind).toBe('equivocation')
    expect(parts.published.map((f) => f.id)).toEqual([mine.id, proof!.id])
  })

  it('stops publishing when stopped', async () => {
    parts.stopPublishing()
    await parts.pipeline.submit(attestation(alice, 1).bytes, 'api')
    expect(parts.published).toEqual([])
  })
})

describe('REJECT or IGNORE', () => {
  it('invalid bytes are REJECT; duplicates, load and our own failures are IGNORE; stored is ACCEPT', () => {
    for (const code of ['SIGNATURE_INVALID', 'SCHEMA_INVALID', 'JSON_MALFORMED', 'INPUT_TOO_LARGE', 'TOPIC_MISMATCH', 'EQUIVOCATION_INVALID'] as const) {
      expect(gossipResultOfCode(code)).toBe('reject')
    }
    for (const code of ['DUPLICATE', 'QUOTA_EXCEEDED', 'QUEUE_FULL', 'STORE_ERROR', 'INTERNAL'] as const) expect(gossipResultOfCode(code)).toBe('ignore')
    expect([toGossipResult('stored'), toGossipResult('rejected'), toGossipResult('duplicate'), toGossipResult('ignored')]).toEqual(['accept', 'reject', 'ignore', 'ignore'])
  })
})
