/**
 * Turns verified frames into the operations of ONE atomic LevelDB batch: each frame, all of its
 * index entries, and the counters they change (per-key stats, per-kind counts). Nothing is
 * written here; the store commits `ops` in one `db.batch()` and adopts the new counters only
 * after the write succeeded, so a failed write leaves neither half a frame nor drifted counters.
 */
import type { AttestationFrame, StatementKind, VerifiedFrame } from '../../protocol/index.js'
import { artifactNamesOf } from '../consensus/verdict.js'
import { Bucket, arrivalValue, keys } from './buckets.js'
import type { KeyStats, PutOutcome } from './store-types.js'

export interface BatchOp {
  bucket: Bucket
  key: string
  value: unknown
}

/** An entry of Bucket.attestationBySeq. */
export interface SeqEntry {
  id: string
  payloadDigest: string
}

/** Committed state the batch builder consults (implemented by Store). */
export interface CommittedState {
  keyStats(keyid: string): Promise<KeyStats>
  seqEntries(keyid: string, seq: number): Promise<SeqEntry[]>
  hasSeq(keyid: string, seq: number): Promise<boolean>
  hasProof(keyid: string): boolean
  counts(): Record<StatementKind, number>
  /** The arrival number the next stored frame gets (Bucket.frameByArrival). */
  nextArrival(): number
}

const DUPLICATE: PutOutcome = { status: 'duplicate', conflictsWith: [] }

export class FrameBatch {
  readonly ops: BatchOp[] = []
  /** Working copies of the stats of every key this batch touches. */
  readonly stats = new Map<string, KeyStats>()
  readonly counts: Record<StatementKind, number>
  readonly proofKeys = new Set<string>()
  /** Frames and canonical bytes this batch adds. */
  readonly added = { frames: 0, bytes: 0 }
  /** The arrival number after this batch's frames. */
  nextArrival: number
  private readonly ids = new Set<string>()
  private readonly committedMaxSeq = new Map<string, number>()
  /** `keyid SEP seq` -> entries added by this batch. */
  private readonly pendingSeq = new Map<string, SeqEntry[]>()

  constructor(private readonly committed: CommittedState) {
    this.counts = { ...committed.counts() }
    this.nextArrival = committed.nextArrival()
  }

  /** Stages one frame; `alreadyStored` comes from one hasMany() over the whole batch. */
  async add(frame: VerifiedFrame, alreadyStored: boolean): Promise<PutOutcome> {
    if (alreadyStored || this.ids.has(frame.id)) return DUPLICATE
    let conflictsWith: string[] = []
    switch (frame.kind) {
      case 'attestation': {
        const staged = await this.addAttestation(frame)
        if (staged === undefined) return DUPLICATE
        conflictsWith = staged
        break
      }
      case 'delegation':
        this.ops.push(...indexEntriesOf(frame))
        break
      case 'equivocation': {
        // The first valid proof per key is kept; any later one proves nothing new.
        const keyid = frame.proof.keyid
        if (this.committed.hasProof(keyid) || this.proofKeys.has(keyid)) return DUPLICATE
        this.proofKeys.add(keyid)
        this.ops.push(...indexEntriesOf(frame))
        break
      }
    }
    this.ids.add(frame.id)
    this.put(Bucket.frame, frame.id, frame.bytes)
    // Proofs are never evicted, so they take no place in the eviction order.
    if (frame.kind !== 'equivocation') this.put(Bucket.frameByArrival, keys.arrival(this.nextArrival++, frame.id), arrivalValue(frame.signer.keyid, frame.bytes.length))
    this.added.frames += 1
    this.added.bytes += frame.bytes.length
    const stats = await this.statsOf(frame.signer.keyid)
    stats.frames += 1
    stats.bytes += frame.bytes.length
    this.counts[frame.kind] += 1
    return { status: 'stored', conflictsWith }
  }

  /** Final operations: staged frames and indexes, then the changed counters. */
  finish(): BatchOp[] {
    for (const [keyid, stats] of this.stats) this.put(Bucket.keyStats, keyid, stats)
    for (const [kind, n] of Object.entries(this.counts)) this.put(Bucket.frameCount, kind, n)
    return this.ops
  }

  /** Returns the conflicting frame ids, or undefined when the same statement is already stored. */
  private async addAttestation(frame: VerifiedFrame & { kind: 'attestation' }): Promise<string[] | undefined> {
    const keyid = frame.signer.keyid
    const { predicate } = frame.statement
    const seq = predicate.builder.seq
    const stats = await this.statsOf(keyid)
    const committedMax = this.committedMaxSeq.get(keyid) ?? 0
    const existing = [...(seq <= committedMax ? await this.committed.seqEntries(keyid, seq) : []), ...(this.pendingSeq.get(seqKey(keyid, seq)) ?? [])]
    // Same statement under another signature (a second valid Ed25519 signature of one payload):
    // nothing new, and keeping it would make (keyid, seq) look like an equivocation.
    if (existing.some((e) => e.payloadDigest === frame.payloadDigest)) return undefined

    this.ops.push(...indexEntriesOf(frame))
    const pending = this.pendingSeq.get(seqKey(keyid, seq)) ?? []
    pending.push({ id: frame.id, payloadDigest: frame.payloadDigest })
    this.pendingSeq.set(seqKey(keyid, seq), pending)

    stats.maxSeq = Math.max(stats.maxSeq, seq)
    if (seq === stats.contiguousSeq + 1) stats.contiguousSeq = await this.contiguousFrom(keyid, seq, committedMax)
    return existing.map((e) => e.id)
  }

  /** Walks up from a seq known to be present while the next one is stored or staged. */
  private async contiguousFrom(keyid: string, seq: number, committedMax: number): Promise<number> {
    let top = seq
    for (;;) {
      const next = top + 1
      const present = this.pendingSeq.has(seqKey(keyid, next)) || (next <= committedMax && (await this.committed.hasSeq(keyid, next)))
      if (!present) return top
      top = next
    }
  }

  private async statsOf(keyid: string): Promise<KeyStats> {
    let stats = this.stats.get(keyid)
    if (stats === undefined) {
      const committed = await this.committed.keyStats(keyid)
      this.committedMaxSeq.set(keyid, committed.maxSeq)
      stats = { ...committed }
      this.stats.set(keyid, stats)
    }
    return stats
  }

  private put(bucket: Bucket, key: string, value: unknown): void {
    this.ops.push({ bucket, key, value })
  }
}

/**
 * Every index entry of one stored frame (not its arrival entry, not the counters): the one
 * definition the write path, the reindex of an older layout, eviction and `rbq db check` share.
 * For an equivocation proof, the proofByKey entry (only the first proof per key is stored).
 */
export function indexEntriesOf(frame: VerifiedFrame): BatchOp[] {
  switch (frame.kind) {
    case 'attestation': {
      const seq = frame.statement.predicate.builder.seq
      return [...attestationIndexOps(frame), { bucket: Bucket.attestationBySeq, key: keys.attestationBySeq(frame.signer.keyid, seq, frame.id), value: frame.payloadDigest }]
    }
    case 'delegation':
      return [{ bucket: Bucket.delegationByDelegate, key: keys.delegationByDelegate(frame.statement.delegate.keyid, frame.id), value: '' }]
    case 'equivocation':
      return [{ bucket: Bucket.proofByKey, key: frame.proof.keyid, value: frame.id }]
  }
}

/**
 * The digest, name and (package, signer) index entries of one attestation: subject digests,
 * upstream digests (both keyed by digest then signer and valued with the package, so a digest
 * question reads only the keys its policy trusts), every name it speaks about (artifactNamesOf: a verdict for an
 * artifact reads statements whose subject or upstream names it), and (package, signer).
 */
export function attestationIndexOps(frame: AttestationFrame): BatchOp[] {
  const { predicate, subject } = frame.statement
  const signer = frame.signer.keyid
  const ops: BatchOp[] = []
  for (const s of subject) ops.push({ bucket: Bucket.framesBySha256, key: keys.bySha256(s.digest.sha256, signer, frame.id), value: predicate.package })
  for (const u of predicate.upstream) ops.push({ bucket: Bucket.framesByUpstreamSha256, key: keys.byUpstreamSha256(u.digest.sha256, signer, frame.id), value: predicate.package })
  const names = predicate.outcome === 'failed' ? subject.map((s) => s.name) : artifactNamesOf(frame)
  for (const name of new Set(names)) ops.push({ bucket: Bucket.framesByArtifact, key: keys.byArtifact(predicate.package, name, frame.id), value: '' })
  ops.push({ bucket: Bucket.framesByPackageKey, key: keys.byPackageKey(predicate.package, signer, frame.id), value: '' })
  return ops
}

function seqKey(keyid: string, seq: number): string {
  return `${keyid}\x00${seq}`
}
