import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonicalBytes, isRbqError, utf8 } from '../../../protocol/index.js'
import {
  checkEnd,
  checkSummary,
  continueFrames,
  continueSet,
  decodeSyncRequest,
  decodeSyncResponse,
  encodeSyncMessage,
  packFrames,
  setDigest,
  subtractRuns,
  summaryRuns,
  wantedRanges,
  SYNC_MAX_MESSAGE_BYTES,
  SYNC_MAX_REQUEST_BYTES,
  SYNC_MAX_RUNS,
  type FramesRequest,
  type Run,
  type SummaryEntry,
  type SyncRequest,
  type SyncResponseMessage
} from '../../../protocol/sync.js'

const K1 = '1'.repeat(64)
const K2 = '2'.repeat(64)
const ID = (n: number) => n.toString(16).padStart(64, '0')
const EMPTY = setDigest([])

function code(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (e) {
    if (isRbqError(e)) return e.code
    throw e
  }
  return undefined
}

/** The seqs a run list covers, as a set (for brute-force comparisons). */
function seqsOf(runs: readonly Run[]): Set<number> {
  const out = new Set<number>()
  for (const [from, to] of runs) for (let s = from; s <= to; s++) out.add(s)
  return out
}

/** Sorted disjoint non-adjacent runs of a set of seqs. */
function runsOf(seqs: Iterable<number>): Run[] {
  const sorted = [...new Set(seqs)].sort((a, b) => a - b)
  const runs: Run[] = []
  for (const s of sorted) {
    const last = runs[runs.length - 1]
    if (last !== undefined && last[1] + 1 === s) last[1] = s
    else runs.push([s, s])
  }
  return runs
}

describe('sync message codec', () => {
  const requests: SyncRequest[] = [
    { type: 'summary-request' },
    { type: 'summary-request', after: K1 },
    { type: 'frames-request', ranges: [[K1, 1, 10]], limit: 512 },
    { type: 'set-request', set: 'proofs', limit: 16, after: ID(3) }
  ]
  const responses: SyncResponseMessage[] = [
    { type: 'summary', keys: [[K1, [[1, 4], [6, 9]]]], next: K1, delegations: EMPTY, proofs: setDigest([ID(1)]) },
    { type: 'frames', frames: ['{"a":1}'] },
    { type: 'end' },
    { type: 'end', next: [0, 5] },
    { type: 'end', next: ID(9) }
  ]

  it('round-trips every message type as canonical JSON', () => {
    for (const r of requests) {
      const bytes = encodeSyncMessage(r)
      expect(bytes).toEqual(canonicalBytes(r))
      expect(decodeSyncRequest(bytes)).toEqual(r)
    }
    for (const r of responses) expect(decodeSyncResponse(encodeSyncMessage(r))).toEqual(r)
  })

  it('rejects non-canonical, malformed, unknown and misplaced messages with typed codes', () => {
    expect(code(() => decodeSyncRequest(utf8('{ "type": "summary-request" }')))).toBe('NOT_CANONICAL')
    expect(code(() => decodeSyncRequest(utf8('{"type":')))).toBe('JSON_MALFORMED')
    expect(code(() => decodeSyncRequest(utf8('[]')))).toBe('SYNC_PROTOCOL')
    expect(code(() => decodeSyncRequest(canonicalBytes({ type: 'gimme-everything' })))).toBe('SYNC_PROTOCOL')
    // a response type is not a request, and the other way round
    expect(code(() => decodeSyncRequest(canonicalBytes({ type: 'end' })))).toBe('SYNC_PROTOCOL')
    expect(code(() => decodeSyncResponse(canonicalBytes({ type: 'summary-request' })))).toBe('SYNC_PROTOCOL')
    expect(code(() => decodeSyncRequest(canonicalBytes({ type: 'summary-request', extra: 1 })))).toBe('SCHEMA_INVALID')
    expect(code(() => decodeSyncRequest(canonicalBytes({ type: 'frames-request', ranges: [[K1, 5, 4]], limit: 1 })))).toBe('SYNC_PROTOCOL')
    expect(code(() => decodeSyncRequest(canonicalBytes({ type: 'frames-request', ranges: [[K1, 0, 4]], limit: 1 })))).toBe('SCHEMA_INVALID')
    expect(code(() => decodeSyncRequest(canonicalBytes({ type: 'frames-request', ranges: [[K1, 1, 4]], limit: 513 })))).toBe('SCHEMA_INVALID')
    expect(code(() => decodeSyncRequest(canonicalBytes({ type: 'frames-request', ranges: [['AB'.repeat(32), 1, 4]], limit: 1 })))).toBe('SCHEMA_INVALID')
    expect(code(() => decodeSyncResponse(canonicalBytes({ type: 'frames', frames: [] })))).toBe('SCHEMA_INVALID')
  })

  it('enforces the size limits before parsing', () => {
    expect(code(() => decodeSyncRequest(new Uint8Array(SYNC_MAX_REQUEST_BYTES + 1)))).toBe('INPUT_TOO_LARGE')
    expect(code(() => decodeSyncResponse(new Uint8Array(SYNC_MAX_MESSAGE_BYTES + 1)))).toBe('INPUT_TOO_LARGE')
    expect(code(() => encodeSyncMessage({ type: 'frames', frames: ['x'.repeat(SYNC_MAX_MESSAGE_BYTES)] }))).toBe('INPUT_TOO_LARGE')
  })

  it('never throws anything but a typed error on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
        for (const decode of [decodeSyncRequest, decodeSyncResponse]) {
          try {
            decode(bytes)
          } catch (e) {
            expect(isRbqError(e)).toBe(true)
          }
        }
      })
    )
  })
})

describe('summaries and ranges', () => {
  it('checkSummary wants ascending keys after the cursor, well-formed runs and an honest next', () => {
    const page = (keys: SummaryEntry[], next?: string) => ({ type: 'summary' as const, keys, delegations: EMPTY, proofs: EMPTY, ...(next ? { next } : {}) })
    expect(() => checkSummary({ type: 'summary-request' }, page([[K1, [[1, 3]]], [K2, [[1, 1], [3, 3]]]], K2))).not.toThrow()
    expect(code(() => checkSummary({ type: 'summary-request' }, page([[K2, [[1, 3]]], [K1, [[1, 3]]]])))).toBe('SYNC_PROTOCOL')
    expect(code(() => checkSummary({ type: 'summary-request', after: K2 }, page([[K1, [[1, 3]]]])))).toBe('SYNC_PROTOCOL')
    expect(code(() => checkSummary({ type: 'summary-request' }, page([[K1, [[1, 3], [4, 5]]]])))).toBe('SYNC_PROTOCOL') // adjacent
    expect(code(() => checkSummary({ type: 'summary-request' }, page([[K1, [[3, 1]]]])))).toBe('SYNC_PROTOCOL')
    expect(code(() => checkSummary({ type: 'summary-request' }, page([], K1)))).toBe('SYNC_PROTOCOL')
    expect(code(() => checkSummary({ type: 'summary-request' }, page([[K1, [[1, 3]]]], K2)))).toBe('SYNC_PROTOCOL')
  })

  it('subtractRuns is set difference', () => {
    const runs = fc.uniqueArray(fc.integer({ min: 1, max: 60 }), { maxLength: 40 }).map(runsOf)
    fc.assert(
      fc.property(runs, runs, (remote, local) => {
        const expected = [...seqsOf(remote)].filter((s) => !seqsOf(local).has(s))
        expect(subtractRuns(remote, local)).toEqual(runsOf(expected))
      })
    )
  })

  it('wantedRanges asks for what the peer holds above our gaps, not what we already hold', () => {
    const local = new Map<string, Run[]>([[K1, [[1, 100], [102, 50_000]]]])
    const remote: SummaryEntry[] = [
      [K1, [[1, 100], [102, 50_001]]], // one new frame above a permanent gap
      [K2, [[1, 3]]] // a key we have never seen
    ]
    expect(wantedRanges((k) => local.get(k), remote)).toEqual([
      [K1, 50_001, 50_001],
      [K2, 1, 3]
    ])
  })

  it('summaryRuns keeps at most SYNC_MAX_RUNS, merging the tail', () => {
    const many: Run[] = Array.from({ length: SYNC_MAX_RUNS + 10 }, (_, i) => [3 * i + 1, 3 * i + 2])
    const out = summaryRuns(many)
    expect(out).toHaveLength(SYNC_MAX_RUNS)
    expect(out.slice(0, -1)).toEqual(many.slice(0, SYNC_MAX_RUNS - 1))
    expect(out.at(-1)).toEqual([(many[SYNC_MAX_RUNS - 1] as Run)[0], (many.at(-1) as Run)[1]])
  })
})

describe('responses', () => {
  const request: FramesRequest = { type: 'frames-request', ranges: [[K1, 5, 10], [K2, 1, 3]], limit: 4 }

  it('checkEnd refuses more frames than asked, and cursors that do not move', () => {
    expect(() => checkEnd(request, 4, { type: 'end' })).not.toThrow()
    expect(code(() => checkEnd(request, 5, { type: 'end' }))).toBe('SYNC_PROTOCOL')
    expect(() => checkEnd(request, 4, { type: 'end', next: [0, 9] })).not.toThrow()
    expect(() => checkEnd(request, 1, { type: 'end', next: [1, 1] })).not.toThrow()
    expect(code(() => checkEnd(request, 0, { type: 'end', next: [0, 9] }))).toBe('SYNC_PROTOCOL') // no frame
    expect(code(() => checkEnd(request, 4, { type: 'end', next: [0, 5] }))).toBe('SYNC_PROTOCOL') // not past the start
    expect(code(() => checkEnd(request, 4, { type: 'end', next: [0, 11] }))).toBe('SYNC_PROTOCOL') // outside
    expect(code(() => checkEnd(request, 4, { type: 'end', next: [2, 1] }))).toBe('SYNC_PROTOCOL') // no such range
    expect(code(() => checkEnd(request, 4, { type: 'end', next: ID(1) }))).toBe('SYNC_PROTOCOL') // wrong cursor kind
    const setRequest = { type: 'set-request' as const, set: 'delegations' as const, limit: 2, after: ID(5) }
    expect(() => checkEnd(setRequest, 2, { type: 'end', next: ID(7) })).not.toThrow()
    expect(code(() => checkEnd(setRequest, 2, { type: 'end', next: ID(5) }))).toBe('SYNC_PROTOCOL')
  })

  it('continuations resume at the cursor', () => {
    expect(continueFrames(request, { type: 'end', next: [0, 8] })?.ranges).toEqual([[K1, 8, 10], [K2, 1, 3]])
    expect(continueFrames(request, { type: 'end', next: [1, 2] })?.ranges).toEqual([[K2, 2, 3]])
    expect(continueFrames(request, { type: 'end' })).toBeUndefined()
    expect(continueSet({ type: 'set-request', set: 'proofs', limit: 2 }, { type: 'end', next: ID(4) })).toEqual({ type: 'set-request', set: 'proofs', limit: 2, after: ID(4) })
  })

  it('setDigest ignores order and repeats', () => {
    expect(setDigest([ID(2), ID(1), ID(2)])).toEqual(setDigest([ID(1), ID(2)]))
    expect(setDigest([ID(1)]).count).toBe(1)
    expect(setDigest([ID(1)]).digest).not.toBe(setDigest([ID(2)]).digest)
  })

  it('packFrames splits into messages under the size limit, in order', () => {
    const frame = 'f'.repeat(60 * 1024)
    const texts = Array.from({ length: 40 }, (_, i) => `${i}${frame}`)
    const messages = packFrames(texts)
    expect(messages.length).toBeGreaterThan(1)
    expect(messages.flatMap((m) => m.frames)).toEqual(texts)
    for (const m of messages) expect(encodeSyncMessage(m).length).toBeLessThanOrEqual(SYNC_MAX_MESSAGE_BYTES)
  })
})
