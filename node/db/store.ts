/**
 * The node's store: verified frames in their canonical bytes and the indexes the verdict
 * engine, sync and the API read, over one LevelDB directory (`level` 10 / classic-level).
 * Key layout: buckets.ts. Every frame is written together with all of its index entries and
 * counters in one atomic batch (frame-batch.ts); writes are serialised, reads are not.
 *
 * Every failure of LevelDB (disk full, I/O error, closed database) surfaces as
 * RbqError('STORE_ERROR'); a failed write changes nothing.
 */
import type { AbstractSublevel } from 'abstract-level'
import { Level } from 'level'
import { RbqError, openStoredFrame, type StatementKind, type VerifiedFrame } from '../../protocol/index.js'
import type { Run } from '../../protocol/sync.js'
import { Bucket, STORE_LAYOUT_VERSION, bucketName, lastPart, parseAttestationBySeq, prefixRange, seqRange, type KeyRange } from './buckets.js'
import { attestationIndexOps, FrameBatch, type BatchOp, type CommittedState, type SeqEntry } from './frame-batch.js'
import type { JsonSublevel, KeyStats, PutOutcome, PutStatus, StoreInit, SublevelName } from './types.js'

type Sub<V> = AbstractSublevel<Level<string, string>, string | Buffer | Uint8Array, string, V>

const KINDS: readonly StatementKind[] = ['attestation', 'delegation', 'equivocation']
const NO_STATS: KeyStats = { frames: 0, bytes: 0, maxSeq: 0, contiguousSeq: 0 }

function storeError(what: string, e: unknown): RbqError {
  if (e instanceof RbqError) return e
  const cause = (e as { cause?: { message?: string } }).cause?.message
  const detail = `${(e as Error).message}${cause === undefined ? '' : ` (${cause})`}`
  return new RbqError('STORE_ERROR', `${what}: ${detail}`, { cause: e })
}

/** classic-level hands out Buffers; callers get plain Uint8Array views of the same memory. */
function plainBytes(bytes: Uint8Array): Uint8Array {
  return Buffer.isBuffer(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes
}

export class Store {
  /** One sublevel per bucket; each has its own value type, which bucket<V>() restores. */
  private readonly buckets = new Map<Bucket, Sub<any>>()
  private readonly frames: Sub<Uint8Array>
  private readonly counts: Record<StatementKind, number> = { attestation: 0, delegation: 0, equivocation: 0 }
  private readonly proofKeys = new Set<string>()
  /** Committed KeyStats of keys read or written since open (bounded by the keys seen). */
  private readonly statsCache = new Map<string, KeyStats>()
  private writeChain: Promise<unknown> = Promise.resolve()

  private constructor(private readonly db: Level<string, string>) {
    this.frames = db.sublevel<string, Uint8Array>(bucketName(Bucket.frame), { valueEncoding: 'view' })
    this.buckets.set(Bucket.frame, this.frames)
    for (const b of [Bucket.schema, Bucket.keyStats, Bucket.frameCount, Bucket.jobs, Bucket.watched, Bucket.meta]) {
      this.buckets.set(b, db.sublevel<string, unknown>(bucketName(b), { valueEncoding: 'json' }))
    }
    for (const b of [Bucket.framesBySha256, Bucket.framesByUpstreamSha256, Bucket.framesByArtifact, Bucket.attestationBySeq, Bucket.delegationByDelegate, Bucket.proofByKey]) {
      this.buckets.set(b, db.sublevel<string, string>(bucketName(b), { valueEncoding: 'utf8' }))
    }
  }

  static async open(dir: string, init: StoreInit = {}): Promise<Store> {
    const db = new Level<string, string>(dir, { createIfMissing: init.createIfMissing ?? true })
    try {
      await db.open()
    } catch (e) {
      const locked = (e as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED'
      throw storeError(locked ? `store ${dir} is in use by another process` : `cannot open store ${dir}`, e)
    }
    const store = new Store(db)
    try {
      await store.load(dir)
    } catch (e) {
      await db.close()
      throw storeError(`cannot load store ${dir}`, e)
    }
    return store
  }

  /** Waits for the write in progress, then closes LevelDB (flushing it). */
  async close(): Promise<void> {
    await this.writeChain
    await this.db.close()
  }

  get isOpen(): boolean {
    return this.db.status === 'open'
  }

  // --- writes ------------------------------------------------------------------------------

  /** Stores a verified frame with all its index entries in one atomic batch; idempotent. */
  async putFrame(frame: VerifiedFrame): Promise<PutStatus> {
    const [outcome] = await this.putFrames([frame])
    return outcome?.status ?? 'duplicate'
  }

  /**
   * Stores several frames in ONE atomic batch (all or none), in order. A frame already stored,
   * repeated in the batch, an attestation whose (keyid, seq, statement) is stored under
   * another signature, or a second proof against an already proven key is a `duplicate`.
   */
  putFrames(frames: readonly VerifiedFrame[]): Promise<PutOutcome[]> {
    const result = this.writeChain.then(() => this.write(frames))
    this.writeChain = result.catch(() => undefined)
    return result
  }

  private async write(frames: readonly VerifiedFrame[]): Promise<PutOutcome[]> {
    if (frames.length === 0) return []
    try {
      const present = await this.frames.hasMany(frames.map((f) => f.id))
      const batch = new FrameBatch(this.committedState)
      const outcomes: PutOutcome[] = []
      for (const [i, frame] of frames.entries()) outcomes.push(await batch.add(frame, present[i] === true))
      if (outcomes.every((o) => o.status === 'duplicate')) return outcomes
      await this.db.batch<string, unknown>(batch.finish().map((op) => this.toLevelOp(op)), {})
      // Committed: adopt the counters the batch computed.
      for (const [keyid, stats] of batch.stats) this.statsCache.set(keyid, stats)
      for (const kind of KINDS) this.counts[kind] = batch.counts[kind]
      for (const keyid of batch.proofKeys) this.proofKeys.add(keyid)
      return outcomes
    } catch (e) {
      throw storeError('store write failed', e)
    }
  }

  private toLevelOp(op: BatchOp) {
    return { type: 'put' as const, sublevel: this.bucket(op.bucket), key: op.key, value: op.value }
  }

  private readonly committedState: CommittedState = {
    keyStats: (keyid) => this.keyStats(keyid),
    seqEntries: async (keyid, seq) => {
      const entries: SeqEntry[] = []
      for await (const [key, payloadDigest] of this.bucket<string>(Bucket.attestationBySeq).iterator(seqRange(keyid, seq, seq))) {
        entries.push({ id: lastPart(key), payloadDigest })
      }
      return entries
    },
    hasSeq: async (keyid, seq) => (await this.keysIn(Bucket.attestationBySeq, seqRange(keyid, seq, seq), 1)).length > 0,
    hasProof: (keyid) => this.proofKeys.has(keyid),
    counts: () => this.counts
  }

  // --- frames ------------------------------------------------------------------------------

  /** Canonical bytes of a stored frame. */
  getFrame(id: string): Promise<Uint8Array | undefined> {
    return this.read('getFrame', async () => {
      const bytes = await this.frames.get(id)
      return bytes === undefined ? undefined : plainBytes(bytes)
    })
  }

  hasFrame(id: string): Promise<boolean> {
    return this.read('hasFrame', () => this.frames.has(id))
  }

  /** hasFrame for many ids in one read. */
  hasFrames(ids: readonly string[]): Promise<boolean[]> {
    return this.read('hasFrames', async () => (ids.length === 0 ? [] : this.frames.hasMany([...ids])))
  }

  /**
   * A stored frame, decoded. The signature is not checked again: only frames that passed the
   * full decode are ever stored (LevelDB checksums its blocks against disk corruption).
   */
  async getVerifiedFrame(id: string): Promise<VerifiedFrame | undefined> {
    const bytes = await this.getFrame(id)
    return bytes === undefined ? undefined : openStoredFrame(bytes)
  }

  /** Canonical bytes of the stored frames among `ids`, in order, skipping unknown ids. */
  getFrames(ids: readonly string[]): Promise<Uint8Array[]> {
    return this.read('getFrames', async () => {
      if (ids.length === 0) return []
      const values = await this.frames.getMany([...ids])
      return values.filter((v): v is Uint8Array => v !== undefined).map(plainBytes)
    })
  }

  // --- indexes -----------------------------------------------------------------------------

  /** Attestations with a subject of this sha256, by frame id. */
  frameIdsBySha256(sha256: string): Promise<string[]> {
    return this.idsIn(Bucket.framesBySha256, prefixRange(sha256))
  }

  /** Attestations with an upstream (archive) entry of this sha256, by frame id. */
  frameIdsByUpstreamSha256(sha256: string): Promise<string[]> {
    return this.idsIn(Bucket.framesByUpstreamSha256, prefixRange(sha256))
  }

  /** Attestations of this package (purl, canonical) with a subject or upstream entry of this name. */
  frameIdsByArtifact(pkg: string, artifact: string): Promise<string[]> {
    return this.idsIn(Bucket.framesByArtifact, prefixRange(pkg, artifact))
  }

  /** Attestations of this package (any artifact), each id once. */
  async frameIdsByPackage(pkg: string): Promise<string[]> {
    return [...new Set(await this.idsIn(Bucket.framesByArtifact, prefixRange(pkg)))]
  }

  /** Attestations signed by `keyid` with seq >= fromSeq, ordered by seq. */
  frameIdsByBuilder(keyid: string, fromSeq = 1, limit?: number): Promise<string[]> {
    return this.idsIn(Bucket.attestationBySeq, seqRange(keyid, fromSeq, Number.MAX_SAFE_INTEGER), limit)
  }

  /** Attestations of `keyid` at exactly `seq`; more than one is equivocation evidence. */
  attestationIdsAtSeq(keyid: string, seq: number): Promise<string[]> {
    return this.idsIn(Bucket.attestationBySeq, seqRange(keyid, seq, seq))
  }

  /** Canonical bytes of `keyid`'s attestations with fromSeq <= seq <= toSeq, ordered by seq, at most `limit`. */
  async attestationsInRange(keyid: string, fromSeq: number, toSeq: number, limit: number): Promise<Uint8Array[]> {
    if (toSeq < fromSeq || limit <= 0) return []
    return this.getFrames(await this.idsIn(Bucket.attestationBySeq, seqRange(keyid, fromSeq, toSeq), limit))
  }

  /**
   * keyid -> highest contiguous seq starting at 1 (0 when seq 1 is missing), for every key with
   * at least one attestation. Read from the per-key counters kept up to date by each write.
   */
  seqSummary(): Promise<Map<string, number>> {
    return this.read('seqSummary', async () => {
      const summary = new Map<string, number>()
      for await (const [keyid, stats] of this.bucket<KeyStats>(Bucket.keyStats).iterator()) {
        if (stats.maxSeq > 0) summary.set(keyid, stats.contiguousSeq)
      }
      return summary
    })
  }

  /**
   * The attestation seqs `keyid` has stored here as ascending, disjoint, non-adjacent runs
   * `[from, to]` (the shape of a sync summary entry). Scans only above the contiguous prefix.
   */
  async seqRuns(keyid: string): Promise<Run[]> {
    const stats = await this.keyStats(keyid)
    const runs: Run[] = stats.contiguousSeq > 0 ? [[1, stats.contiguousSeq]] : []
    if (stats.maxSeq <= stats.contiguousSeq) return runs
    const above = await this.read('seqRuns', () => this.keysIn(Bucket.attestationBySeq, seqRange(keyid, stats.contiguousSeq + 2, stats.maxSeq)))
    for (const key of above) {
      const { seq } = parseAttestationBySeq(key)
      const last = runs[runs.length - 1]
      if (last !== undefined && seq <= last[1] + 1) last[1] = Math.max(last[1], seq)
      else runs.push([seq, seq])
    }
    return runs
  }

  /** Delegation frames whose delegate is `keyid`, by frame id. */
  delegationIdsByDelegate(keyid: string): Promise<string[]> {
    return this.idsIn(Bucket.delegationByDelegate, prefixRange(keyid))
  }

  async allDelegations(): Promise<Uint8Array[]> {
    return this.getFrames(await this.idsIn(Bucket.delegationByDelegate, {}))
  }

  async allProofs(): Promise<Uint8Array[]> {
    return this.read('allProofs', async () => this.getFrames(await this.bucket<string>(Bucket.proofByKey).values().all()))
  }

  /** Id of the accepted equivocation proof against `keyid`, if any. */
  proofIdFor(keyid: string): Promise<string | undefined> {
    return this.read('proofIdFor', () => this.bucket<string>(Bucket.proofByKey).get(keyid))
  }

  async equivocatingKeys(): Promise<Set<string>> {
    return new Set(this.proofKeys)
  }

  async count(kind?: StatementKind): Promise<number> {
    return kind === undefined ? KINDS.reduce((n, k) => n + this.counts[k], 0) : this.counts[kind]
  }

  /** What `keyid` has stored here: frames, bytes, highest and highest contiguous seq. */
  keyStats(keyid: string): Promise<KeyStats> {
    return this.read('keyStats', async () => {
      const cached = this.statsCache.get(keyid)
      if (cached !== undefined) return { ...cached }
      const stats = { ...NO_STATS, ...(await this.bucket<KeyStats>(Bucket.keyStats).get(keyid)) }
      this.statsCache.set(keyid, stats)
      return { ...stats }
    })
  }

  /** Canonical bytes stored for frames signed by `keyid` (for quotas). */
  async storedBytesBy(keyid: string): Promise<number> {
    return (await this.keyStats(keyid)).bytes
  }

  /**
   * A JSON key/value space for another subsystem: 'jobs' (rebuild scheduler, Bucket.jobs),
   * 'watched' (watched artifacts, Bucket.watched), 'meta' (node meta, Bucket.meta). Writes to
   * it are independent of frame writes; use its own batch() for atomic groups.
   */
  sublevel<V = unknown>(name: SublevelName): JsonSublevel<V> {
    const bucket = { jobs: Bucket.jobs, watched: Bucket.watched, meta: Bucket.meta }[name]
    return this.bucket<V>(bucket)
  }

  // --- helpers -----------------------------------------------------------------------------

  private async load(dir: string): Promise<void> {
    const schema = this.bucket<number>(Bucket.schema)
    const version = await schema.get('version')
    if (version === undefined) {
      const empty = (await this.db.keys({ limit: 1 }).all()).length === 0
      if (!empty) throw new RbqError('STORE_ERROR', `store ${dir} has data but no layout version; refusing to guess its format`)
      await schema.put('version', STORE_LAYOUT_VERSION)
    } else if (version === 1) {
      await this.reindexUpstream()
      await schema.put('version', STORE_LAYOUT_VERSION)
    } else if (version !== STORE_LAYOUT_VERSION) {
      throw new RbqError('STORE_ERROR', `store ${dir} has layout version ${version}; this node reads version ${STORE_LAYOUT_VERSION}`)
    }
    for await (const [kind, n] of this.bucket<number>(Bucket.frameCount).iterator()) {
      if ((KINDS as readonly string[]).includes(kind)) this.counts[kind as StatementKind] = n
    }
    for await (const keyid of this.bucket(Bucket.proofByKey).keys()) this.proofKeys.add(keyid)
  }

  /**
   * Layout 1 → 2: adds the upstream index entries of every stored attestation (attestationIndexOps
   * writes all of a frame's entries; the ones layout 1 had are rewritten unchanged). Idempotent:
   * interrupted, it runs again on the next open, as the version is written only after it.
   */
  private async reindexUpstream(): Promise<void> {
    let ops: BatchOp[] = []
    const flush = async () => {
      if (ops.length > 0) await this.db.batch<string, unknown>(ops.map((op) => this.toLevelOp(op)), {})
      ops = []
    }
    for await (const bytes of this.frames.values()) {
      const frame = openStoredFrame(plainBytes(bytes))
      if (frame.kind !== 'attestation') continue
      ops.push(...attestationIndexOps(frame))
      if (ops.length >= 10_000) await flush()
    }
    await flush()
  }

  private bucket<V>(bucket: Bucket): Sub<V> {
    const sub = this.buckets.get(bucket)
    if (sub === undefined) throw new Error(`bucket ${Bucket[bucket]} has no sublevel`)
    return sub as Sub<V>
  }

  private keysIn(bucket: Bucket, range: Partial<KeyRange>, limit?: number): Promise<string[]> {
    return this.bucket(bucket).keys({ ...range, limit: limit ?? -1 }).all()
  }

  private idsIn(bucket: Bucket, range: Partial<KeyRange>, limit?: number): Promise<string[]> {
    return this.read(`read ${Bucket[bucket]}`, async () => (await this.keysIn(bucket, range, limit)).map(lastPart))
  }

  private async read<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (e) {
      throw storeError(`store ${what} failed`, e)
    }
  }
}
