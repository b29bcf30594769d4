/**
 * The node's store: verified frames in their canonical bytes and the indexes the verdict
 * engine, sync and the API read, over one LevelDB directory (`level` 10 / classic-level).
 * Key layout: buckets.ts. Every frame is written together with all of its index entries and
 * counters in one atomic batch (frame-batch.ts); writes are serialised, reads are not.
 *
 * Every failure of LevelDB (disk full, I/O error, closed database) surfaces as
 * RbqError('STORE_ERROR'); a failed write changes nothing.
 */
import { EventEmitter } from 'node:events'
import type { AbstractSublevel } from 'abstract-level'
import { Level } from 'level'
import { RbqError, openStoredFrame, type StatementKind, type VerifiedFrame } from '../../protocol/index.js'
import {
  Bucket,
  STORE_LAYOUT_VERSION,
  arrivalValue,
  bucketName,
  keys,
  lastPart,
  parseArrival,
  parseAttestationBySeq,
  prefixRange,
  SEP,
  seqRange,
  type KeyRange
} from './buckets.js'
import { FrameBatch, indexEntriesOf, type BatchOp, type CommittedState, type SeqEntry } from './frame-batch.js'
import type { ArrivalEntry, DigestEntry, JsonSublevel, KeyStats, KeyUsage, PutOutcome, PutStatus, StoreInit, SublevelName } from './store-types.js'

type Sub<V> = AbstractSublevel<Level<string, string>, string | Buffer | Uint8Array, string, V>

const KINDS: readonly StatementKind[] = ['attestation', 'delegation', 'equivocation']
export const NO_STATS: KeyStats = { frames: 0, bytes: 0, maxSeq: 0, contiguousSeq: 0 }

/** Buckets holding index entries (utf8 values); every entry is derived from one stored frame. */
export const INDEX_BUCKETS = [
  Bucket.framesBySha256,
  Bucket.framesByUpstreamSha256,
  Bucket.framesByArtifact,
  Bucket.framesByPackageKey,
  Bucket.attestationBySeq,
  Bucket.delegationByDelegate,
  Bucket.proofByKey,
  Bucket.frameByArrival
] as const
/** Buckets holding JSON values. */
export const JSON_BUCKETS = [Bucket.schema, Bucket.keyStats, Bucket.frameCount, Bucket.jobs, Bucket.watched, Bucket.meta] as const

/** A LevelDB put or delete in one bucket. */
export type StoreOp = (BatchOp & { type: 'put' }) | { type: 'del'; bucket: Bucket; key: string }

/** LevelDB refused to open because another process holds its lock. */
export function isLockedError(e: unknown): boolean {
  return (e as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED' || (e as { code?: string }).code === 'LEVEL_LOCKED'
}

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

/**
 * What committed writes changed, announced after each commit (node/trust/trust-state.ts keeps
 * the delegations and proofs in memory by them): frames newly stored, and frames evicted.
 */
export type StoreChanges = EventEmitter<{ stored: [frames: readonly VerifiedFrame[]]; evicted: [frames: readonly VerifiedFrame[]] }>

/** Entries read per trip to LevelDB by entriesOfRanges. */
const RANGE_PAGE = 64

export class Store {
  /** One sublevel per bucket; each has its own value type, which bucket<V>() restores. */
  private readonly buckets = new Map<Bucket, Sub<any>>()
  private readonly frames: Sub<Uint8Array>
  private readonly counts: Record<StatementKind, number> = { attestation: 0, delegation: 0, equivocation: 0 }
  private readonly proofKeys = new Set<string>()
  /** Committed KeyStats of keys read or written since open (bounded by the keys seen). */
  private readonly statsCache = new Map<string, KeyStats>()
  /** Frames and canonical bytes stored, all signers (the sum of Bucket.keyStats). */
  private readonly total: KeyUsage = { frames: 0, bytes: 0 }
  private nextArrival = 1
  private writeChain: Promise<unknown> = Promise.resolve()
  /** Announced after each commit; a listener's error never fails the (committed) write. */
  readonly changes: StoreChanges = new EventEmitter()

  private constructor(private readonly db: Level<string, string>) {
    this.frames = db.sublevel<string, Uint8Array>(bucketName(Bucket.frame), { valueEncoding: 'view' })
    this.buckets.set(Bucket.frame, this.frames)
    for (const b of JSON_BUCKETS) {
      this.buckets.set(b, db.sublevel<string, unknown>(bucketName(b), { valueEncoding: 'json' }))
    }
    for (const b of INDEX_BUCKETS) {
      this.buckets.set(b, db.sublevel<string, string>(bucketName(b), { valueEncoding: 'utf8' }))
    }
  }

  static async open(dir: string, init: StoreInit = {}): Promise<Store> {
    const db = new Level<string, string>(dir, { createIfMissing: init.createIfMissing ?? true })
    try {
      await db.open()
    } catch (e) {
      throw storeError(isLockedError(e) ? `store ${dir} is in use by another process (a running node?)` : `cannot open store ${dir}`, e)
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
      this.total.frames += batch.added.frames
      this.total.bytes += batch.added.bytes
      this.nextArrival = batch.nextArrival
      this.announce('stored', frames.filter((_, i) => outcomes[i]!.status === 'stored'))
      return outcomes
    } catch (e) {
      throw storeError('store write failed', e)
    }
  }

  private announce(event: 'stored' | 'evicted', frames: readonly VerifiedFrame[]): void {
    if (frames.length === 0) return
    try {
      this.changes.emit(event, frames)
    } catch {
      // Committed already: a listener's failure must not turn into a failed write.
    }
  }

  private toLevelOp(op: BatchOp | StoreOp) {
    if ('type' in op && op.type === 'del') return { type: 'del' as const, sublevel: this.bucket(op.bucket), key: op.key }
    return { type: 'put' as const, sublevel: this.bucket(op.bucket), key: op.key, value: (op as BatchOp).value }
  }

  /** Applies puts and deletes in one atomic batch (rbq db check --repair). Counters are not adopted: reopen the store. */
  async applyRaw(ops: readonly StoreOp[]): Promise<void> {
    const result = this.writeChain.then(() => this.db.batch<string, unknown>(ops.map((op) => this.toLevelOp(op)), {}))
    this.writeChain = result.catch(() => undefined)
    await result
  }

  /**
   * Removes frames (found by their arrival entries) with every index entry and counter change
   * in ONE atomic batch. Equivocation proofs are never removed. Entries whose frame is gone
   * meanwhile only lose their arrival entry. Returns what was freed.
   */
  evict(entries: readonly ArrivalEntry[]): Promise<KeyUsage> {
    const result = this.writeChain.then(() => this.evictNow(entries))
    this.writeChain = result.catch(() => undefined)
    return result
  }

  private async evictNow(entries: readonly ArrivalEntry[]): Promise<KeyUsage> {
    if (entries.length === 0) return { frames: 0, bytes: 0 }
    try {
      const values = await this.frames.getMany(entries.map((e) => e.id))
      const ops: StoreOp[] = []
      const stats = new Map<string, KeyStats>()
      const counts = { ...this.counts }
      const freed: KeyUsage = { frames: 0, bytes: 0 }
      const gone = new Set<string>()
      const evicted: VerifiedFrame[] = []
      const seqsGone = new Map<string, Set<number>>()
      for (const [i, entry] of entries.entries()) {
        const raw = values[i]
        if (raw === undefined || gone.has(entry.id)) {
          ops.push({ type: 'del', bucket: Bucket.frameByArrival, key: entry.key })
          continue
        }
        const frame = openStoredFrame(plainBytes(raw))
        if (frame.kind === 'equivocation') continue
        ops.push({ type: 'del', bucket: Bucket.frameByArrival, key: entry.key }, { type: 'del', bucket: Bucket.frame, key: frame.id })
        for (const op of indexEntriesOf(frame)) ops.push({ type: 'del', bucket: op.bucket, key: op.key })
        gone.add(frame.id)
        evicted.push(frame)
        const keyid = frame.signer.keyid
        let st = stats.get(keyid)
        if (st === undefined) stats.set(keyid, (st = await this.keyStats(keyid)))
        st.frames = Math.max(0, st.frames - 1)
        st.bytes = Math.max(0, st.bytes - frame.bytes.length)
        counts[frame.kind] = Math.max(0, counts[frame.kind] - 1)
        freed.frames += 1
        freed.bytes += frame.bytes.length
        if (frame.kind === 'attestation') {
          const seqs = seqsGone.get(keyid) ?? new Set<number>()
          seqs.add(frame.statement.predicate.builder.seq)
          seqsGone.set(keyid, seqs)
        }
      }
      for (const [keyid, seqs] of seqsGone) await this.afterSeqsRemoved(keyid, stats.get(keyid)!, seqs, gone)
      for (const [keyid, st] of stats) {
        if (st.frames === 0) ops.push({ type: 'del', bucket: Bucket.keyStats, key: keyid })
        else ops.push({ type: 'put', bucket: Bucket.keyStats, key: keyid, value: st })
      }
      for (const kind of KINDS) ops.push({ type: 'put', bucket: Bucket.frameCount, key: kind, value: counts[kind] })
      await this.db.batch<string, unknown>(ops.map((op) => this.toLevelOp(op)), {})
      for (const [keyid, st] of stats) this.statsCache.set(keyid, st.frames === 0 ? { ...NO_STATS } : st)
      for (const kind of KINDS) this.counts[kind] = counts[kind]
      this.total.frames -= freed.frames
      this.total.bytes -= freed.bytes
      this.announce('evicted', evicted)
      return freed
    } catch (e) {
      throw storeError('store eviction failed', e)
    }
  }

  /** Highest and highest contiguous seq of `keyid` once the frames `gone` (at `seqs`) are removed. */
  private async afterSeqsRemoved(keyid: string, st: KeyStats, seqs: Set<number>, gone: Set<string>): Promise<void> {
    const emptied: number[] = []
    for (const seq of seqs) {
      const left = (await this.committedState.seqEntries(keyid, seq)).filter((e) => !gone.has(e.id))
      if (left.length === 0) emptied.push(seq)
    }
    if (emptied.length === 0) return
    const lowest = Math.min(...emptied)
    if (lowest <= st.contiguousSeq) st.contiguousSeq = lowest - 1
    if (emptied.includes(st.maxSeq)) {
      let top = 0
      for await (const key of this.bucket(Bucket.attestationBySeq).keys({ ...seqRange(keyid, 1, st.maxSeq), reverse: true })) {
        const { seq, id } = parseAttestationBySeq(key)
        if (!gone.has(id)) {
          top = seq
          break
        }
      }
      st.maxSeq = top
    }
    st.contiguousSeq = Math.min(st.contiguousSeq, st.maxSeq)
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
    counts: () => this.counts,
    nextArrival: () => this.nextArrival
  }

  // --- frames ------------------------------------------------------------------------------

  /** Canonical bytes of a stored frame. */
  private getFrame(id: string): Promise<Uint8Array | undefined> {
    return this.read('getFrame', async () => {
      const bytes = await this.frames.get(id)
      return bytes === undefined ? undefined : plainBytes(bytes)
    })
  }

  /** Whether each frame is stored, in one read. */
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
    // The index is keyed digest, signer, frame id: sorted here so the order does not depend on keys.
    return this.idsIn(Bucket.framesBySha256, prefixRange(sha256)).then((ids) => ids.sort())
  }

  /** Attestations with an upstream (archive) entry of this sha256, by frame id. */
  frameIdsByUpstreamSha256(sha256: string): Promise<string[]> {
    return this.idsIn(Bucket.framesByUpstreamSha256, prefixRange(sha256)).then((ids) => ids.sort())
  }

  /** Attestations of this package (purl, canonical) with a subject or upstream entry of this name. */
  frameIdsByArtifact(pkg: string, artifact: string): Promise<string[]> {
    return this.idsIn(Bucket.framesByArtifact, prefixRange(pkg, artifact))
  }

  /**
   * Frame ids of many (package, signer) ranges of the (package, signer) index, aligned with
   * `pairs`: ONE iterator for all of them, each range found by seek() and read in pages that
   * often cover the next ranges too. A batch of verdicts asks for thousands of ranges; an
   * iterator each (creation, a read, a close, each a trip to LevelDB's threads) cost far more
   * than the reads. Only the ranges asked are read: other signers' entries cost nothing.
   */
  frameIdsByPackageKeys(pairs: readonly { readonly package: string; readonly keyid: string }[]): Promise<string[][]> {
    return this.read('read framesByPackageKey', async () =>
      (await this.entriesOfRanges<string>(Bucket.framesByPackageKey, pairs.map((p) => prefixRange(p.package, p.keyid).gte))).map((list) => list.map(([key]) => lastPart(key)))
    )
  }

  /**
   * The entries under each prefix (a `prefixRange(...).gte`), aligned with `prefixes`, read
   * through one iterator: each range found by seek(), pages that often cover the next ranges too.
   */
  private async entriesOfRanges<V>(bucket: Bucket, prefixes: readonly string[]): Promise<[string, V][][]> {
    const out = prefixes.map((): [string, V][] => [])
    if (prefixes.length === 0) return out
    // Keys are ASCII (canonical purls percent-encode; digests, key and frame ids are hex): string order is LevelDB's byte order.
    const ranges = prefixes.map((prefix, i) => ({ prefix, i })).sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0))
    const it = this.bucket<V>(bucket).iterator({ gte: ranges[0]!.prefix })
    try {
      let page: [string, V][] = []
      let pos = 0
      let more = true // the last page was full: entries may follow it
      let previous: { prefix: string; i: number } | undefined
      for (const range of ranges) {
        const { prefix, i } = range
        if (previous?.prefix === prefix) {
          out[i] = [...out[previous.i]!] // asked twice
          continue
        }
        previous = range
        while (pos < page.length && page[pos]![0] < prefix) pos++
        if (pos === page.length) {
          if (!more) continue // nothing at all beyond the last page
          it.seek(prefix)
          page = await it.nextv(RANGE_PAGE)
          pos = 0
          more = page.length === RANGE_PAGE
        }
        for (;;) {
          while (pos < page.length && page[pos]![0].startsWith(prefix)) out[i]!.push(page[pos++]!)
          if (pos < page.length || !more) break
          page = await it.nextv(RANGE_PAGE)
          pos = 0
          more = page.length === RANGE_PAGE
        }
      }
    } finally {
      await it.close()
    }
    return out
  }

  /**
   * Attestations signed by one of `keyids` with this sha256 as a subject or an upstream entry,
   * with their package (from the index: nothing is decoded), each frame once.
   */
  digestEntries(sha256: string, keyids: Iterable<string>): Promise<DigestEntry[]> {
    return this.read('digestEntries', async () => {
      const out = new Map<string, DigestEntry>()
      const signers = [...keyids]
      const prefixes = signers.map((keyid) => prefixRange(sha256, keyid).gte)
      for (const bucket of [Bucket.framesBySha256, Bucket.framesByUpstreamSha256]) {
        const found = await this.entriesOfRanges<string>(bucket, prefixes)
        found.forEach((entries, k) => {
          for (const [key, pkg] of entries) {
            const id = lastPart(key)
            if (!out.has(id)) out.set(id, { id, keyid: signers[k]!, package: pkg })
          }
        })
      }
      return [...out.values()]
    })
  }

  /** Frames in arrival order after the arrival key `after` (from the oldest without it), at most `limit`. */
  arrivals(after: string | undefined, limit: number): Promise<ArrivalEntry[]> {
    return this.read('arrivals', async () => {
      const range = after === undefined ? { limit } : { gt: after, limit }
      const out: ArrivalEntry[] = []
      for await (const [key, value] of this.bucket<string>(Bucket.frameByArrival).iterator(range)) {
        const { id, keyid, bytes } = parseArrival(key, value)
        out.push({ key, id, keyid, bytes })
      }
      return out
    })
  }

  /** Frames and canonical bytes stored, all signers together. */
  usage(): KeyUsage {
    return { ...this.total }
  }

  /** Attestations of this package (any artifact), each id once. */
  async frameIdsByPackage(pkg: string): Promise<string[]> {
    return [...new Set(await this.idsIn(Bucket.framesByArtifact, prefixRange(pkg)))]
  }

  /**
   * Every (package, signer, frame id) of the (package, signer) index whose package starts with
   * `prefix`, in key order (package, then signer): one index scan, no frame decoded (rbq stats).
   */
  async *packageSignerEntries(prefix: string): AsyncGenerator<{ package: string; keyid: string; id: string }> {
    try {
      for await (const key of this.bucket(Bucket.framesByPackageKey).keys({ gte: prefix, lt: `${prefix}\uffff` })) {
        const [pkg = '', keyid = '', id = ''] = key.split(SEP)
        yield { package: pkg, keyid, id }
      }
    } catch (e) {
      throw storeError('store read framesByPackageKey failed', e)
    }
  }

  /** Attestations signed by `keyid` with seq >= fromSeq, ordered by seq. */
  frameIdsByBuilder(keyid: string, fromSeq = 1, limit?: number): Promise<string[]> {
    return this.idsIn(Bucket.attestationBySeq, seqRange(keyid, fromSeq, Number.MAX_SAFE_INTEGER), limit)
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
    } else if (version === 1 || version === 2) {
      await this.reindex()
      await schema.put('version', STORE_LAYOUT_VERSION)
    } else if (version !== STORE_LAYOUT_VERSION) {
      throw new RbqError('STORE_ERROR', `store ${dir} has layout version ${version}; this node reads version ${STORE_LAYOUT_VERSION}`)
    }
    for await (const [kind, n] of this.bucket<number>(Bucket.frameCount).iterator()) {
      if ((KINDS as readonly string[]).includes(kind)) this.counts[kind as StatementKind] = n
    }
    for await (const keyid of this.bucket(Bucket.proofByKey).keys()) this.proofKeys.add(keyid)
    for await (const stats of this.bucket<KeyStats>(Bucket.keyStats).values()) {
      this.total.frames += stats.frames
      this.total.bytes += stats.bytes
    }
    const [last] = await this.bucket(Bucket.frameByArrival).keys({ reverse: true, limit: 1 }).all()
    if (last !== undefined) this.nextArrival = parseArrival(last, '').arrival + 1
  }

  /**
   * Layout 1 or 2 → 3: rewrites every index entry of every stored frame (indexEntriesOf: entries
   * an older layout had are rewritten with their new values) and numbers the frames' arrival in
   * store order (their real order is not known). Idempotent: the arrival index is cleared first,
   * (as are the digest indexes, whose keys now hold the signer), and interrupted, it runs again on the next open, as the version is written only after it.
   * Proofs keep their one entry (only the first proof per key was ever stored).
   */
  private async reindex(): Promise<void> {
    // Derived buckets whose keys changed: rebuilt from the frames.
    for (const b of [Bucket.frameByArrival, Bucket.framesBySha256, Bucket.framesByUpstreamSha256]) await this.bucket(b).clear()
    let ops: BatchOp[] = []
    let arrival = 1
    const flush = async () => {
      if (ops.length > 0) await this.db.batch<string, unknown>(ops.map((op) => this.toLevelOp(op)), {})
      ops = []
    }
    for await (const bytes of this.frames.values()) {
      const frame = openStoredFrame(plainBytes(bytes))
      if (frame.kind === 'equivocation') continue
      ops.push(...indexEntriesOf(frame), { bucket: Bucket.frameByArrival, key: keys.arrival(arrival++, frame.id), value: arrivalValue(frame.signer.keyid, frame.bytes.length) })
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
