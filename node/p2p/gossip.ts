/**
 * Gossip on /rbq/1/attestations, /rbq/1/delegations and /rbq/1/proofs (SPEC.md §Gossip).
 *
 * gossipsub runs with asyncValidation: every message of a subscribed topic reaches
 * `gossipsub:message`, is validated by its topic's validator (Lodestar style: ordered checks,
 * each [REJECT] = the peer is penalised (P4) and the message dropped, or [IGNORE] = dropped
 * without penalty), and only then reported back, so gossipsub forwards nothing unvalidated.
 * The verdict comes from the one mapping toGossipResult (node/ingest/results.ts).
 *
 * What this node publishes is decided in network.ts; frames from gossip are forwarded by
 * gossipsub itself, frames from sync are not re-published (the peers they came from have them).
 */
import type { GossipSub, GossipsubMessage } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import type { Counter } from 'prom-client'
import {
  parseFrame,
  RbqError,
  TOPIC_ATTESTATIONS,
  TOPIC_DELEGATIONS,
  TOPIC_PROOFS,
  TOPICS,
  type ErrorCode,
  type StatementKind,
  type Topic,
  type VerifiedFrame
} from '../../protocol/index.js'
import { asRbqError, toGossipResult } from '../ingest/results.js'
import type { IngestResult, IngestSource } from '../ingest/ingest-types.js'
import { errorFields, type Logger } from '../../common/logger.js'
import type { Metrics } from '../metrics.js'

export type GossipResult = 'accept' | 'reject' | 'ignore'

export const TOPIC_OF_KIND: Record<StatementKind, Topic> = {
  attestation: TOPIC_ATTESTATIONS,
  delegation: TOPIC_DELEGATIONS,
  equivocation: TOPIC_PROOFS
}

const KIND_OF_TOPIC: Record<Topic, StatementKind> = {
  [TOPIC_ATTESTATIONS]: 'attestation',
  [TOPIC_DELEGATIONS]: 'delegation',
  [TOPIC_PROOFS]: 'equivocation'
}

/** What gossip needs from the ingest pipeline. */
export interface GossipIngest {
  submit(bytes: Uint8Array, source: IngestSource, peer?: string): Promise<IngestResult>
}

/**
 * reportMessageValidationResult exists on gossipsub 17's implementation but is missing from
 * its exported `GossipSub` interface: this is the one place we reach for it.
 */
interface GossipSubWithAsyncValidation extends GossipSub {
  reportMessageValidationResult(msgId: string, propagationSource: string, acceptance: GossipResult): void
}

export interface GossipComponents {
  pubsub: GossipSub
  ingest: GossipIngest
  metrics: Metrics
  logger: Logger
  /** Topics that carry no statements (rebuild requests, node/p2p/demand.ts), with their validators. */
  otherTopics?: ReadonlyMap<string, TopicValidator>
}

export interface GossipVerdict {
  result: GossipResult
  /** Why it was not accepted (absent for accept). */
  error?: RbqError
}

/**
 * The validator of one topic. Checks, in order:
 *   [REJECT] the frame parses: size ≤ 64 KiB, UTF-8, canonical JSON, schema, version, public key,
 *            key id, payload type (codes from parseFrame: INPUT_TOO_LARGE, JSON_MALFORMED, …)
 *   [REJECT] its kind is the topic's: attestation / delegation / equivocation (TOPIC_MISMATCH)
 *   then the ingest pipeline (source 'gossip'), whose status maps through toGossipResult:
 *   [REJECT] the signature verifies and the statement is valid (SIGNATURE_INVALID,
 *            SCHEMA_INVALID, PURL_INVALID, EQUIVOCATION_INVALID, …)
 *   [IGNORE] it is not already stored or in flight (DUPLICATE)
 *   [IGNORE] the node can take it now: signer quota, queue room, a working store
 *            (QUOTA_EXCEEDED, QUEUE_FULL, STORE_ERROR, INTERNAL)
 *   [ACCEPT] stored
 */
export type TopicValidator = (data: Uint8Array, from: PeerId) => Promise<GossipVerdict>

function topicValidator(topic: Topic, ingest: GossipIngest): TopicValidator {
  const kind = KIND_OF_TOPIC[topic]
  return async (data, from) => {
    let parsedKind: StatementKind
    try {
      parsedKind = parseFrame(data).kind
    } catch (e) {
      return { result: 'reject', error: asRbqError(e) }
    }
    if (parsedKind !== kind) {
      return { result: 'reject', error: new RbqError('TOPIC_MISMATCH', `a ${parsedKind} frame arrived on ${topic}, which carries ${kind} frames`) }
    }
    const outcome = await ingest.submit(data, 'gossip', from.toString())
    const result = toGossipResult(outcome.status)
    return result === 'accept' || outcome.error === undefined ? { result } : { result, error: outcome.error }
  }
}

export class Gossip {
  private readonly pubsub: GossipSubWithAsyncValidation
  private readonly validators: ReadonlyMap<string, TopicValidator>
  private readonly validated: Counter<'topic' | 'result' | 'code'>
  private readonly published: Counter<'topic' | 'outcome'>
  private readonly log: Logger
  private running = false

  constructor(components: GossipComponents) {
    this.pubsub = components.pubsub as GossipSubWithAsyncValidation
    this.validators = new Map<string, TopicValidator>([...TOPICS.map((t): [string, TopicValidator] => [t, topicValidator(t, components.ingest)]), ...(components.otherTopics ?? [])])
    this.log = components.logger.child({ component: 'gossip' })
    this.validated = components.metrics.counter({
      name: 'rbq_gossip_messages_total',
      help: 'Gossip messages validated, by topic, result (accept|reject|ignore) and error code (none for accept)',
      labelNames: ['topic', 'result', 'code']
    })
    this.published = components.metrics.counter({
      name: 'rbq_gossip_published_total',
      help: 'Frames this node published on gossip, by topic and outcome (sent|failed)',
      labelNames: ['topic', 'outcome']
    })
  }

  start(): void {
    if (this.running) return
    this.running = true
    this.pubsub.addEventListener('gossipsub:message', this.onMessage)
    for (const topic of this.validators.keys()) this.pubsub.subscribe(topic)
  }

  stop(): void {
    if (!this.running) return
    this.running = false
    this.pubsub.removeEventListener('gossipsub:message', this.onMessage)
    for (const topic of this.validators.keys()) this.pubsub.unsubscribe(topic)
  }

  /** Validates one message the way a received one is (exposed for tests and metrics). */
  async validate(topic: string, data: Uint8Array, from: PeerId): Promise<GossipVerdict> {
    const validator = this.validators.get(topic)
    // Unreachable while we subscribe only to our topics; never forward what we cannot judge.
    if (validator === undefined) return { result: 'ignore' }
    try {
      return await validator(data, from)
    } catch (e) {
      // A bug or a failing dependency is not the sender's fault.
      return { result: 'ignore', error: asRbqError(e) }
    }
  }

  private readonly onMessage = (event: CustomEvent<GossipsubMessage>): void => {
    const { msgId, msg, propagationSource } = event.detail
    void this.validate(msg.topic, msg.data, propagationSource).then((verdict) => {
      const code: ErrorCode | 'none' = verdict.error?.code ?? 'none'
      this.validated.inc({ topic: msg.topic, result: verdict.result, code })
      if (verdict.result === 'reject') {
        this.log.warn({ peer: propagationSource.toString(), topic: msg.topic, ...errorFields(verdict.error) }, 'gossip message rejected')
      } else if (verdict.error !== undefined && verdict.error.code !== 'DUPLICATE') {
        this.log.debug({ peer: propagationSource.toString(), topic: msg.topic, ...errorFields(verdict.error) }, 'gossip message ignored')
      }
      if (this.running) this.pubsub.reportMessageValidationResult(msgId, propagationSource.toString(), verdict.result)
    })
  }

  /** Publishes a frame on its kind's topic; failures are logged, never thrown. */
  async publish(frame: Pick<VerifiedFrame, 'kind' | 'bytes' | 'id'>): Promise<void> {
    await this.publishOn(TOPIC_OF_KIND[frame.kind], frame.bytes, frame.id).catch(() => undefined)
  }

  /** Publishes a message on one of our topics; returns how many peers it went to; throws on failure. */
  async publishOn(topic: string, bytes: Uint8Array, id: string): Promise<number> {
    if (!this.running) throw new RbqError('API_UNAVAILABLE', 'gossip is not running')
    try {
      const { recipients } = await this.pubsub.publish(topic, bytes)
      this.published.inc({ topic, outcome: 'sent' })
      this.log.debug({ topic, id, recipients: recipients.length }, 'published')
      return recipients.length
    } catch (e) {
      this.published.inc({ topic, outcome: 'failed' })
      this.log.warn({ topic, id, ...errorFields(e) }, 'publish failed')
      throw e
    }
  }
}
