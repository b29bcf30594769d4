/**
 * The API's place in the composition root (node/node.ts): builds the ApiServer over the node's
 * parts, as configured by [api]. Kept here so node.ts needs one call in its API section.
 */
import type { Libp2p } from '@libp2p/interface'
import type { ApiConfig } from '../node-config.js'
import type { Store } from '../db/store.js'
import type { IngestPipeline } from '../ingest/ingest-pipeline.js'
import type { Logger } from '../../common/logger.js'
import type { Metrics } from '../metrics.js'
import type { PublicKey } from '../../protocol/index.js'
import type { StatusResponse } from '../../protocol/api.js'
import type { ApiComponents, ApiRebuilds } from './context.js'
import { ApiServer } from './api-server.js'
import type { TrustState } from '../trust/trust-state.js'

export interface NodeApiParts {
  dataDir: string
  config: ApiConfig
  store: Store
  pipeline: IngestPipeline
  /** The node's Publisher: signs what the CLI asks it to (node/api/routes/statement-routes.ts). */
  publisher?: ApiComponents['publisher']
  metrics: Metrics
  logger: Logger
  publicKey: PublicKey
  libp2p?: Pick<Libp2p, 'peerId' | 'getMultiaddrs' | 'getConnections'>
  /** Peers a catch-up session runs or waits for (node/p2p/sync-service.ts activePeers). */
  syncingPeers?: () => readonly string[]
  rebuilds?: ApiRebuilds
  askNetwork?: ApiComponents['askNetwork']
  /** The node's trust state (started), shared with the ingest quota and sync. */
  trust?: TrustState
  /** A Debian suite's versions for GET /v1/stats?suite= (node/rebuild/rebuild-stats.ts archiveSuites). */
  debianSuite?: ApiComponents['debianSuite']
}

/** Catch-up state from the sync service's active sessions. */
function syncStatus(syncingPeers: () => readonly string[]): StatusResponse['sync'] {
  const n = syncingPeers().length
  return n === 0 ? { state: 'idle' } : { state: 'catching-up', detail: `catching up with ${n} ${n === 1 ? 'peer' : 'peers'}` }
}

/** Starts the API unless [api] enabled = false; undefined then. */
export async function startNodeApi(parts: NodeApiParts): Promise<ApiServer | undefined> {
  if (!parts.config.enabled) return undefined
  const { syncingPeers } = parts
  const server = new ApiServer(
    {
      store: parts.store,
      metrics: parts.metrics,
      logger: parts.logger,
      publicKey: parts.publicKey,
      ingest: parts.pipeline,
      ...(parts.publisher === undefined ? {} : { publisher: parts.publisher }),
      ...(parts.libp2p === undefined ? {} : { libp2p: parts.libp2p }),
      ...(syncingPeers === undefined ? {} : { sync: () => syncStatus(syncingPeers) }),
      ...(parts.rebuilds === undefined ? {} : { rebuilds: parts.rebuilds }),
      ...(parts.askNetwork === undefined ? {} : { askNetwork: parts.askNetwork }),
      ...(parts.debianSuite === undefined ? {} : { debianSuite: parts.debianSuite })
    },
    {
      dataDir: parts.dataDir,
      host: parts.config.host,
      limits: parts.config.limits,
      ...(parts.config.port === undefined ? {} : { port: parts.config.port }),
      ...(parts.config.policy === undefined ? {} : { policyFile: parts.config.policy }),
      ...(parts.trust === undefined ? {} : { trust: parts.trust })
    }
  )
  await server.start()
  return server
}
