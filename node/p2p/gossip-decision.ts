/**
 * What this node says on gossip, decided here and described only here (SPEC.md §8 is the wire
 * rule; node/p2p/README.md §What gets gossiped is the overview). gossip.ts is the transport
 * (subscribe, report results, metrics, send); network.ts wires this to the node's events.
 *
 * PUBLISHED (this node sends first): the frames that entered the network here —
 *   - stored through this node's API (ingest source 'api': `rbq publish`, `rbq import`, …);
 *   - this node's own statements, once the Publisher signed and stored them (its 'published'
 *     event: scheduler rebuilds, statements the API signs for the CLI);
 *   - the equivocation proofs this node signs (the pipeline's 'equivocation' event).
 * Never re-published: frames that came by gossip (gossipsub forwards those once validated),
 * by sync (the peers they came from have them), or that an in-process caller stored directly
 * with source 'local' (a store preloaded by tests and benches).
 *
 * FORWARDED: a received message, only when its topic's validator says ACCEPT. gossipsub runs
 * with asyncValidation, so nothing leaves this node unvalidated. Each check is
 *   [REJECT] the bytes are invalid: no honest peer sends or forwards them. The message is dropped
 *            and the peer loses score (P4, gossip-score.ts);
 *   [IGNORE] dropped without penalty: not the sender's fault, or not provably so.
 * Statement topics (/rbq/1/attestations, /rbq/1/delegations, /rbq/1/proofs), in order, first
 * failure wins:
 *   [REJECT] the frame parses: size ≤ 64 KiB, UTF-8, canonical JSON, schema, version, public key,
 *            key id, payload type (parseFrame: INPUT_TOO_LARGE, JSON_MALFORMED, NOT_CANONICAL, …)
 *   [REJECT] its kind is the topic's: attestation / delegation / equivocation (TOPIC_MISMATCH)
 *   then the ingest pipeline with source 'gossip' (its checks, in order, are listed in
 *   node/ingest/ingest-pipeline.ts), whose error code decides:
 *   [REJECT] a code of REJECT_CODES below: decoding and schema, keys and signatures, a proof
 *            that proves nothing (SIGNATURE_INVALID, SCHEMA_INVALID, PURL_INVALID,
 *            EQUIVOCATION_INVALID, …)
 *   [IGNORE] DUPLICATE: already stored or in flight, the same statement under another
 *            signature, a second proof against an already proven key
 *   [IGNORE] any other code: the node cannot take it now (QUEUE_FULL, QUOTA_EXCEEDED,
 *            STORE_ERROR, INTERNAL, …). A code added later is IGNORE until it is listed here.
 *   [ACCEPT] stored
 *   [IGNORE] the validator itself failed (a bug, a failing dependency), or the topic has none.
 * The rebuild-requests topic (/rbq/1/rebuild-requests) has its own validator, with its checks
 * marked the same way: node/p2p/demand.ts.
 *
 * The same code list makes the ingest status `rejected` (ingest/results.ts): an API client is
 * told its frame is invalid, and a sync peer that sends one earns a strike.
 */
import type { EventEmitter } from 'node:events'
import type { PeerId } from '@libp2p/interface'
import {
  asRbqError,
  parseFrame,
  RbqError,
  TOPIC_ATTESTATIONS,
  TOPIC_DELEGATIONS,
  TOPIC_PROOFS,
  type ErrorCode,
  type StatementKind,
  type Topic,
  type VerifiedFrame
} from '../../protocol/index.js'
import type { IngestEvents, IngestResult, IngestSource, IngestStatus } from '../ingest/ingest-types.js'

/** gossipsub 17 TopicValidatorResult values. */
export type GossipResult = 'accept' | 'reject' | 'ignore'

export interface GossipVerdict {
  result: GossipResult
  /** Why it was not accepted (absent for accept). */
  error?: RbqError
}

export type TopicValidator = (data: Uint8Array, from: PeerId) => Promise<GossipVerdict>

/** Error codes that mean the bytes are invalid: [REJECT]. Every other code is [IGNORE]. */
const REJECT_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  // decoding and schema
  'INPUT_TOO_LARGE',
  'JSON_MALFORMED',
  'NOT_CANONICAL',
  'SCHEMA_INVALID',
  'VERSION_UNSUPPORTED',
  'BASE64_INVALID',
  'PAYLOAD_TYPE_UNKNOWN',
  'PURL_INVALID',
  'PATTERN_INVALID',
  // keys and signatures
  'KEY_INVALID',
  'KEY_SMALL_ORDER',
  'KEYID_MISMATCH',
  'SIGNATURE_INVALID',
  'EQUIVOCATION_INVALID',
  // a valid frame on the wrong topic
  'TOPIC_MISMATCH'
])

/** [REJECT] or [IGNORE] for a message that failed with `code`. */
export function gossipResultOfCode(code: ErrorCode): 'reject' | 'ignore' {
  return REJECT_CODES.has(code) ? 'reject' : 'ignore'
}

/** The gossip result of an ingest status (ingest/results.ts derives the status from the code). */
export function toGossipResult(status: IngestStatus): GossipResult {
  return status === 'stored' ? 'accept' : status === 'rejected' ? 'reject' : 'ignore'
}

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

/** What the statement topics' validator needs from the ingest pipeline. */
export interface GossipIngest {
  submit(bytes: Uint8Array, source: IngestSource, peer?: string): Promise<IngestResult>
}

/** The validator of one statement topic: the checks of the module comment, in its order. */
export function statementTopicValidator(topic: Topic, ingest: GossipIngest): TopicValidator {
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

/** Runs a topic's validator; a topic without one, or a validator that throws, is [IGNORE]. */
export async function judge(validator: TopicValidator | undefined, data: Uint8Array, from: PeerId): Promise<GossipVerdict> {
  // No validator: unreachable while we subscribe only to our topics; never forward what we cannot judge.
  if (validator === undefined) return { result: 'ignore' }
  try {
    return await validator(data, from)
  } catch (e) {
    // A bug or a failing dependency is not the sender's fault.
    return { result: 'ignore', error: asRbqError(e) }
  }
}

/** The events that announce frames this node publishes: the ingest pipeline's and the Publisher's. */
export interface PublishedFrameEvents {
  pipeline: Pick<EventEmitter<IngestEvents>, 'on' | 'off'>
  publisher: Pick<EventEmitter<{ published: [frame: VerifiedFrame] }>, 'on' | 'off'>
}

/**
 * Calls `publish` for every frame this node publishes (the module comment's PUBLISHED list);
 * returns the function that stops it.
 */
export function publishWhatEntersHere(events: PublishedFrameEvents, publish: (frame: VerifiedFrame) => void): () => void {
  const onStored = (frame: VerifiedFrame, source: IngestSource): void => {
    if (source === 'api') publish(frame)
  }
  const onSignedHere = (frame: VerifiedFrame): void => publish(frame)
  events.pipeline.on('stored', onStored)
  events.pipeline.on('equivocation', onSignedHere)
  events.publisher.on('published', onSignedHere)
  return () => {
    events.publisher.off('published', onSignedHere)
    events.pipeline.off('equivocation', onSignedHere)
    events.pipeline.off('stored', onStored)
  }
}
