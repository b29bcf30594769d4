/**
 * A real API server over a real LevelDB store and the real ingest pipeline (decoding on the
 * main thread), on 127.0.0.1 with an ephemeral port, in a temp data dir; plus the typed client.
 * The libp2p host and the rebuild scheduler are left out: routes that need them say so.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ApiClient } from '../../../../client/api-client.js'
import { policyPath } from '../../../../node/trust/policy-file.js'
import { ApiServer, type ApiComponents, type ApiServerInit } from '../../../../node/api/api-server.js'
import { formatPolicy, type Policy } from '../../../../node/consensus/index.js'
import { Store } from '../../../../node/db/store.js'
import { IngestPipeline } from '../../../../node/ingest/ingest-pipeline.js'
import { StatementSigner } from '../../../../identity/statement-signer.js'
import { Publisher } from '../../../../node/ingest/publisher.js'
import { Metrics } from '../../../../node/metrics.js'
import type { SigningKey } from '../../../../protocol/index.js'
import { makeTempDir } from '../../../utils/tmp.js'
import { key } from '../consensus/fixtures.js'

export interface ApiHarness {
  dir: string
  store: Store
  pipeline: IngestPipeline
  /** The node's signer and publisher (POST /v1/rebuild-results), over nodeKey and `<dir>/signing.key.seq`. */
  signer: StatementSigner
  publisher: Publisher
  server: ApiServer
  client: ApiClient
  nodeKey: SigningKey
  token: string
  url: string
  writePolicy(policy: Policy | string): Promise<void>
  stop(): Promise<void>
}

export async function startApi(
  options: { policy?: Policy | string; init?: Partial<ApiServerInit>; components?: Partial<ApiComponents> } = {}
): Promise<ApiHarness> {
  const { dir, cleanup } = await makeTempDir('rbq-api-')
  const store = await Store.open(join(dir, 'db'))
  const metrics = new Metrics()
  const nodeKey = key('api node')
  const signer = new StatementSigner(nodeKey, join(dir, 'signing.key.seq'))
  const pipeline = new IngestPipeline({ store, metrics }, { signer, workers: 0 })
  await pipeline.start()
  const publisher = new Publisher({ pipeline, store, signer })
  const writePolicy = async (p: Policy | string) => writeFile(policyPath(dir), typeof p === 'string' ? p : formatPolicy(p))
  if (options.policy !== undefined) await writePolicy(options.policy)
  const server = new ApiServer(
    { store, metrics, ingest: pipeline, publisher, publicKey: nodeKey.publicKey, ...options.components },
    { dataDir: dir, port: 0, ...options.init }
  )
  try {
    await server.start()
  } catch (e) {
    await pipeline.stop()
    await store.close()
    await cleanup()
    throw e
  }
  const token = (await readFile(join(dir, 'api.token'), 'utf8')).trim()
  return {
    dir,
    store,
    pipeline,
    signer,
    publisher,
    server,
    client: new ApiClient({ url: server.url, dataDir: dir }),
    nodeKey,
    token,
    url: server.url,
    writePolicy,
    stop: async () => {
      await server.stop()
      await pipeline.stop()
      await store.close()
      await cleanup()
    }
  }
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}
