/**
 * gossipsub peer scoring for this network (gossipsub v1.1 §Peer Scoring; @libp2p/gossipsub 17
 * option names). The rule: a peer is judged by what *it* sent, never by who shares its address.
 * Reasons for each value are in node/p2p/README.md §Gossip scoring; the hostile test
 * test/hostile/gossip-churn.test.ts holds them to it.
 */
import type { PeerScoreParams, PeerScoreThresholds, TopicScoreParams } from '@libp2p/gossipsub/score'
import { TOPIC_REBUILD_REQUESTS, TOPICS } from '../../protocol/index.js'

/** Score counters are decayed once a second; the decay factors below are per second. */
const DECAY_INTERVAL_MS = 1000

/**
 * Per topic. P1/P2 give a small positive score to peers that stay in the mesh and deliver
 * first; P3/P3b (mesh delivery rate) are off because our topics are quiet by nature; P4 is the
 * penalty for messages our validator REJECTed, squared, half-life ~69 s.
 */
export const TOPIC_SCORE: TopicScoreParams = {
  topicWeight: 1,
  timeInMeshWeight: 0.01,
  timeInMeshQuantum: 1000,
  timeInMeshCap: 3600,
  firstMessageDeliveriesWeight: 1,
  firstMessageDeliveriesDecay: 0.9,
  firstMessageDeliveriesCap: 100,
  meshMessageDeliveriesWeight: 0,
  meshMessageDeliveriesDecay: 0.5,
  meshMessageDeliveriesCap: 100,
  meshMessageDeliveriesThreshold: 20,
  meshMessageDeliveriesWindow: 10,
  meshMessageDeliveriesActivation: 5000,
  meshFailurePenaltyWeight: 0,
  meshFailurePenaltyDecay: 0.5,
  invalidMessageDeliveriesWeight: -4,
  invalidMessageDeliveriesDecay: 0.99
}

export const GOSSIP_SCORE_PARAMS: PeerScoreParams = {
  topics: Object.fromEntries([...TOPICS, TOPIC_REBUILD_REQUESTS].map((t) => [t, TOPIC_SCORE])),
  // Positive topic score is capped so good behaviour cannot bank credit against later abuse.
  topicScoreCap: 10,
  appSpecificScore: () => 0,
  appSpecificWeight: 1,
  // P6 off: the IP-colocation penalty punishes every peer on an address for the number of
  // identities seen there — retained for disconnected peers too — so churning identities from
  // one address silenced the honest peers behind the same NAT, on the same host, or on loopback.
  // Identities per address are bounded elsewhere: libp2p refuses more than 5 inbound
  // connections a second per host, max_connections caps the total, and sync bans reach the
  // address once several identities from it were banned (peer-penalties.ts).
  IPColocationFactorWeight: 0,
  IPColocationFactorThreshold: 10,
  IPColocationFactorWhitelist: new Set(),
  // P7: broken IWANT promises and GRAFTs during backoff — the peer's own protocol conduct.
  behaviourPenaltyWeight: -10,
  behaviourPenaltyThreshold: 0,
  behaviourPenaltyDecay: 0.9,
  decayInterval: DECAY_INTERVAL_MS,
  decayToZero: 0.01,
  // A peer that disconnects keeps a non-positive score this long, so reconnecting with the same
  // id does not wash a P4 penalty away. A fresh id is free, so a longer memory buys nothing and
  // costs one record per churned identity.
  retainScore: 10 * 60_000
}

/**
 * gossipsub's defaults, set explicitly. With P4 weight -4: 2 invalid messages (-16) stop gossip
 * (IHAVE/IWANT) with the peer, 4 (-64) stop publishing to it, 5 (-100) graylist it (its RPCs
 * are ignored); at a 0.99/s decay 5 invalid messages graylist for ~11 s, 20 for ~2.5 min.
 */
export const GOSSIP_SCORE_THRESHOLDS: PeerScoreThresholds = {
  gossipThreshold: -10,
  publishThreshold: -50,
  graylistThreshold: -80,
  acceptPXThreshold: 10,
  opportunisticGraftThreshold: 20
}
