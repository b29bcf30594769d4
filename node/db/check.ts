/**
 * `rbq db check [--repair]`: an offline consistency check of a stopped node's store.
 *
 * Verified, for every stored frame: its key is the SHA-256 of its bytes (frameId), and the
 * bytes pass the full protocol decode (decodeFrame: canonical JSON, schemas, signature). Then
 * every index entry is compared with the entries the good frames imply (indexEntriesOf, the
 * definition the write path uses): an entry no good frame implies (dangling, or a wrong value)
 * and an implied entry that is missing are both problems; every frame but proofs has exactly one
 * arrival entry with its signer and size. The counters (Bucket.keyStats per signer: frames,
 * bytes, highest and highest contiguous seq; Bucket.frameCount per kind) are recomputed and
 * compared.
 *
 * --repair, in one atomic batch: removes frames whose id or decoding fails (they cannot be
 * trusted; sync fetches good copies from peers), removes wrong and dangling index entries, adds
 * the missing ones, gives frames without an arrival entry one after the newest, and rewrites the
 * counters. Then the check runs again. Frames themselves are never rewritten.
 *
 * The store is opened exclusively: a running node holds the LevelDB lock, and the check refuses.
 */
import { Level } from 'level'
import { RbqError, decodeFrame, frameId, type StatementKind, type VerifiedFrame } from '../../protocol/index.js'
import { Bucket, STORE_LAYOUT_VERSION, arrivalValue, bucketName, keys, parseArrival } from './buckets.js'
import { indexEntriesOf } from './frame-batch.js'
import { INDEX_BUCKETS, NO_STATS, Store, isLockedError, type StoreOp } from './store.js'
import type { KeyStats } from './store-types.js'

export interface CheckProblem {
  /** What is wrong, as a stable word: bad-frame-id, undecodable-frame, dangling-entry, wrong-entry, missing-entry, duplicate-arrival, wrong-counter, layout. */
  kind: string
  message: string
}

export interface CheckReport {
  frames: number
  indexEntries: number
  problems: CheckProblem[]
  /** Problems found per kind (all of them, while `problems` keeps the first few hundred). */
  counts: Record<string, number>
  /** --repair: operations applied. */
  repaired?: number
  /** --repair: what the check found before repairing (the report itself is the check after it). */
  found?: CheckReport
}

const KINDS: readonly StatementKind[] = ['attestation', 'delegation', 'equivocation']
/** Problems listed one by one; beyond this only counted. */
const MAX_LISTED = 200

export interface CheckOptions {
  repair?: boolean
}

/** Checks (and with `repair`, repairs) the store at `dir`; throws STORE_ERROR when it cannot be opened. */
export async function checkStore(dir: string, options: CheckOptions = {}): Promise<CheckReport> {
  if (options.repair === true) {
    // Store.open migrates an older layout (reindexing it) before the check.
    await withStore(dir, async () => undefined)
    const first = await openExclusive(dir, runCheck)
    if (first.ops.length > 0) await withStore(dir, (store) => store.applyRaw(first.ops))
    const again = await openExclusive(dir, runCheck)
    return { ...again.report, repaired: first.ops.length, found: first.report }
  }
  return (await openExclusive(dir, runCheck)).report
}

async function withStore(dir: string, fn: (store: Store) => Promise<void>): Promise<void> {
  let store: Store
  try {
    store = await Store.open(dir, { createIfMissing: false })
  } catch (e) {
    throw isLockedError((e as { cause?: unknown }).cause) ? lockedError(dir) : e
  }
  try {
    await fn(store)
  } finally {
    await store.close()
  }
}

function lockedError(dir: string): RbqError {
  return new RbqError('STORE_ERROR', `store ${dir} is in use by another process: stop the node first (rbq db check runs on a stopped node)`)
}

async function openExclusive<T>(dir: string, fn: (db: Level<string, string>) => Promise<T>): Promise<T> {
  const db = new Level<string, string>(dir, { createIfMissing: false })
  try {
    await db.open()
  } catch (e) {
    if (isLockedError(e)) throw lockedError(dir)
    throw new RbqError('STORE_ERROR', `cannot open store ${dir}: ${(e as Error).message}${(e as { cause?: Error }).cause === undefined ? '' : ` (${(e as { cause?: Error }).cause!.message})`}`)
  }
  try {
    return await fn(db)
  } finally {
    await db.close()
  }
}

async function runCheck(db: Level<string, string>): Promise<{ report: CheckReport; ops: StoreOp[] }> {
  const report: CheckReport = { frames: 0, indexEntries: 0, problems: [], counts: {} }
  const ops: StoreOp[] = []
  const problem = (kind: string, message: string) => {
    report.counts[kind] = (report.counts[kind] ?? 0) + 1
    if (report.problems.length < MAX_LISTED) report.problems.push({ kind, message })
  }
  const sub = <V>(b: Bucket, valueEncoding: 'json' | 'utf8' | 'view') => db.sublevel<string, V>(bucketName(b), { valueEncoding })

  const version = await sub<number>(Bucket.schema, 'json').get('version')
  if (version !== STORE_LAYOUT_VERSION) {
    problem('layout', `store layout version ${String(version)}, this rbq reads ${STORE_LAYOUT_VERSION} (start the node once, or run with --repair, to migrate)`)
    return { report, ops }
  }

  // Expected entries per bucket, from the frames that pass.
  const expected = new Map<Bucket, Map<string, string>>(INDEX_BUCKETS.filter((b) => b !== Bucket.frameByArrival).map((b) => [b, new Map()]))
  const arrivalsWanted = new Map<string, string>() // frame id -> arrival value
  const stats = new Map<string, KeyStats & { seqs: Set<number> }>()
  const counts: Record<StatementKind, number> = { attestation: 0, delegation: 0, equivocation: 0 }
  const proofsByKey = new Map<string, string[]>()
  for await (const [id, raw] of sub<Uint8Array>(Bucket.frame, 'view').iterator()) {
    report.frames += 1
    const bytes = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)
    if (frameId(bytes) !== id) {
      problem('bad-frame-id', `frame ${id}: its bytes hash to ${frameId(bytes)}`)
      ops.push({ type: 'del', bucket: Bucket.frame, key: id })
      continue
    }
    let frame: VerifiedFrame
    try {
      frame = decodeFrame(bytes)
    } catch (e) {
      problem('undecodable-frame', `frame ${id}: ${(e as Error).message}`)
      ops.push({ type: 'del', bucket: Bucket.frame, key: id })
      continue
    }
    for (const op of indexEntriesOf(frame)) expected.get(op.bucket)!.set(op.key, String(op.value))
    if (frame.kind === 'equivocation') {
      const list = proofsByKey.get(frame.proof.keyid) ?? []
      list.push(id)
      proofsByKey.set(frame.proof.keyid, list)
    } else {
      arrivalsWanted.set(id, arrivalValue(frame.signer.keyid, bytes.length))
    }
    counts[frame.kind] += 1
    const keyid = frame.signer.keyid
    let st = stats.get(keyid)
    if (st === undefined) stats.set(keyid, (st = { ...NO_STATS, seqs: new Set() }))
    st.frames += 1
    st.bytes += bytes.length
    if (frame.kind === 'attestation') st.seqs.add(frame.statement.predicate.builder.seq)
  }
  // Only the first proof per key is ever stored; a second one is kept but not indexed.
  for (const [keyid, ids] of proofsByKey) {
    if (ids.length > 1) {
      problem('wrong-entry', `${ids.length} proofs stored against key ${keyid} (one expected): ${ids.join(', ')}`)
      const idx = expected.get(Bucket.proofByKey)!
      const current = await sub<string>(Bucket.proofByKey, 'utf8').get(keyid)
      idx.set(keyid, current !== undefined && ids.includes(current) ? current : ids[0]!)
    }
  }

  for (const bucket of INDEX_BUCKETS) {
    if (bucket === Bucket.frameByArrival) continue
    const want = expected.get(bucket)!
    const seen = new Set<string>()
    for await (const [key, value] of sub<string>(bucket, 'utf8').iterator()) {
      report.indexEntries += 1
      const should = want.get(key)
      if (should === undefined) {
        problem('dangling-entry', `${Bucket[bucket]} ${printable(key)}: no stored frame implies it`)
        ops.push({ type: 'del', bucket, key })
      } else {
        seen.add(key)
        if (should !== value) {
          problem('wrong-entry', `${Bucket[bucket]} ${printable(key)}: value ${printable(value)}, expected ${printable(should)}`)
          ops.push({ type: 'put', bucket, key, value: should })
        }
      }
    }
    for (const [key, value] of want) {
      if (seen.has(key)) continue
      problem('missing-entry', `${Bucket[bucket]} ${printable(key)}: missing`)
      ops.push({ type: 'put', bucket, key, value })
    }
  }

  // Arrival order: one entry per frame (but proofs), with the frame's signer and size.
  const arrived = new Set<string>()
  let lastArrival = 0
  for await (const [key, value] of sub<string>(Bucket.frameByArrival, 'utf8').iterator()) {
    report.indexEntries += 1
    const entry = parseArrival(key, value)
    lastArrival = Math.max(lastArrival, entry.arrival)
    const should = arrivalsWanted.get(entry.id)
    if (should === undefined) {
      problem('dangling-entry', `frameByArrival ${printable(key)}: no stored frame (but a proof) has this id`)
      ops.push({ type: 'del', bucket: Bucket.frameByArrival, key })
    } else if (arrived.has(entry.id)) {
      problem('duplicate-arrival', `frameByArrival ${printable(key)}: frame ${entry.id} arrived twice`)
      ops.push({ type: 'del', bucket: Bucket.frameByArrival, key })
    } else {
      arrived.add(entry.id)
      if (should !== value) {
        problem('wrong-entry', `frameByArrival ${printable(key)}: value ${printable(value)}, expected ${printable(should)}`)
        ops.push({ type: 'put', bucket: Bucket.frameByArrival, key, value: should })
      }
    }
  }
  for (const [id, value] of arrivalsWanted) {
    if (arrived.has(id)) continue
    problem('missing-entry', `frameByArrival: frame ${id} has no arrival entry`)
    ops.push({ type: 'put', bucket: Bucket.frameByArrival, key: keys.arrival(++lastArrival, id), value })
  }

  // Counters.
  const keyStats = sub<KeyStats>(Bucket.keyStats, 'json')
  const storedStats = new Map<string, KeyStats>()
  for await (const [keyid, st] of keyStats.iterator()) storedStats.set(keyid, st)
  for (const keyid of new Set([...stats.keys(), ...storedStats.keys()])) {
    const computed = stats.get(keyid)
    const want: KeyStats = computed === undefined ? { ...NO_STATS } : { frames: computed.frames, bytes: computed.bytes, ...seqSummary(computed.seqs) }
    const have = { ...NO_STATS, ...storedStats.get(keyid) }
    if (want.frames !== have.frames || want.bytes !== have.bytes || want.maxSeq !== have.maxSeq || want.contiguousSeq !== have.contiguousSeq) {
      problem('wrong-counter', `keyStats ${keyid}: stored ${JSON.stringify(have)}, the frames give ${JSON.stringify(want)}`)
      ops.push(want.frames === 0 ? { type: 'del', bucket: Bucket.keyStats, key: keyid } : { type: 'put', bucket: Bucket.keyStats, key: keyid, value: want })
    }
  }
  const frameCount = sub<number>(Bucket.frameCount, 'json')
  for (const kind of KINDS) {
    const have = (await frameCount.get(kind)) ?? 0
    if (have !== counts[kind]) {
      problem('wrong-counter', `frameCount ${kind}: stored ${have}, the frames give ${counts[kind]}`)
      ops.push({ type: 'put', bucket: Bucket.frameCount, key: kind, value: counts[kind] })
    }
  }
  return { report, ops }
}

function seqSummary(seqs: Set<number>): { maxSeq: number; contiguousSeq: number } {
  let maxSeq = 0
  for (const s of seqs) maxSeq = Math.max(maxSeq, s)
  let contiguousSeq = 0
  while (seqs.has(contiguousSeq + 1)) contiguousSeq += 1
  return { maxSeq, contiguousSeq }
}

/** Keys and values joined by NUL, shown readably. */
function printable(s: string): string {
  return s.replaceAll('\x00', ' | ')
}
