import { join } from 'node:path'
/** The topic validators with a real store and pipeline (no network: validate() is called directly). */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MAX_FRAME_BYTES, TOPIC_ATTESTATIONS, TOPIC_DELEGATIONS, TOPIC_PROOFS, generateSigningKey, utf8 } from '../../../../protocol/index.js'
import { Store } from '../../../../node/db/store.js'
import { IngestPipeline } from '../../../../node/ingest/ingest-pipeline.js'
import { StatementSigner } from '../../../../identity/statement-signer.js'
import { silentLogger } from '../../../../common/logger.js'
import { Metrics } from '../../../../node/metrics.js'
import { Gossip } from '../../../../node/p2p/gossip.js'
import { createHost, type Host } from '../../../../node/p2p/host.js'
import { makeTempDir } from '../../../utils/tmp.js'
import { attestation, delegation, tampered } from '../../../utils/frames.js'
import { hasFrame } from '../../../utils/store-reads.js'

const from = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))

describe('gossip topic validators', () => {
  let store: Store
  let pipeline: IngestPipeline
  let host: Host
  let gossip: Gossip
  let cleanup: () => Promise<void>

  beforeEach(async () => {
    const temp = await makeTempDir()
    store = await Store.open(temp.dir)
    const metrics = new Metrics()
    pipeline = new IngestPipeline({ store, metrics }, { signer: new StatementSigner(generateSigningKey(), join(temp.dir, 'signing.key.seq')), workers: 0 })
    await pipeline.start()
    host = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: [] })
    gossip = new Gossip({ pubsub: host.services.pubsub, ingest: pipeline, metrics, logger: silentLogger() })
    cleanup = async () => {
      await pipeline.stop()
      await store.close()
      await temp.cleanup()
    }
  })
  afterEach(() => cleanup())

  it('accepts a new valid frame on its topic, then ignores it as a duplicate', async () => {
    const frame = attestation(generateSigningKey(), 1)
    expect(await gossip.validate(TOPIC_ATTESTATIONS, frame.bytes, from)).toEqual({ result: 'accept' })
    expect(await hasFrame(store, frame.id)).toBe(true)
    const again = await gossip.validate(TOPIC_ATTESTATIONS, frame.bytes, from)
    expect([again.result, again.error?.code]).toEqual(['ignore', 'DUPLICATE'])
  })

  it('rejects, without storing, what no valid frame of the topic looks like', async () => {
    const key = generateSigningKey()
    const good = attestation(key, 1)
    const cases: [string, Uint8Array, string][] = [
      [TOPIC_ATTESTATIONS, new Uint8Array(MAX_FRAME_BYTES + 1), 'INPUT_TOO_LARGE'],
      [TOPIC_ATTESTATIONS, utf8('garbage'), 'JSON_MALFORMED'],
      [TOPIC_ATTESTATIONS, tampered(good.frame, (f) => (f.envelope.signatures[0].sig = attestation(key, 2).frame.envelope.signatures[0]?.sig)), 'SIGNATURE_INVALID'],
      [TOPIC_DELEGATIONS, good.bytes, 'TOPIC_MISMATCH'],
      [TOPIC_PROOFS, delegation(key, generateSigningKey()).bytes, 'TOPIC_MISMATCH']
    ]
    for (const [topic, bytes, code] of cases) {
      const verdict = await gossip.validate(topic, bytes, from)
      expect([topic, verdict.result, verdict.error?.code]).toEqual([topic, 'reject', code])
    }
    expect(await store.count()).toBe(0)
  })

  it('ignores, without penalty, what the node cannot take now', async () => {
    await pipeline.stop()
    const verdict = await gossip.validate(TOPIC_ATTESTATIONS, attestation(generateSigningKey(), 1).bytes, from)
    expect([verdict.result, verdict.error?.code]).toEqual(['ignore', 'QUEUE_FULL'])
    expect((await gossip.validate('/not/ours', new Uint8Array(1), from)).result).toBe('ignore')
  })
})
