/**
 * The composition root. Starts, in order:
 *   data dir (0700) → keys (signing.key, peer.key; created on first start, 0600)
 *   → store (LevelDB, <data>/db) → trust state (policy, delegations, proofs) → ingest pipeline → publisher
 *   → network (libp2p, gossip, sync) → [rebuild pipeline] → [API]
 * and stops them in reverse. A failure while starting stops what already started.
 */
import { EventEmitter } from 'node:events'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import type { PeerId } from '@libp2p/interface'
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

interface Started {
  name: string
  stop: () => Promise<void>
}

export class RbqNode {
  readonly events = new EventEmitter<NodeEvents>()
  private readonly started: Started[] = []
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
    readonly rebuilds: RebuildPipeline | undefined
  ) {}

  /** Opens and starts everything; on failure, stops what had started and rethrows. */
  static async start(init: NodeInit): Promise<RbqNode> {
    const { config } = init
    const logger = init.logger ?? createLogger({ level: config.log.level, format: config.log.format })
    const metrics = init.metrics ?? new Metrics({ defaultMetrics: true })
    const paths = dataDirLayout(config.dataDir)
    const started: Started[] = []
    const stopAll = async (): Promise<void> => {
      for (const { name, stop } of started.splice(0).reverse()) {
        try {
          await stop()
        } catch (e) {
          logger.error({ component: name, ...errorFields(e) }, 'stop failed')
        }
      }
    }
    try {
      // Ports first: a second node on this machine is told what to change before it makes keys.
      await checkListenPorts(config)
      await fs.mkdir(paths.root, { recursive: true, mode: 0o700 })
      const { key: signingKey, created: newSigningKey } = await loadOrCreateKey(paths.signingKey)
      const { key: peerKey, created: newPeerKey } = await loadOrCreatePeerKey(paths.peerKey)
      if (newSigningKey || newPeerKey) logger.info({ signingKey: newSigningKey ? paths.signingKey : undefined, peerKey: newPeerKey ? paths.peerKey : undefined }, 'created keys')

      // The one signer of the node's key: publisher (rebuilds, API-signed statements), ingest (proofs), network (rebuild requests).
      const signer = new StatementSigner(signingKey, seqFileFor(paths.signingKey))

      const store = await Store.open(paths.db)
      started.push({ name: 'store', stop: () => store.close() })

      // The one owner of trust state (node/trust/README.md): read by the ingest quota (keys the
      // policy trusts are exempt from strangers' quotas), sync's sets, and the API's verdicts and watches.
      const policy = new PolicyFile(config.api.policy ?? policyPath(paths.root), logger.child({ component: 'policy' }))
      const trust = new TrustState({ store, policy, logger: logger.child({ component: 'trust' }) })
      await trust.start()
      started.push({ name: 'trust', stop: async () => trust.stop() })

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
      started.push({ name: 'ingest', stop: () => pipeline.stop() })

      const publisher = new Publisher({ pipeline, store, signer, logger: logger.child({ component: 'publisher' }) })
      await publisher.start()
      started.push({ name: 'publisher', stop: () => publisher.stop() })

      const network = await Network.create({ store, trust, pipeline, publisher, metrics, logger, signer }, { peerKey, p2p: config.p2p, sync: config.sync })
      await network.start()
      started.push({ name: 'network', stop: () => network.stop() })

      // Rebuilds: feeds → sampler → scheduler → builders → attestations through the publisher.
      let rebuilds: RebuildPipeline | undefined
      if (config.rebuild.enabled) {
        const { enabled: _, ...rebuildInit } = config.rebuild
        const pipelineForRebuilds = new RebuildPipeline({ store, publisher, metrics, logger: logger.child({ component: 'rebuild' }) }, { ...rebuildInit, dataDir: paths.root })
        await pipelineForRebuilds.start()
        started.push({ name: 'rebuild', stop: () => pipelineForRebuilds.stop() })
        rebuilds = pipelineForRebuilds
        // Other nodes' rebuild requests (gossip): honoured by the [rebuild] demand rule.
        network.rebuildRequests.onRequest((request) => void pipelineForRebuilds.honourRequest(request))
        started.push({ name: 'rebuild requests', stop: async () => network.rebuildRequests.onRequest(undefined) })
      }
      // `rbq rebuild-request --network`: a signed request on gossip; this node honours it too.
      const askNetwork = async (purl: string): Promise<{ recipients: number; local?: { status: string; detail: string } }> => {
        const { recipients } = await network.askNetwork(purl)
        return rebuilds === undefined ? { recipients } : { recipients, local: await rebuilds.honourRequest({ purl, requester: signingKey.publicKey.keyid }) }
      }

      // The local HTTP API (node/api/; [api] config), started last, stopped first.
      const api = await startNodeApi({
        dataDir: paths.root,
        config: config.api,
        store,
        pipeline,
        publisher,
        metrics,
        logger,
        publicKey: signingKey.publicKey,
        libp2p: network.host,
        syncingPeers: () => network.sync.activePeers,
        trust,
        // rbq stats --suite: the suite's versions from the archive cache the Debian builder uses.
        debianSuite: archiveSuites({
          cacheDir: config.rebuild.debian.cacheDir ?? join(paths.cache, 'debian'),
          ...(config.rebuild.debian.mirror === undefined ? {} : { mirror: config.rebuild.debian.mirror })
        }),
        ...(rebuilds === undefined ? {} : { rebuilds }),
        askNetwork
      })
      if (api !== undefined) started.push({ name: 'api', stop: () => api.stop() })

      // Memory back after heavy work: a full GC and parked decode workers once the node is idle.
      const memory = new MemoryReclaimer({ logger: logger.child({ component: 'memory' }), onIdle: [() => pipeline.parkWorkers()] })
      memory.start()
      started.push({ name: 'memory', stop: async () => memory.stop() })

      const node = new RbqNode(config, paths, logger, metrics, signingKey, store, trust, pipeline, publisher, network, rebuilds)
      node.started.push(...started)
      node.forwardEvents()
      logger.info(
        { version: VERSION, dataDir: paths.root, keyid: signingKey.publicKey.keyid, peerId: network.peerId.toString(), listening: network.addresses, api: api?.url ?? 'disabled' },
        'node started'
      )
      return node
    } catch (e) {
      logger.error(errorFields(e), 'node failed to start')
      await stopAll()
      throw e
    }
  }

  /** Stops everything in reverse start order (the store last, flushed on close). Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.logger.info('node stopping')
      for (const { name, stop } of this.started.splice(0).reverse()) {
        try {
          await stop()
        } catch (e) {
          this.logger.error({ component: name, ...errorFields(e) }, 'stop failed')
        }
      }
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
