/**
 * What each error code means for the sender of a frame:
 *   rejected  [REJECT] the bytes are invalid: no honest peer forwards them (gossip penalty)
 *   duplicate [IGNORE] already stored or in flight
 *   ignored   [IGNORE] everything else: not the sender's fault, or not provably so (quota,
 *             queue full, store error, INTERNAL, …). A peer is penalised only for invalid input,
 *             so a code added later is IGNORE until someone lists it here.
 */
import { RbqError, type ErrorCode } from '../../protocol/index.js'
import type { IngestResult, IngestStatus } from './ingest-types.js'

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
  // gossip: a valid frame on the wrong topic (checked by the network's validator)
  'TOPIC_MISMATCH'
])

export function statusOfCode(code: ErrorCode): Exclude<IngestStatus, 'stored'> {
  if (code === 'DUPLICATE') return 'duplicate'
  return REJECT_CODES.has(code) ? 'rejected' : 'ignored'
}

/** Any thrown value as a typed error; anything untyped is our bug (INTERNAL), never the sender's. */
export function asRbqError(e: unknown): RbqError {
  if (e instanceof RbqError) return e
  return new RbqError('INTERNAL', `unexpected error: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
}

export function failure(e: unknown, id?: string): IngestResult {
  const error = asRbqError(e)
  return id === undefined ? { status: statusOfCode(error.code), error } : { status: statusOfCode(error.code), id, error }
}

/** gossipsub 17 TopicValidatorResult values for an ingest status. */
export function toGossipResult(status: IngestStatus): 'accept' | 'reject' | 'ignore' {
  return status === 'stored' ? 'accept' : status === 'rejected' ? 'reject' : 'ignore'
}
