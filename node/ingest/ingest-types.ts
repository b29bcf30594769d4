import type { EquivocationFrame, RbqError, VerifiedFrame } from '../../protocol/index.js'

/** Where a frame came from; fixed strings (metric label values). */
export const INGEST_SOURCES = ['gossip', 'sync', 'api', 'local'] as const
export type IngestSource = (typeof INGEST_SOURCES)[number]

/**
 * What became of a frame; fixed strings (metric label values). Gossip mapping (toGossipResult):
 *   stored    → accept   the frame is new, valid and now stored
 *   duplicate → ignore   already stored or in flight (code DUPLICATE)
 *   rejected  → reject   the sender sent something invalid: the peer is penalised
 *   ignored   → ignore   valid or unknown, but not taken now (quota, queue full, store error…)
 */
export const INGEST_STATUSES = ['stored', 'duplicate', 'rejected', 'ignored'] as const
export type IngestStatus = (typeof INGEST_STATUSES)[number]

export interface IngestResult {
  status: IngestStatus
  /** Frame id (hex SHA-256 of the bytes) once computed: absent only for oversized input. */
  id?: string
  /** The verified frame, when it was decoded (always for `stored`). */
  frame?: VerifiedFrame
  /** Why it was not stored (every status but `stored`). */
  error?: RbqError
  /** The equivocation proof this frame caused this node to sign and store. */
  proof?: EquivocationFrame
}

export interface IngestEvents {
  /** A frame was newly stored (the verdict engine re-evaluates; see pipeline.ts for gossip). */
  stored: [frame: VerifiedFrame, source: IngestSource]
  /** This node signed and stored an equivocation proof: publish it on /rbq/1/proofs. */
  equivocation: [proof: EquivocationFrame]
}
