/**
 * What the API's routes share: the node parts they read (components), the services built
 * over them, and the route description each route file returns (registered by server.ts and
 * listed in /openapi.json by openapi.ts).
 */
import type { TSchema } from '@sinclair/typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Libp2p } from '@libp2p/interface'
import type { Store } from '../db/store.js'
import type { IngestResult, IngestSource } from '../ingest/ingest-types.js'
import type { Logger } from '../../common/logger.js'
import type { Metrics } from '../metrics.js'
import type { SuiteVersions } from '../rebuild/rebuild-stats.js'
import type { AttestationContent, AttestationFrame, DelegationContent, DelegationFrame, PublicKey, VerifiedFrame } from '../../protocol/index.js'
import type { StatusResponse } from '../../protocol/api.js'
import type { EventHub } from './node-events.js'
import type { TrustState } from '../trust/trust-state.js'
import type { VerdictService } from '../consensus/verdict-service.js'
import type { WatchList } from '../consensus/watch-list.js'

/** The ingest pipeline as the API uses it (node/ingest/ingest-pipeline.ts IngestPipeline). */
export interface ApiIngest {
  submit(bytes: Uint8Array, source: IngestSource): Promise<IngestResult>
  submitMany(frames: readonly Uint8Array[], source: IngestSource): Promise<IngestResult[]>
  on(event: 'stored', listener: (frame: VerifiedFrame, source: IngestSource) => void): unknown
  off(event: 'stored', listener: (frame: VerifiedFrame, source: IngestSource) => void): unknown
}

/** The node's Publisher as the API uses it (node/ingest/publisher.ts): signs with the node's key and publishes. */
export interface ApiPublisher {
  readonly keyid: string
  attest(content: AttestationContent): Promise<AttestationFrame>
  delegate(content: DelegationContent): Promise<{ frame: DelegationFrame; status: 'stored' | 'duplicate' }>
}

/** The rebuild scheduler as the API uses it. */
export interface ApiRebuilds {
  /** Queues a rebuild of a canonical purl; `status` says what happened (e.g. queued, already-queued). */
  requestRebuild(purl: string): Promise<{ purl?: string; status: string; detail?: string }>
  /** Queue, running jobs and progress (feeds, done, ETA) for /v1/status. */
  stats(): NonNullable<StatusResponse['scheduler']>
}

export interface ApiComponents {
  store: Store
  metrics?: Metrics
  logger?: Logger
  /** The node's signing key (public half), shown by /v1/status. */
  publicKey?: PublicKey
  /** The libp2p host: peer id, addresses, connections (/v1/status, /v1/peers). */
  libp2p?: Pick<Libp2p, 'peerId' | 'getMultiaddrs' | 'getConnections'>
  /** Frames submitted through the API go through it; its `stored` events feed events and watches. */
  ingest?: ApiIngest
  /** Signs statements with the node's key for the CLI (POST /v1/rebuild-results). */
  publisher?: ApiPublisher
  rebuilds?: ApiRebuilds
  /**
   * Asks the network to rebuild a purl (a signed request on gossip, node/p2p/demand.ts); `local`
   * is what this node's own pipeline made of it, when it rebuilds.
   */
  askNetwork?: (purl: string) => Promise<{ recipients: number; local?: { status: string; detail: string } }>
  /** Catch-up state for /v1/status. */
  sync?: () => StatusResponse['sync']
  /** A Debian suite's versions, for GET /v1/stats?suite= (node/rebuild/rebuild-stats.ts archiveSuites). */
  debianSuite?: (suite: string, signal?: AbortSignal) => Promise<SuiteVersions & { name: string }>
}

export type Handler = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>

export interface ApiRoute {
  method: 'GET' | 'POST'
  url: string
  summary: string
  /** Write route: needs `Authorization: Bearer <token>`. */
  auth?: boolean
  schema: {
    querystring?: TSchema
    params?: TSchema
    body?: TSchema
    response?: Record<number, TSchema>
  }
  /**
   * Raw bodies: media type → body limit in bytes. The handler gets `req.body` as a Buffer, and
   * `schema.body` only documents it. Without it, bodies are JSON (depth-checked) and validated.
   */
  raw?: Readonly<Record<string, number>>
  /** Media type of a successful answer (default application/json). */
  produces?: string
  bodyLimit?: number
  handler: Handler
}

export interface ApiContext {
  readonly components: ApiComponents
  readonly verdicts: VerdictService
  readonly watch: WatchList
  readonly events: EventHub
  /** The node's trust state: its policy (status), graph, decoded frames. */
  readonly trust: TrustState
  readonly dataDir: string
  readonly startedAt: Date
  /** Base URL the server listens on (after start). */
  url(): string
}
