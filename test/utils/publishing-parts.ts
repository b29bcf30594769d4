/**
 * The parts of a node that publish, over a real store in `dir`: the store, the ingest pipeline
 * (decoding inline), the signer of `key` with its seq file, and the Publisher. A restart is
 * `stop()` and another call on the same `dir`.
 */
import { join } from 'node:path'
import type { SigningKey } from '../../protocol/index.js'
import { seqFileFor } from '../../identity/seq-counter.js'
import { StatementSigner } from '../../identity/statement-signer.js'
import { Store } from '../../node/db/store.js'
import { IngestPipeline } from '../../node/ingest/ingest-pipeline.js'
import { Publisher } from '../../node/ingest/publisher.js'

export interface PublishingParts {
  store: Store
  pipeline: IngestPipeline
  signer: StatementSigner
  publisher: Publisher
  /** Stops the publisher and the pipeline, then closes the store. */
  stop(): Promise<void>
}

export async function startPublishingParts(dir: string, key: SigningKey): Promise<PublishingParts> {
  const store = await Store.open(join(dir, 'db'))
  const signer = new StatementSigner(key, seqFileFor(join(dir, 'signing.key')))
  const pipeline = new IngestPipeline({ store }, { signer, workers: 0 })
  await pipeline.start()
  const publisher = new Publisher({ pipeline, store, signer })
  await publisher.start()
  return {
    store,
    pipeline,
    signer,
    publisher,
    stop: async () => {
      await publisher.stop()
      await pipeline.stop()
      await store.close()
    }
  }
}
