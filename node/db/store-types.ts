import type { AbstractSublevel } from 'abstract-level'
import type { Level } from 'level'

export interface StoreInit {
  /** Create the LevelDB directory when missing (default true; false to open existing data only). */
  createIfMissing?: boolean
}

export type PutStatus = 'stored' | 'duplicate'

export interface PutOutcome {
  status: PutStatus
  /**
   * Stored attestations only: ids of frames already stored with the same (keyid, seq) and a
   * different statement. Non-empty means the signer equivocated.
   */
  conflictsWith: string[]
}

/** What one signing key has stored here (Bucket.keyStats). */
export interface KeyStats {
  frames: number
  bytes: number // canonical frame bytes, indexes not counted
  maxSeq: number // highest attestation seq stored (0: none)
  contiguousSeq: number // highest n such that seqs 1..n are all stored (0: seq 1 missing)
}

export type KeyUsage = Pick<KeyStats, 'frames' | 'bytes'>

export type SublevelName = 'jobs' | 'watched' | 'meta'

/** A JSON key/value space of the store for other subsystems (scheduler, watched artifacts, meta). */
export type JsonSublevel<V = unknown> = AbstractSublevel<Level<string, string>, string | Buffer | Uint8Array, string, V>

/** An attestation named by a digest index, with the signer and package its entry records. */
export interface DigestEntry {
  id: string
  keyid: string
  package: string
}

/** An entry of the arrival order (Bucket.frameByArrival). */
export interface ArrivalEntry {
  /** The entry's key (arrival number and frame id). */
  key: string
  id: string
  keyid: string
  bytes: number
}
