/**
 * The composition root. Starts, in order:
 *   data dir (0700) → keys (signing.key, peer.key; created on first start, 0600)
 *   → store (LevelDB, <data>/db) → trust state (policy, delegations, proofs) → ingest pipeline → publisher
 *   → network (libp2p, gossip, sync) → [rebuild pipeline] → [API] → memory reclaimer
 * and stops them in reverse. A failure while starting stops what already started.
 */
import { EventEmitter } from 'node:events'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import type { EquivocationFrame, SigningKey, VerifiedFrame } from '../protocol/index.js'
import { startNodeApi } from './api/node-api.js' // API
import type { NodeConfig } from './node-config.js'
import { Store } from './db/store.js'
import { loadOrCreateKey } from '../identity/signing-key.js'
import { seqFileFor } from '../identity/seq-counter.js'
import { StatementSigner } from '../identity/statement-signer.js'
import { IngestPipeline } from './ingest/ingest-pipeline.js'
import { Publisher } from './ingest/publisher.js'
import type { IngestSource } from './ingest/ingest-types.js'
import { createLogger, errorFields, type Logger } from '../common/logger.js'
import { MemoryReclaimer } from './memory.js'
import { Metrics } from './metrics.js'
import { Network, type PeerInfo } from './p2p/network.js'
import { loadOrCreatePeerKey } from '../identity/peer-key.js'
import { dataDirLayout, type DataDirLayout } from '../common/data-dir.js'
import { checkListenPorts } from './ports.js'
import { RebuildPipeline } from './rebuild/rebuild-pipeline.js'
import { archiveSuites } from './rebuild/rebuild-stats.js'
import { PolicyFile, policyPath } from './trust/policy-file.js'
import { TrustState } from './trust/trust-state.js'
import { VERSION } from '../common/version.js'

/** What a node tells observers (API /v1/events, tests). */
export interface NodeEvents {
  /** A frame was newly stored, whatever its source. */
  stored: [frame: VerifiedFrame, source: IngestSource]
  /** This node proved that a key equivocated (the proof is stored and published). */
  equivocation: [proof: EquivocationFrame]
  'peer:connect': [peer: string]
  'peer:disconnect': [peer: string]
}

export interface NodeInit {
  config: NodeConfig
  /** Default: pino on stderr at config.log.level. */
  logger?: Logger
  /** Default: a fresh registry with process metrics. */
  metrics?: Metrics
}

/** The parts started so far, stopped in reverse order: by stop(), or when a later part fails to start. */
class StartedParts {
  private readonly parts: { name: string; stop: () => Promise<void> | void }[] = []

  constructor(private readonly logger: Logger) {}

  /** Records a part that has started; returns it. */
  add<T>(name: string, part: T, stop: () => Promise<void> | void): T {
    this.parts.push({ name, stop })
    return part
  }

  async stopAll(): Promise<void> {
    for (const { name, stop } of this.parts.splice(0).reverse()) {
      try {
        await stop()
      } catch (e) {
        this.logger.error({ component: name, ...errorFields(e) }, 'stop failed')
      }
    }
  }
}

/** What the node reads from its data dir before anything starts: the data dir itself and its keys. */
async function openIdentity(config: NodeConfig, paths: DataDirLayout, logger: Logger): Promise<{ signingKey: SigningKey; peerKey: PrivateKey }> {
  // Ports first: a second node on this machine is told what to change before it makes keys.
  await checkListenPorts(config)
  await fs.mkdir(paths.root, { recursive: true, mode: 0o700 })
  const { key: signingKey, created: newSigningKey } = await loadOrCreateKey(paths.signingKey)
  const { key: peerKey, created: newPeerKey } = await loadOrCreatePeerKey(paths.peerKey)
  if (newSigningKey || newPeerKey) logger.info({ signingKey: newSigningKey ? paths.signingKey : undefined, peerKey: newPeerKey ? paths.peerKey : undefined }, 'created keys')
  return { signingKey, peerKey }
}

/** Store, trust state, ingest pipeline and publisher: everything a frame passes on its way in. */
async function startCore(parts: StartedParts, config: NodeConfig, paths: DataDirLayout, signer: StatementSigner, metrics: Metrics, logger: Logger) {
  const store = await Store.open(paths.db)
  parts.add('store', store, () => store.close())

  // The one owner of trust state (node/trust/README.md): read by the ingest quota (keys the
  // policy trusts are exempt from strangers' quotas), sync's sets, and the API's verdicts and watches.
  const policy = new PolicyFile(config.api.policy ?? policyPath(paths.root), logger.child({ component: 'policy' }))
  const trust = new TrustState({ store, policy, logger: logger.child({ component: 'trust' }) })
  await trust.start()
  parts.add('trust', trust, () => trust.stop())

  const pipeline = new IngestPipeline(
    { store, metrics, logger: logger.child({ component: 'ingest' }) },
    {
      signer,
      isTrusted: (keyid) => trust.isTrusted(keyid),
      trustedKeys: () => trust.trustedKeys(),
      quota: { maxFramesPerKey: config.ingest.maxFramesPerKey, maxBytesPerKey: config.ingest.maxBytesPerKey },
      strangerBudget: { maxStrangerFrames: config.ingest.maxStrangerFrames, maxStrangerBytes: config.ingest.maxStrangerBytes },
      ...(config.ingest.workers === undefined ? {} : { workers: config.ingest.workers })
    }
  )
  await pipeline.start()
  parts.add('ingest', pipeline, () => pipeline.stop())

  const publisher = new Publisher({ pipeline, store, signer, logger: logger.child({ component: 'publisher' }) })
  await publisher.start()
  parts.add('publisher', publisher, () => publisher.stop())
  return { store, trust, pipeline, publisher }
}

/** Rebuilds, when enabled: feeds → sampler → scheduler → builders → attestations through the publisher. */
async function startRebuilds(parts: StartedParts, config: NodeConfig, paths: DataDirLayout, core: { store: Store; publisher: Publisher }, network: Network, metrics: Metrics, logger: Logger) {
  if (!config.rebuild.enabled) return undefined
  const { enabled: _, ...rebuildInit } = config.rebuild
  const rebuilds = new RebuildPipeline({ store: core.store, publisher: core.publisher, metrics, logger: logger.child({ component: 'rebuild' }) }, { ...rebuildInit, dataDir: paths.root })
  await rebuilds.start()
  parts.add('rebuild', rebuilds, () => rebuilds.stop())
  // Other nodes' rebuild requests (gossip): honoured by the [rebuild] demand rule.
  network.rebuildRequests.onRequest((request) => void rebuilds.honourRequest(request))
  parts.add('rebuild requests', undefined, () => network.rebuildRequests.onRequest(undefined))
  return rebuilds
}

/** The local HTTP API (node/api/; [api] config), started last, stopped first; undefined when disabled. */
async function startApi(
  parts: StartedParts,
  config: NodeConfig,
  paths: DataDirLayout,
  core: { store: Store; trust: TrustState; pipeline: IngestPipeline; publisher: Publisher },
  network: Network,
  rebuilds: RebuildPipeline | undefined,
  signingKey: SigningKey,
  metrics: Metrics,
  logger: Logger
) {
  // `rbq rebuild-request --network`: a signed request on gossip; this node honours it too.
  const askNetwork = async (purl: string): Promise<{ recipients: number; local?: { status: string; detail: string } }> => {
    const { recipients } = await network.askNetwork(purl)
    return rebuilds === undefined ? { recipients } : { recipients, local: await rebuilds.honourRequest({ purl, requester: signingKey.publicKey.keyid }) }
  }
  const api = await startNodeApi({
    dataDir: paths.root,
    config: config.api,
    ...core,
    metrics,
    logger,
    publicKey: signingKey.publicKey,
    libp2p: network.host,
    syncingPeers: () => network.sync.activePeers,
    // rbq stats --suite: the suite's versions from the archive cache the Debian builder uses.
    debianSuite: archiveSuites({
      cacheDir: config.rebuild.debian.cacheDir ?? join(paths.cache, 'debian'),
      ...(config.rebuild.debian.mirror === undefined ? {} : { mirror: config.rebuild.debian.mirror })
    }),
    ...(rebuilds === undefined ? {} : { rebuilds }),
    askNetwork
  })
  return api === undefined ? undefined : parts.add('api', api, () => api.stop())
}

export class RbqNode {
  readonly events = new EventEmitter<NodeEvents>()
  private stopping: Promise<void> | undefined

  private constructor(
    readonly config: NodeConfig,
    readonly paths: DataDirLayout,
    readonly logger: Logger,
    readonly metrics: Metrics,
    readonly signingKey: SigningKey,
    readonly store: Store,
    readonly trust: TrustState,
    readonly pipeline: IngestPipeline,
    readonly publisher: Publisher,
    readonly network: Network,
    readonly rebuilds: RebuildPipeline | undefined,
    private readonly parts: StartedParts
  ) {}

  /** Opens and starts everything in the order of the header; on failure, stops what had started and rethrows. */
  static async start(init: NodeInit): Promise<RbqNode> {
    const { config } = init
    const logger = init.logger ?? createLogger({ level: config.log.level, format: config.log.format })
    const metrics = init.metrics ?? new Metrics({ defaultMetrics: true })
    const paths = dataDirLayout(config.dataDir)
    const parts = new StartedParts(logger)
    try {
      const { signingKey, peerKey } = await openIdentity(config, paths, logger)
      // The one signer of the node's key: publisher (rebuilds, API-signed statements), ingest (proofs), network (rebuild requests).
      const signer = new StatementSigner(signingKey, seqFileFor(paths.signingKey))
      const core = await startCore(parts, config, paths, signer, metrics, logger)
      const { store, trust, pipeline, publisher } = core

      const network = await Network.create({ store, trust, pipeline, publisher, metrics, logger, signer }, { peerKey, p2p: config.p2p, sync: config.sync })
      await network.start()
      parts.add('network', network, () => network.stop())

      const rebuilds = await startRebuilds(parts, config, paths, core, network, metrics, logger)
      const api = await startApi(parts, config, paths, core, network, rebuilds, signingKey, metrics, logger)

      // Memory back after heavy work: a full GC and parked decode workers once the node is idle.
      const memory = new MemoryReclaimer({ logger: logger.child({ component: 'memory' }), onIdle: [() => pipeline.parkWorkers()] })
      memory.start()
      parts.add('memory', memory, () => memory.stop())

      const node = new RbqNode(config, paths, logger, metrics, signingKey, store, trust, pipeline, publisher, network, rebuilds, parts)
      node.forwardEvents()
      logger.info(
        { version: VERSION, dataDir: paths.root, keyid: signingKey.publicKey.keyid, peerId: network.peerId.toString(), listening: network.addresses, api: api?.url ?? 'disabled' },
        'node started'
      )
      return node
    } catch (e) {
      logger.error(errorFields(e), 'node failed to start')
      await parts.stopAll()
      throw e
    }
  }

  /** Stops everything in reverse start order (the store last, flushed on close). Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.logger.info('node stopping')
      await this.parts.stopAll()
      this.events.removeAllListeners()
      this.logger.info('node stopped')
    })()
    return this.stopping
  }

  get libp2p(): Network['host'] {
    return this.network.host
  }

  get peerId(): PeerId {
    return this.network.peerId
  }

  /** Addresses other nodes can dial (multiaddrs with /p2p/<peer id>). */
  get addresses(): string[] {
    return this.network.addresses
  }

  peers(): PeerInfo[] {
    return this.network.peers()
  }

  private forwardEvents(): void {
    this.pipeline.on('stored', (frame, source) => this.events.emit('stored', frame, source))
    this.pipeline.on('equivocation', (proof) => this.events.emit('equivocation', proof))
    this.libp2p.addEventListener('peer:connect', (e) => this.events.emit('peer:connect', e.detail.toString()))
    this.libp2p.addEventListener('peer:disconnect', (e) => this.events.emit('peer:disconnect', e.detail.toString()))
  }
}
