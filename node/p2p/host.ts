/**
 * The libp2p host: TCP + Noise + yamux, identify, ping, bootstrap (+ optional mDNS) and
 * gossipsub 17 (the continuation of @chainsafe/libp2p-gossipsub for libp2p 3; why: ARCHITECTURE.md).
 *
 * gossipsub settings and why:
 *   StrictNoSign        frames carry their own Ed25519 signatures; libp2p signatures would only
 *                       add bytes and tie a message to the relaying peer
 *   msgIdFn             SHA-256 of the data = the frame id, so a frame has one id everywhere
 *   asyncValidation     nothing is forwarded before our validator (gossip.ts) reports on it
 *   allowPublishToZeroTopicPeers / ignoreDuplicatePublishError
 *                       publishing never throws because nobody listens yet or the frame was
 *                       already seen; sync fills the gaps
 *   scoreParams / scoreThresholds
 *                       peers are scored for what they sent (P4: messages our validator
 *                       rejected), never for sharing an address (P6 off): gossip-score.ts
 */
import { createHash } from 'node:crypto'
import { noise } from '@chainsafe/libp2p-noise'
import { bootstrap } from '@libp2p/bootstrap'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify, type Identify } from '@libp2p/identify'
import { KEEP_ALIVE, type ConnectionGater, type PrivateKey } from '@libp2p/interface'
import { mdns } from '@libp2p/mdns'
import { ping, type Ping } from '@libp2p/ping'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { createLibp2p, type Libp2p, type Libp2pOptions } from 'libp2p'
import type { Registry } from 'prom-client'
import { MAX_FRAME_BYTES, TOPIC_REBUILD_REQUESTS, TOPICS } from '../../protocol/index.js'
import { gaugesWithoutTotalSuffix } from '../metrics.js'
import { VERSION } from '../../common/version.js'
import { GOSSIP_SCORE_PARAMS, GOSSIP_SCORE_THRESHOLDS } from './gossip-score.js'

export type HostServices = { identify: Identify; ping: Ping; pubsub: GossipSub }
export type Host = Libp2p<HostServices>

export interface HostInit {
  privateKey: PrivateKey
  listen: string[]
  announce?: string[]
  bootstrap?: string[]
  mdns?: boolean
  maxConnections?: number
  /** Consulted on every dial and inbound connection (sync bans). */
  connectionGater?: ConnectionGater
  /** Registry for libp2p's own metrics (libp2p_*, gossipsub via libp2p components). */
  metricsRegistry?: Registry
}

/** Bootstrap peers are tagged keep-alive so libp2p redials them when they drop. */
const BOOTSTRAP_TAG = `${KEEP_ALIVE}-rbq-bootstrap`

/** Creates the host, not started. */
export async function createHost(init: HostInit): Promise<Host> {
  const peerDiscovery: NonNullable<Libp2pOptions['peerDiscovery']> = []
  if (init.bootstrap !== undefined && init.bootstrap.length > 0) {
    peerDiscovery.push(bootstrap({ list: init.bootstrap, timeout: 50, tagName: BOOTSTRAP_TAG }))
  }
  if (init.mdns === true) peerDiscovery.push(mdns())
  return createLibp2p({
    start: false,
    privateKey: init.privateKey,
    nodeInfo: { name: 'rebuild-quorum', version: VERSION },
    addresses: { listen: init.listen, ...(init.announce !== undefined && init.announce.length > 0 ? { announce: init.announce } : {}) },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery,
    connectionManager: { maxConnections: init.maxConnections ?? 100 },
    ...(init.connectionGater === undefined ? {} : { connectionGater: init.connectionGater }),
    ...(init.metricsRegistry === undefined
      ? {}
      : { metrics: gaugesWithoutTotalSuffix(prometheusMetrics({ registry: init.metricsRegistry, collectDefaultMetrics: false, preserveExistingMetrics: true })) }),
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        globalSignaturePolicy: 'StrictNoSign',
        msgIdFn: (msg) => new Uint8Array(createHash('sha256').update(msg.data).digest()),
        asyncValidation: true,
        allowPublishToZeroTopicPeers: true,
        ignoreDuplicatePublishError: true,
        allowedTopics: [...TOPICS, TOPIC_REBUILD_REQUESTS],
        // One RPC may batch several messages; a single frame is at most MAX_FRAME_BYTES, and
        // larger ones must still arrive to be rejected (and penalised) by the validator.
        maxInboundDataLength: 16 * MAX_FRAME_BYTES,
        scoreParams: GOSSIP_SCORE_PARAMS,
        scoreThresholds: GOSSIP_SCORE_THRESHOLDS
      })
    }
  })
}
