/**
 * Catch-up sync `/rbq/sync/1.0.0` (SPEC.md §Sync): message codec, limits and the pure parts of
 * the algorithm (summary diff, cursors, set digests). No I/O: node/p2p/sync-service.ts runs the streams.
 *
 * Wire: every message is an unsigned-varint length prefix followed by a JSON object in JCS
 * canonical form (RFC 8785) with a `type` field. One request per stream: the requester writes
 * one request and closes its write side; the responder writes its response and closes.
 *
 *   summary-request  → summary                      (one message)
 *   frames-request   → frames* end                  (attestations by key and seq range)
 *   set-request      → frames* end                  (delegations or proofs, whole sets, paged)
 */
import { Type, type Static } from '@sinclair/typebox'
import { MAX_FRAME_BYTES } from './constants.js'
import { canonicalBytes, parseCanonicalJson, sha256Hex } from './encoding.js'
import { RbqError } from './errors.js'
import type { KeyId } from './keys.js'
import { compileSchema } from './schema.js'

// --- limits (normative) --------------------------------------------------------------------

/** Largest message of any type, in bytes after the length prefix. */
export const SYNC_MAX_MESSAGE_BYTES = 1024 * 1024
/** Largest request message. */
export const SYNC_MAX_REQUEST_BYTES = 64 * 1024
/** Most entries in one summary message; larger summaries are paged with `after`/`next`. */
export const SYNC_MAX_SUMMARY_KEYS = 4096
/** Most ranges in one frames-request. */
export const SYNC_MAX_RANGES = 256
/** Most runs per key in a summary; a node holding more merges the rest into the last one. */
export const SYNC_MAX_RUNS = 64
/** Most frames in one response (frames-request or set-request), across all its messages. */
export const SYNC_MAX_BATCH_FRAMES = 512
/** Most bytes in one response: the sum of its message lengths (prefixes excluded). */
export const SYNC_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
/** Whole sets exchanged by digest: every delegation, every equivocation proof. */
export const SYNC_SETS = ['delegations', 'proofs'] as const
export type SyncSet = (typeof SYNC_SETS)[number]

// --- messages ----------------------------------------------------------------------------

const strict = { additionalProperties: false } as const
const KeyIdHex = Type.String({ pattern: '^[0-9a-f]{64}$' })
const FrameIdHex = KeyIdHex
const Count = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })
const PositiveSeq = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })
const Limit = Type.Integer({ minimum: 1, maximum: SYNC_MAX_BATCH_FRAMES })
/** `[from, to]`, inclusive: seqs a node holds for a key. */
const RunSchema = Type.Tuple([PositiveSeq, PositiveSeq])
/** `[keyid, runs]`: the seqs held for a key as ascending, disjoint, non-adjacent runs (see summaryRuns). */
const SummaryEntrySchema = Type.Tuple([KeyIdHex, Type.Array(RunSchema, { minItems: 1, maxItems: SYNC_MAX_RUNS })])
/** `[keyid, from, to]`, inclusive. */
const SeqRangeSchema = Type.Tuple([KeyIdHex, PositiveSeq, PositiveSeq])
const SetDigestSchema = Type.Object({ count: Count, digest: KeyIdHex }, strict)

const SummaryRequestSchema = Type.Object({ type: Type.Literal('summary-request'), after: Type.Optional(KeyIdHex) }, strict)
const FramesRequestSchema = Type.Object(
  { type: Type.Literal('frames-request'), ranges: Type.Array(SeqRangeSchema, { minItems: 1, maxItems: SYNC_MAX_RANGES }), limit: Limit },
  strict
)
const SetRequestSchema = Type.Object(
  { type: Type.Literal('set-request'), set: Type.Union(SYNC_SETS.map((s) => Type.Literal(s))), after: Type.Optional(FrameIdHex), limit: Limit },
  strict
)
const SummarySchema = Type.Object(
  {
    type: Type.Literal('summary'),
    keys: Type.Array(SummaryEntrySchema, { maxItems: SYNC_MAX_SUMMARY_KEYS }),
    next: Type.Optional(KeyIdHex),
    delegations: SetDigestSchema,
    proofs: SetDigestSchema
  },
  strict
)
/** Frames travel as JSON strings holding their canonical text (valid frames need no escapes). */
const FramesSchema = Type.Object(
  { type: Type.Literal('frames'), frames: Type.Array(Type.String({ minLength: 1, maxLength: MAX_FRAME_BYTES }), { minItems: 1 }) },
  strict
)
/** `next` is where to resume: `[rangeIndex, seq]` after a frames-request, a frame id after a set-request. */
const EndSchema = Type.Object(
  { type: Type.Literal('end'), next: Type.Optional(Type.Union([Type.Tuple([Type.Integer({ minimum: 0, maximum: SYNC_MAX_RANGES - 1 }), PositiveSeq]), FrameIdHex])) },
  strict
)

export type Run = Static<typeof RunSchema>
export type SummaryEntry = Static<typeof SummaryEntrySchema>
export type SeqRange = Static<typeof SeqRangeSchema>
export type SetDigest = Static<typeof SetDigestSchema>
export type SummaryRequest = Static<typeof SummaryRequestSchema>
export type FramesRequest = Static<typeof FramesRequestSchema>
export type SetRequest = Static<typeof SetRequestSchema>
export type SummaryMessage = Static<typeof SummarySchema>
export type FramesMessage = Static<typeof FramesSchema>
export type EndMessage = Static<typeof EndSchema>
export type SyncRequest = SummaryRequest | FramesRequest | SetRequest
export type SyncResponseMessage = SummaryMessage | FramesMessage | EndMessage
export type SyncMessage = SyncRequest | SyncResponseMessage

const REQUEST_CHECKERS = {
  'summary-request': compileSchema(SummaryRequestSchema),
  'frames-request': compileSchema(FramesRequestSchema),
  'set-request': compileSchema(SetRequestSchema)
} as const
const RESPONSE_CHECKERS = {
  summary: compileSchema(SummarySchema),
  frames: compileSchema(FramesSchema),
  end: compileSchema(EndSchema)
} as const

function violation(message: string, field?: string): RbqError {
  return new RbqError('SYNC_PROTOCOL', message, field === undefined ? {} : { field })
}

export function encodeSyncMessage(message: SyncMessage): Uint8Array {
  const bytes = canonicalBytes(message)
  const max = message.type.endsWith('-request') ? SYNC_MAX_REQUEST_BYTES : SYNC_MAX_MESSAGE_BYTES
  if (bytes.length > max) throw new RbqError('INPUT_TOO_LARGE', `sync ${message.type}: ${bytes.length} bytes exceeds the ${max}-byte limit`)
  return bytes
}

function decodeWith<C extends Record<string, { check(value: unknown, root: string): unknown }>>(
  bytes: Uint8Array,
  max: number,
  checkers: C,
  root: string
): ReturnType<C[keyof C]['check']> {
  if (bytes.length > max) throw new RbqError('INPUT_TOO_LARGE', `${root}: ${bytes.length} bytes exceeds the ${max}-byte limit`, { field: root })
  const value = parseCanonicalJson(bytes, root)
  const type = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as { type?: unknown }).type : undefined
  const checker = typeof type === 'string' && Object.hasOwn(checkers, type) ? checkers[type] : undefined
  if (checker === undefined) {
    throw violation(`${root}.type: expected one of ${Object.keys(checkers).join(', ')}, got ${JSON.stringify(type)?.slice(0, 40) ?? 'nothing'}`, `${root}.type`)
  }
  return checker.check(value, root) as ReturnType<C[keyof C]['check']>
}

/** Decodes a request (responder side). Throws INPUT_TOO_LARGE, JSON_MALFORMED, NOT_CANONICAL, SCHEMA_INVALID or SYNC_PROTOCOL. */
export function decodeSyncRequest(bytes: Uint8Array): SyncRequest {
  const request = decodeWith(bytes, SYNC_MAX_REQUEST_BYTES, REQUEST_CHECKERS, 'sync request') as SyncRequest
  if (request.type === 'frames-request') {
    request.ranges.forEach(([, from, to], i) => {
      if (from > to) throw violation(`sync request.ranges[${i}]: from ${from} is above to ${to}`, `sync request.ranges[${i}]`)
    })
  }
  return request
}

/** Decodes one response message (requester side); checkSummary/checkEnd apply the request context. */
export function decodeSyncResponse(bytes: Uint8Array): SyncResponseMessage {
  return decodeWith(bytes, SYNC_MAX_MESSAGE_BYTES, RESPONSE_CHECKERS, 'sync response') as SyncResponseMessage
}

// --- summaries ---------------------------------------------------------------------------
//
// A summary lists, per signing key, the attestation seqs the node holds as runs: the first run
// starting at 1 is the key's highest contiguous seq, later runs are what it holds above a gap.
// Gaps are normal and often permanent (a crash may skip a reserved seq), so they are described
// exactly instead of re-fetching everything above them.

/**
 * Runs for a summary entry: at most SYNC_MAX_RUNS; beyond that the tail is merged into one run
 * (a requester then asks for seqs the responder only partly holds, and drops the duplicates).
 */
export function summaryRuns(runs: readonly Run[]): Run[] {
  if (runs.length <= SYNC_MAX_RUNS) return runs.map(([f, t]) => [f, t])
  const kept = runs.slice(0, SYNC_MAX_RUNS - 1).map(([f, t]): Run => [f, t])
  kept.push([(runs[SYNC_MAX_RUNS - 1] as Run)[0], (runs[runs.length - 1] as Run)[1]])
  return kept
}

/** Requester-side checks of a summary page against its request. */
export function checkSummary(request: SummaryRequest, summary: SummaryMessage): void {
  let previous = request.after ?? ''
  summary.keys.forEach(([keyid, runs], i) => {
    const field = `sync summary.keys[${i}]`
    if (!(keyid > previous)) throw violation(`${field}: key ids must be strictly ascending and after the requested cursor`, field)
    let end = -1
    for (const [from, to] of runs) {
      if (from > to || from <= end + 1) throw violation(`${field}: runs must be ascending, disjoint and non-adjacent`, field)
      end = to
    }
    previous = keyid
  })
  if (summary.next !== undefined && (summary.keys.length === 0 || summary.next !== previous)) {
    throw violation('sync summary.next: must equal the last key id of a non-empty page', 'sync summary.next')
  }
}

/** Seqs in `remote` and not in `local` (both ascending, disjoint). */
export function subtractRuns(remote: readonly Run[], local: readonly Run[]): Run[] {
  const out: Run[] = []
  let j = 0
  for (const [from, to] of remote) {
    let cursor = from
    while (j < local.length && (local[j] as Run)[1] < cursor) j++
    let k = j
    while (cursor <= to) {
      const l = local[k]
      if (l === undefined || l[0] > to) {
        out.push([cursor, to])
        break
      }
      if (l[0] > cursor) out.push([cursor, l[0] - 1])
      cursor = Math.max(cursor, l[1] + 1)
      k++
    }
  }
  return out
}

/** The ranges to ask a peer for: per key of its summary page, the seqs it holds that we lack. */
export function wantedRanges(localRuns: (keyid: KeyId) => readonly Run[] | undefined, remote: readonly SummaryEntry[]): SeqRange[] {
  const out: SeqRange[] = []
  for (const [keyid, runs] of remote) {
    for (const [from, to] of subtractRuns(runs, localRuns(keyid) ?? [])) out.push([keyid, from, to])
  }
  return out
}

// --- frames and set responses ---------------------------------------------------------------

/**
 * Requester-side checks of a response's `end` against its request and what arrived, so a
 * responder cannot make the requester loop: an incomplete response carries at least one frame
 * and a cursor inside the request that moves forward.
 */
export function checkEnd(request: FramesRequest | SetRequest, framesReceived: number, end: EndMessage): void {
  if (framesReceived > request.limit) throw violation(`sync response: ${framesReceived} frames exceed the requested limit ${request.limit}`)
  if (end.next === undefined) return
  if (framesReceived === 0) throw violation('sync end.next: an incomplete response must carry at least one frame', 'sync end.next')
  if (request.type === 'frames-request') {
    if (!Array.isArray(end.next)) throw violation('sync end.next: expected [rangeIndex, seq] after a frames-request', 'sync end.next')
    const [index, seq] = end.next
    const range = request.ranges[index]
    if (range === undefined || seq < range[1] || seq > range[2] || (index === 0 && seq === range[1])) {
      throw violation('sync end.next: cursor outside the requested ranges or not past the start', 'sync end.next')
    }
  } else if (typeof end.next !== 'string' || (request.after !== undefined && end.next <= request.after)) {
    throw violation('sync end.next: expected a frame id after the requested cursor', 'sync end.next')
  }
}

/** The request that continues an incomplete response, or undefined when it was complete. */
export function continueFrames(request: FramesRequest, end: EndMessage): FramesRequest | undefined {
  if (!Array.isArray(end.next)) return undefined
  const [index, seq] = end.next
  const [keyid, , to] = request.ranges[index] as SeqRange
  return { ...request, ranges: [[keyid, seq, to], ...request.ranges.slice(index + 1)] }
}

export function continueSet(request: SetRequest, end: EndMessage): SetRequest | undefined {
  return typeof end.next === 'string' ? { ...request, after: end.next } : undefined
}

/** Digest of a whole set: SHA-256 over the ascending frame ids (hex) concatenated. */
export function setDigest(frameIds: readonly string[]): SetDigest {
  const sorted = [...new Set(frameIds)].sort()
  return { count: sorted.length, digest: sha256Hex(sorted.join('')) }
}

/**
 * Packs frame texts into `frames` messages of at most SYNC_MAX_MESSAGE_BYTES each, in order.
 * The caller bounds the total (SYNC_MAX_BATCH_FRAMES, SYNC_MAX_RESPONSE_BYTES).
 */
export function packFrames(frameTexts: readonly string[]): FramesMessage[] {
  // {"frames":[...],"type":"frames"} costs 30 bytes; each frame adds its quoted text and a comma.
  const overhead = 30
  const out: FramesMessage[] = []
  let current: string[] = []
  let size = overhead
  for (const text of frameTexts) {
    const cost = Buffer.byteLength(JSON.stringify(text)) + 1
    if (current.length > 0 && size + cost > SYNC_MAX_MESSAGE_BYTES) {
      out.push({ type: 'frames', frames: current })
      current = []
      size = overhead
    }
    current.push(text)
    size += cost
  }
  if (current.length > 0) out.push({ type: 'frames', frames: current })
  return out
}
