/**
 * Gossip transport on /rbq/1/attestations, /rbq/1/delegations and /rbq/1/proofs (SPEC.md §8),
 * plus the topics of node/p2p/demand.ts: subscribes, hands each message to its topic's
 * validator, reports the result to gossipsub (asyncValidation: it forwards only what was
 * accepted), counts and logs it, and sends what this node publishes. What is published, what is
 * forwarded, and every check's REJECT/IGNORE: gossip-decision.ts.
 */
import type { GossipSub, GossipsubMessage } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import type { Counter } from 'prom-client'
import { RbqError, TOPICS, type ErrorCode, type VerifiedFrame } from '../../protocol/index.js'
import { errorFields, type Logger } from '../../common/logger.js'
import type { Metrics } from '../metrics.js'
import { judge, statementTopicValidator, TOPIC_OF_KIND, type GossipIngest, type GossipResult, type GossipVerdict, type TopicValidator } from './gossip-decision.js'

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

export class Gossip {
  private readonly pubsub: GossipSubWithAsyncValidation
  private readonly validators: ReadonlyMap<string, TopicValidator>
  private readonly validated: Counter<'topic' | 'result' | 'code'>
  private readonly published: Counter<'topic' | 'outcome'>
  private readonly log: Logger
  private running = false

  constructor(components: GossipComponents) {
    this.pubsub = components.pubsub as GossipSubWithAsyncValidation
    this.validators = new Map<string, TopicValidator>([...TOPICS.map((t): [string, TopicValidator] => [t, statementTopicValidator(t, components.ingest)]), ...(components.otherTopics ?? [])])
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
  validate(topic: string, data: Uint8Array, from: PeerId): Promise<GossipVerdict> {
    return judge(this.validators.get(topic), data, from)
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
