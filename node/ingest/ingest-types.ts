import type { EquivocationFrame, RbqError, VerifiedFrame } from '../../protocol/index.js'

/** Where a frame came from; fixed strings (metric label values). */
export const INGEST_SOURCES = ['gossip', 'sync', 'api', 'local'] as const
export type IngestSource = (typeof INGEST_SOURCES)[number]

/**
 * What became of a frame; fixed strings (metric label values): stored; duplicate (code
 * DUPLICATE); rejected (the bytes are invalid); ignored (not taken now: quota, queue full, store
 * error…). Which codes are which, and the gossip result of each: node/p2p/gossip-decision.ts.
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
  /** A frame was newly stored (the verdict engine re-evaluates; gossip: node/p2p/gossip-decision.ts). */
  stored: [frame: VerifiedFrame, source: IngestSource]
  /** This node signed and stored an equivocation proof (published on /rbq/1/proofs). */
  equivocation: [proof: EquivocationFrame]
}
