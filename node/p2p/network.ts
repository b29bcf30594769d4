/**
 * The network subsystem: libp2p host + gossip + sync, wired to the ingest pipeline.
 *
 * Started after the store and the pipeline, stopped before them (node.ts). On start it loads
 * the seq index from the store, starts libp2p, subscribes, and begins syncing with peers as
 * they connect; bootstrap peers are re-dialled every sync interval while disconnected.
 * What it publishes on gossip: gossip-decision.ts.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { RbqError, type VerifiedFrame } from '../../protocol/index.js'
import type { P2PConfig, SyncConfig } from '../node-config.js'
import type { Store } from '../db/store.js'
import type { IngestPipeline } from '../ingest/ingest-pipeline.js'
import type { Publisher } from '../ingest/publisher.js'
import { errorFields, type Logger } from '../../common/logger.js'
import type { Metrics } from '../metrics.js'
import { RebuildRequests, type RebuildRequestSigner } from './demand.js'
import { Gossip } from './gossip.js'
import { publishWhatEntersHere } from './gossip-decision.js'
import { createHost, type Host } from './host.js'
import { PeerPenalties } from './peer-penalties.js'
import { loadSeqRuns, SeqRuns } from './seq-runs.js'
import { SyncService, type SyncTrust } from './sync-service.js'

export interface NetworkInit {
  peerKey: PrivateKey
  p2p: P2PConfig
  sync: SyncConfig
}

export interface NetworkComponents {
  store: Store
  /** The node's trust state: sync's delegation and proof sets. */
  trust: SyncTrust
  pipeline: IngestPipeline
  publisher: Publisher
  metrics: Metrics
  logger: Logger
  /** The node's signer (identity/statement-signer.ts): signs this node's rebuild requests (node/p2p/demand.ts). */
  signer: RebuildRequestSigner
}

/** A connected peer, as the API shows it. */
export interface PeerInfo {
  id: string
  addresses: string[]
  /** Protocols the peer announced via identify (empty until identified). */
  protocols: string[]
}

/** libp2p's "failed to listen" (port in use, address not local) as a config error naming the field. */
function listenError(e: unknown): unknown {
  if ((e as Error)?.name !== 'UnsupportedListenAddressesError') return e
  const details = (e as Error).message
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('/'))
  return new RbqError('CONFIG_INVALID', `config p2p.listen: cannot listen on ${details.join('; ') || 'the configured addresses'} (another rbq node on this machine? set [p2p] listen in the node's config.toml)`, { field: 'p2p.listen', cause: e })
}

export class Network {
  readonly host: Host
  readonly gossip: Gossip
  readonly sync: SyncService
  readonly runs = new SeqRuns()
  /** Rebuild requests on gossip: the pipeline subscribes with `rebuildRequests.onRequest`. */
  readonly rebuildRequests: RebuildRequests
  private readonly log: Logger
  private readonly bootstrapPeers: { id: PeerId; addr: ReturnType<typeof multiaddr> }[]
  private redialTimer: ReturnType<typeof setInterval> | undefined
  private stopPublishing: (() => void) | undefined
  private readonly redialMs: number

  private constructor(
    private readonly components: NetworkComponents,
    host: Host,
    readonly penalties: PeerPenalties,
    init: NetworkInit
  ) {
    this.host = host
    this.log = components.logger.child({ component: 'p2p' })
    this.rebuildRequests = new RebuildRequests({ signer: components.signer, logger: this.log })
    this.gossip = new Gossip({
      pubsub: host.services.pubsub,
      ingest: components.pipeline,
      metrics: components.metrics,
      logger: components.logger,
      otherTopics: new Map([[this.rebuildRequests.topic, this.rebuildRequests.validate]])
    })
    this.sync = new SyncService(
      { host, store: components.store, trust: components.trust, ingest: components.pipeline, runs: this.runs, penalties: this.penalties, metrics: components.metrics, logger: components.logger },
      {
        intervalMs: init.sync.intervalSeconds * 1000,
        batchFrames: init.sync.batchFrames,
        timeoutMs: init.sync.timeoutSeconds * 1000,
        maxConcurrentPeers: init.sync.maxConcurrentPeers
      }
    )
    this.redialMs = init.sync.intervalSeconds * 1000
    this.bootstrapPeers = init.p2p.bootstrap.map((text) => {
      const addr = multiaddr(text)
      const id = addr.getComponents().findLast((c) => c.name === 'p2p')?.value as string
      return { id: peerIdFromString(id), addr }
    })
  }

  static async create(components: NetworkComponents, init: NetworkInit): Promise<Network> {
    const penalties = new PeerPenalties({ addressBanAfter: init.p2p.addressBanAfter, addressBanExempt: init.p2p.addressBanExempt })
    const host = await createHost({
      privateKey: init.peerKey,
      listen: init.p2p.listen,
      announce: init.p2p.announce,
      bootstrap: init.p2p.bootstrap,
      mdns: init.p2p.mdns,
      maxConnections: init.p2p.maxConnections,
      connectionGater: penalties.gater,
      metricsRegistry: components.metrics.registry
    })
    return new Network(components, host, penalties, init)
  }

  get peerId(): PeerId {
    return this.host.peerId
  }

  /** Addresses peers can dial, with /p2p/<peer id>. */
  get addresses(): string[] {
    return this.host.getMultiaddrs().map((a) => a.toString())
  }

  peers(): PeerInfo[] {
    return this.host.getConnections().reduce<PeerInfo[]>((out, conn) => {
      const id = conn.remotePeer.toString()
      const known = out.find((p) => p.id === id)
      if (known === undefined) out.push({ id, addresses: [conn.remoteAddr.toString()], protocols: [] })
      else known.addresses.push(conn.remoteAddr.toString())
      return out
    }, [])
  }

  /**
   * Asks the network to rebuild `purl` (canonical): a signed request on the rebuild-requests
   * topic. Returns the number of peers it was sent to; QUOTA_EXCEEDED / DUPLICATE when this
   * node already asked too often or for the same purl just now.
   */
  async askNetwork(purl: string): Promise<{ id: string; recipients: number }> {
    const request = this.rebuildRequests.encode(purl)
    return { id: request.id, recipients: await this.gossip.publishOn(this.rebuildRequests.topic, request.bytes, request.id) }
  }

  async start(): Promise<void> {
    const { pipeline, publisher, store } = this.components
    // Index first, then listen: stored events from now on keep it current.
    pipeline.on('stored', this.onStored)
    await loadSeqRuns(store, this.runs)
    this.stopPublishing = publishWhatEntersHere({ pipeline, publisher }, (frame) => void this.gossip.publish(frame))
    try {
      await this.host.start()
      this.gossip.start()
      await this.sync.start()
    } catch (e) {
      await this.stop().catch(() => undefined)
      throw listenError(e)
    }
    this.redialTimer = setInterval(() => this.redialBootstrap(), this.redialMs)
    this.redialTimer.unref?.()
    this.log.info({ peerId: this.peerId.toString(), addresses: this.addresses, keys: this.runs.size }, 'p2p started')
  }

  async stop(): Promise<void> {
    clearInterval(this.redialTimer)
    this.stopPublishing?.()
    this.stopPublishing = undefined
    this.components.pipeline.off('stored', this.onStored)
    await this.sync.stop()
    this.gossip.stop()
    await this.host.stop()
    this.log.info('p2p stopped')
  }

  private readonly onStored = (frame: VerifiedFrame): void => {
    this.sync.onStored(frame)
  }

  private redialBootstrap(): void {
    for (const { id, addr } of this.bootstrapPeers) {
      if (this.host.getConnections(id).length > 0 || this.penalties.isBanned(id) || this.penalties.isAddressBanned(addr)) continue
      this.host.dial(addr).catch((e: unknown) => this.log.debug({ peer: id.toString(), ...errorFields(e) }, 'bootstrap redial failed'))
    }
  }
}
