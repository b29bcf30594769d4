/**
 * In-memory index of the attestation seqs this node holds, per signing key, as sorted disjoint
 * runs `[from, to]` (protocol/sync.ts). Loaded once from the store at start, then kept current
 * from the ingest pipeline's `stored` events, so a sync summary never scans the store.
 */
import { parseCanonicalJson, parseFrame, RbqError, type KeyId } from '../../protocol/index.js'
import type { Run } from '../../protocol/sync.js'
import type { Store } from '../db/store.js'

export class SeqRuns {
  private readonly byKey = new Map<KeyId, Run[]>()
  /** Sorted key ids, rebuilt lazily after a new key appears (summaries page by key id). */
  private sortedKeys: KeyId[] | undefined

  /** Records that `seq` of `keyid` is held. */
  add(keyid: KeyId, seq: number): void {
    const runs = this.byKey.get(keyid)
    if (runs === undefined) {
      this.byKey.set(keyid, [[seq, seq]])
      this.sortedKeys = undefined
      return
    }
    const last = runs[runs.length - 1] as Run
    // Fast path: the next seq of the key (live traffic and catch-up both arrive in order).
    if (seq === last[1] + 1) {
      last[1] = seq
      return
    }
    if (seq > last[1]) {
      runs.push([seq, seq])
      return
    }
    // Binary search for the first run ending at or after seq - 1.
    let lo = 0
    let hi = runs.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((runs[mid] as Run)[1] < seq - 1) lo = mid + 1
      else hi = mid
    }
    const run = runs[lo] as Run
    if (seq >= run[0] && seq <= run[1]) return
    if (seq === run[1] + 1) {
      run[1] = seq
      const next = runs[lo + 1]
      if (next !== undefined && next[0] === seq + 1) {
        run[1] = next[1]
        runs.splice(lo + 1, 1)
      }
    } else if (seq === run[0] - 1) {
      run[0] = seq
    } else {
      runs.splice(lo, 0, [seq, seq])
    }
  }

  /** Records a whole run; loading from the store adds them in ascending order (fast path). */
  addRun(keyid: KeyId, from: number, to: number): void {
    const runs = this.byKey.get(keyid)
    const last = runs?.[runs.length - 1]
    if (runs === undefined || last === undefined) {
      this.byKey.set(keyid, [[from, to]])
      this.sortedKeys = undefined
    } else if (from > last[1] + 1) {
      runs.push([from, to])
    } else if (from >= last[0]) {
      last[1] = Math.max(last[1], to)
    } else {
      for (let s = from; s <= to; s++) this.add(keyid, s)
    }
  }

  runs(keyid: KeyId): readonly Run[] | undefined {
    return this.byKey.get(keyid)
  }

  /** Key ids in ascending order. */
  keys(): readonly KeyId[] {
    this.sortedKeys ??= [...this.byKey.keys()].sort()
    return this.sortedKeys
  }

  /** Index of the first key id strictly after `after` ('' for the start). */
  indexAfter(after: KeyId): number {
    const keys = this.keys()
    let lo = 0
    let hi = keys.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((keys[mid] as KeyId) <= after) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  get size(): number {
    return this.byKey.size
  }
}

/** Seq of a stored (hence verified) attestation: the store indexes by seq but returns bytes. */
export function storedAttestationSeq(bytes: Uint8Array): number {
  const parsed = parseFrame(bytes)
  const statement = parseCanonicalJson(parsed.payload, 'frame.payload') as { predicate?: { builder?: { seq?: unknown } } } | null
  const seq = statement?.predicate?.builder?.seq
  if (parsed.kind !== 'attestation' || typeof seq !== 'number') throw new RbqError('STORE_ERROR', `stored frame ${parsed.id} is not an attestation with a seq`)
  return seq
}

export type SeqRunsStore = Pick<Store, 'seqSummary' | 'keyStats' | 'attestationsInRange'>

/**
 * Builds the index from the store: the contiguous prefix of every key from its counters, and
 * the seqs above a gap from the frames themselves (the store returns frames, not seqs, so
 * this reads only what lies above gaps; gaps are rare).
 */
export async function loadSeqRuns(store: SeqRunsStore, runs = new SeqRuns()): Promise<SeqRuns> {
  const PAGE = 512
  for (const [keyid, contiguous] of await store.seqSummary()) {
    if (contiguous > 0) runs.addRun(keyid, 1, contiguous)
    const { maxSeq } = await store.keyStats(keyid)
    let from = contiguous + 1
    while (from <= maxSeq) {
      const frames = await store.attestationsInRange(keyid, from, maxSeq, PAGE)
      let last = from - 1
      for (const bytes of frames) {
        last = storedAttestationSeq(bytes)
        runs.add(keyid, last)
      }
      if (frames.length < PAGE) break
      from = last + 1
    }
  }
  return runs
}
