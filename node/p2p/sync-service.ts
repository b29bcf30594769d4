/**
 * Catch-up sync `/rbq/sync/1.0.0` (SPEC.md §Sync; messages and limits in protocol/sync.ts).
 *
 * Requester (a "session" with one peer, on connect and every `intervalMs`):
 *   1. summary pages: the peer's held seq runs per key, plus digests of its delegation and
 *      proof sets
 *   2. after the first page, whole sets (delegations, proofs) whose digest differs from ours
 *   3. after each page, the seqs we lack for that page's keys: frames-requests of at most
 *      `batchFrames` frames; the next request goes out while the previous response lands in
 *      the pipeline, and a response is submitted only once the one before it has landed
 *      (backpressure: at most one response waits)
 * Everything received goes through the ingest pipeline (source 'sync'): nothing is stored
 * unverified. A response is used only once complete; a peer that breaks the protocol (garbage,
 * oversize, more frames than asked, a cursor that does not move, a frame that fails
 * verification) ends the session with a strike (peer-penalties.ts). Errors never escape.
 *
 * Responder: one request per stream, answered from the store, the in-memory seq index and the
 * delegation and proof sets TrustState keeps (node/trust/trust-state.ts).
 */
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import * as lp from 'it-length-prefixed'
import type { Counter } from 'prom-client'
import {
  asRbqError,
  RbqError,
  SYNC_PROTOCOL,
  decodeUtf8,
  utf8,
  type KeyId,
  type VerifiedFrame
} from '../../protocol/index.js'
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
  SYNC_MAX_BATCH_FRAMES,
  SYNC_MAX_MESSAGE_BYTES,
  SYNC_MAX_RANGES,
  SYNC_MAX_REQUEST_BYTES,
  SYNC_MAX_RESPONSE_BYTES,
  SYNC_MAX_SUMMARY_KEYS,
  SYNC_SETS,
  type EndMessage,
  type FramesRequest,
  type Run,
  type SeqRange,
  type SetDigest,
  type SetRequest,
  type SummaryEntry,
  type SummaryMessage,
  type SyncMessage,
  type SyncRequest,
  type SyncSet
} from '../../protocol/sync.js'
import type { Store } from '../db/store.js'
import type { TrustState } from '../trust/trust-state.js'
import type { IngestResult, IngestSource, IngestStatus } from '../ingest/ingest-types.js'
import { errorFields, type Logger } from '../../common/logger.js'
import type { Metrics } from '../metrics.js'
import type { Host } from './host.js'
import { ipOf, type PeerPenalties } from './peer-penalties.js'
import { storedAttestationSeq, type SeqRuns } from './seq-runs.js'

export interface SyncInit {
  /** Between rounds with every connected peer (default 60 s). */
  intervalMs?: number
  /** Frames per frames-request (default and maximum SYNC_MAX_BATCH_FRAMES). */
  batchFrames?: number
  /** One request, from dial to last byte (default 30 s). */
  timeoutMs?: number
  /** Sessions at once (default 4). */
  maxConcurrentPeers?: number
}

export type SyncStore = Pick<Store, 'attestationsInRange'>

/** Where the delegation and proof sets come from (node/trust/trust-state.ts TrustState owns them). */
export type SyncTrust = Pick<TrustState, 'frameSet'>

export interface SyncIngest {
  submitMany(frames: Uint8Array[], source: IngestSource, peer?: string): Promise<IngestResult[]>
}

export type SyncHost = Pick<Host, 'handle' | 'unhandle' | 'dialProtocol' | 'getPeers' | 'getConnections' | 'hangUp' | 'addEventListener' | 'removeEventListener'>

export interface SyncComponents {
  host: SyncHost
  store: SyncStore
  trust: SyncTrust
  ingest: SyncIngest
  runs: SeqRuns
  penalties: PeerPenalties
  metrics: Metrics
  logger: Logger
}

/** What one session did (returned by syncWith, logged at info when it changed anything). */
export interface SyncReport {
  peer: string
  outcome: 'complete' | 'failed' | 'violation' | 'skipped'
  requests: number
  received: Record<IngestStatus, number>
  /** Time spent waiting for responses (network, the peer, decoding) and in the pipeline. */
  waitMs: number
  ingestMs: number
  error?: RbqError
}

/** A seq range one session is fetching; `settled` resolves when it is done (either way). */
interface RangeClaim {
  run: Run
  settled: Promise<void>
}

/** Ascending, disjoint, non-adjacent runs covering the same seqs as `runs`. */
function mergeRuns(runs: Run[]): Run[] {
  const out: Run[] = []
  for (const [from, to] of [...runs].sort((a, b) => a[0] - b[0])) {
    const last = out[out.length - 1]
    if (last !== undefined && from <= last[1] + 1) last[1] = Math.max(last[1], to)
    else out.push([from, to])
  }
  return out
}

/** Stops a session: the peer broke the protocol (strike) — as opposed to a failed stream. */
class Violation extends Error {
  constructor(readonly error: RbqError) {
    super(error.message)
  }
}

function violation(message: string): Violation {
  return new Violation(new RbqError('SYNC_PROTOCOL', message))
}

/** Response byte budget for frames, leaving room for message framing and the `end` message. */
const FRAME_BUDGET_BYTES = SYNC_MAX_RESPONSE_BYTES - 4096
/** Summary page budget, leaving room for the set digests and `next`. */
const SUMMARY_BUDGET_BYTES = SYNC_MAX_MESSAGE_BYTES - 1024

async function send(stream: Stream, message: SyncMessage, signal: AbortSignal): Promise<void> {
  if (!stream.send(lp.encode.single(encodeSyncMessage(message)))) await stream.onDrain({ signal })
}

/** Aborts the stream when the signal fires (timeout, stop), so pending reads end. */
function abortOn(stream: Stream, signal: AbortSignal): () => void {
  const onAbort = (): void => stream.abort(new Error(`sync stream aborted: ${String(signal.reason)}`))
  if (signal.aborted) onAbort()
  else signal.addEventListener('abort', onAbort, { once: true })
  return () => signal.removeEventListener('abort', onAbort)
}

export class SyncService {
  private readonly intervalMs: number
  private readonly batchFrames: number
  private readonly timeoutMs: number
  private readonly maxConcurrent: number
  private readonly log: Logger
  private readonly sessions = new Map<string, Promise<SyncReport>>()
  /** Peers waiting for a session slot, in arrival order. */
  private readonly queued = new Map<string, PeerId>()
  private timer: ReturnType<typeof setInterval> | undefined
  private stopping = new AbortController()
  private running = false
  /** Seq ranges being fetched by some session, per key (disjoint, ascending). */
  private readonly claims = new Map<KeyId, RangeClaim[]>()
  /** Set fetches under way: one peer at a time per set. */
  private readonly setFetches = new Map<SyncSet, Promise<void>>()
  /** Each set's digest, computed once per version of the set. */
  private readonly digests = new Map<SyncSet, { version: number; digest: SetDigest }>()
  private readonly metrics: {
    sessions: Counter<'outcome'>
    received: Counter<'status'>
    served: Counter<'request'>
    violations: Counter<'code' | 'side'>
    bans: Counter
    addressBans: Counter
    deferred: Counter
  }

  constructor(
    private readonly components: SyncComponents,
    init: SyncInit = {}
  ) {
    this.intervalMs = init.intervalMs ?? 60_000
    this.batchFrames = Math.min(init.batchFrames ?? SYNC_MAX_BATCH_FRAMES, SYNC_MAX_BATCH_FRAMES)
    this.timeoutMs = init.timeoutMs ?? 30_000
    this.maxConcurrent = init.maxConcurrentPeers ?? 4
    this.log = components.logger.child({ component: 'sync' })
    const m = components.metrics
    this.metrics = {
      sessions: m.counter({ name: 'rbq_sync_sessions_total', help: 'Sync sessions run as requester, by outcome', labelNames: ['outcome'] }),
      received: m.counter({ name: 'rbq_sync_frames_received_total', help: 'Frames received by sync, by ingest status', labelNames: ['status'] }),
      served: m.counter({ name: 'rbq_sync_requests_served_total', help: 'Sync requests answered, by request type', labelNames: ['request'] }),
      violations: m.counter({
        name: 'rbq_sync_violations_total',
        help: 'Sync protocol violations by peers, by error code and side (requester|responder)',
        labelNames: ['code', 'side']
      }),
      bans: m.counter({ name: 'rbq_sync_bans_total', help: 'Peers disconnected and banned for repeated sync violations' }),
      deferred: m.counter({
        name: 'rbq_sync_deferred_total',
        help: 'Times a session left a missing range (or set) to the session already fetching it from another peer'
      }),
      addressBans: m.counter({ name: 'rbq_sync_address_bans_total', help: 'IP addresses banned after several peer ids from them were banned for sync violations' })
    }
  }

  async start(): Promise<void> {
    if (this.running) return
    this.running = true
    this.stopping = new AbortController()
    await this.components.host.handle(SYNC_PROTOCOL, this.onStream, { maxInboundStreams: 4, maxOutboundStreams: 4 })
    this.components.host.addEventListener('peer:identify', this.onIdentify)
    this.timer = setInterval(() => this.syncAll(), this.intervalMs)
    this.timer.unref?.()
  }

  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    clearInterval(this.timer)
    this.components.host.removeEventListener('peer:identify', this.onIdentify)
    this.queued.clear()
    this.stopping.abort(new Error('sync stopping'))
    await Promise.allSettled([...this.sessions.values()])
    await this.components.host.unhandle(SYNC_PROTOCOL)
  }

  /** Pipeline `stored` listener: keeps the seq index current (the sets follow TrustState). */
  readonly onStored = (frame: VerifiedFrame): void => {
    if (frame.kind === 'attestation') this.components.runs.add(frame.signer.keyid, frame.statement.predicate.builder.seq)
  }

  /** Peers with a session running or waiting. */
  get activePeers(): string[] {
    return [...this.sessions.keys(), ...this.queued.keys()]
  }

  /** Schedules a session with every connected peer. */
  syncAll(): void {
    for (const peer of this.components.host.getPeers()) this.schedule(peer)
  }

  /** Schedules a session with `peer` unless one is running or queued. */
  schedule(peer: PeerId): void {
    const id = peer.toString()
    if (!this.running || this.sessions.has(id) || this.queued.has(id) || this.components.penalties.isBanned(id)) return
    if (this.sessions.size >= this.maxConcurrent) {
      this.queued.set(id, peer)
      return
    }
    const session = this.syncWith(peer).finally(() => {
      this.sessions.delete(id)
      const next = this.queued.entries().next()
      if (!next.done) {
        this.queued.delete(next.value[0])
        this.schedule(next.value[1])
      }
    })
    this.sessions.set(id, session)
  }

  private readonly onIdentify = (event: CustomEvent<{ peerId: PeerId; protocols: string[] }>): void => {
    if (event.detail.protocols.includes(SYNC_PROTOCOL)) this.schedule(event.detail.peerId)
  }

  // --- requester -----------------------------------------------------------------------------

  /** Runs one session with `peer` now; never throws. */
  async syncWith(peer: PeerId): Promise<SyncReport> {
    const report: SyncReport = {
      peer: peer.toString(),
      outcome: 'complete',
      requests: 0,
      received: { stored: 0, duplicate: 0, rejected: 0, ignored: 0 },
      waitMs: 0,
      ingestMs: 0
    }
    if (this.components.penalties.isBanned(peer)) return { ...report, outcome: 'skipped' }
    try {
      let after: KeyId | undefined
      let first = true
      do {
        const summary = await this.requestSummary(peer, after, report)
        if (first) {
          // Sets first: with the peer's proofs in hand, attestations that conflict are already
          // proven, and this node does not sign a proof of its own for them.
          first = false
          for (const set of SYNC_SETS) {
            if (summary[set].digest !== this.localSet(set).digest.digest) await this.fetchSetOnce(peer, set, summary[set].digest, report)
          }
        }
        await this.fetchMissing(peer, summary.keys, report)
        after = summary.next
      } while (after !== undefined)
    } catch (e) {
      if (e instanceof Violation) {
        report.outcome = 'violation'
        report.error = e.error
        this.penalise(peer, e.error, 'requester')
      } else {
        report.outcome = 'failed'
        report.error = asRbqError(e)
        this.log.debug({ peer: report.peer, ...errorFields(e) }, 'sync session failed')
      }
    }
    this.metrics.sessions.inc({ outcome: report.outcome })
    if (report.received.stored > 0 || report.outcome === 'violation') {
      const { peer, outcome, requests, received, waitMs, ingestMs } = report
      this.log.info({ peer, outcome, requests, ...received, waitMs: Math.round(waitMs), ingestMs: Math.round(ingestMs) }, 'sync session')
    }
    return report
  }

  private async requestSummary(peer: PeerId, after: KeyId | undefined, report: SyncReport): Promise<SummaryMessage> {
    const request: SyncRequest = after === undefined ? { type: 'summary-request' } : { type: 'summary-request', after }
    let summary: SummaryMessage | undefined
    await this.request(peer, request, report, (message) => {
      if (message.type !== 'summary' || summary !== undefined) throw violation(`expected one summary, got ${message.type}`)
      checkSummary(request, message)
      summary = message
    })
    if (summary === undefined) throw violation('summary response ended without a summary')
    return summary
  }

  /**
   * Fetches from `peer` the seqs of its summary page that this node lacks, one peer per range:
   * a range another session is fetching is not asked for again, only what is still missing once
   * that session is done (it may have failed). Claims are held only while fetching, never while
   * waiting, so sessions cannot wait on each other in a circle. Each range is asked of a peer at
   * most once per session, so a peer advertising seqs it does not serve cannot loop us.
   */
  private async fetchMissing(peer: PeerId, entries: readonly SummaryEntry[], report: SyncReport): Promise<void> {
    const asked = new Map<KeyId, Run[]>()
    for (;;) {
      const wanted = wantedRanges((keyid) => this.components.runs.runs(keyid), entries).flatMap(([keyid, from, to]) =>
        subtractRuns([[from, to]], asked.get(keyid) ?? []).map(([f, t]): SeqRange => [keyid, f, t])
      )
      if (wanted.length === 0) return
      const free = wanted.flatMap(([keyid, from, to]) =>
        subtractRuns(
          [[from, to]],
          (this.claims.get(keyid) ?? []).map((c) => c.run)
        ).map(([f, t]): SeqRange => [keyid, f, t])
      )
      if (free.length === 0) {
        // Everything still missing is being fetched from another peer: wait for one of those.
        const busy = new Set(wanted.map(([keyid]) => keyid))
        const pending = [...this.claims].filter(([keyid]) => busy.has(keyid)).flatMap(([, claims]) => claims.map((c) => c.settled))
        if (pending.length === 0) continue // unreachable: what is not free is claimed
        this.metrics.deferred.inc()
        const signal = this.stopping.signal
        let onAbort: (() => void) | undefined
        await Promise.race([...pending, new Promise<void>((resolve) => signal.addEventListener('abort', (onAbort = () => resolve()), { once: true }))])
        if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
        if (signal.aborted) throw new Error('sync stopping')
        continue
      }
      for (const [keyid, from, to] of free) asked.set(keyid, mergeRuns([...(asked.get(keyid) ?? []), [from, to]]))
      const release = this.claim(free)
      try {
        for (let i = 0; i < free.length; i += SYNC_MAX_RANGES) await this.fetchFrames(peer, free.slice(i, i + SYNC_MAX_RANGES), report)
      } finally {
        release()
      }
    }
  }

  /** Marks `ranges` as being fetched; the returned function releases them and wakes waiters. */
  private claim(ranges: readonly SeqRange[]): () => void {
    let settle!: () => void
    const settled = new Promise<void>((resolve) => (settle = resolve))
    const mine: { keyid: KeyId; claim: RangeClaim }[] = ranges.map(([keyid, from, to]) => ({ keyid, claim: { run: [from, to], settled } }))
    for (const { keyid, claim } of mine) {
      const list = this.claims.get(keyid) ?? []
      list.push(claim)
      list.sort((a, b) => a.run[0] - b.run[0])
      this.claims.set(keyid, list)
    }
    return () => {
      for (const { keyid, claim } of mine) {
        const list = (this.claims.get(keyid) ?? []).filter((c) => c !== claim)
        if (list.length === 0) this.claims.delete(keyid)
        else this.claims.set(keyid, list)
      }
      settle()
    }
  }

  /** Fetches a set unless another session is already fetching it; then only if still different. */
  private async fetchSetOnce(peer: PeerId, set: SyncSet, remoteDigest: string, report: SyncReport): Promise<void> {
    for (let running = this.setFetches.get(set); running !== undefined; running = this.setFetches.get(set)) {
      this.metrics.deferred.inc()
      await running
    }
    if (this.localSet(set).digest.digest === remoteDigest) return
    const fetch = this.fetchSet(peer, set, report)
    const done = fetch.then(
      () => undefined,
      () => undefined
    )
    this.setFetches.set(set, done)
    try {
      await fetch
    } finally {
      if (this.setFetches.get(set) === done) this.setFetches.delete(set)
    }
  }

  private fetchFrames(peer: PeerId, ranges: SeqRange[], report: SyncReport): Promise<void> {
    return this.fetchPaged(peer, { type: 'frames-request', ranges, limit: this.batchFrames }, continueFrames, report)
  }

  private fetchSet(peer: PeerId, set: SyncSet, report: SyncReport): Promise<void> {
    return this.fetchPaged(peer, { type: 'set-request', set, limit: this.batchFrames }, continueSet, report)
  }

  /**
   * Requests page after page. The next page is requested while the previous one lands in the
   * pipeline, so the decode workers do not wait for a round trip between pages; a page is
   * submitted only after the previous one landed (at most one page waits: backpressure).
   */
  private async fetchPaged<R extends FramesRequest | SetRequest>(
    peer: PeerId,
    first: R,
    next: (request: R, end: EndMessage) => R | undefined,
    report: SyncReport
  ): Promise<void> {
    let request: R | undefined = first
    let landing: Promise<void> = Promise.resolve()
    while (request !== undefined) {
      let page: { frames: Uint8Array[]; end: EndMessage }
      try {
        page = await this.fetchBatch(peer, request, report)
      } catch (e) {
        await landing // a violation in the page before counts first
        throw e
      }
      await landing
      landing = this.land(peer, page.frames, report)
      landing.catch(() => undefined) // awaited above or below; never unhandled meanwhile
      request = next(request, page.end)
    }
    await landing
  }

  /** Submits a page's frames; a frame that fails verification is the peer's violation. */
  private async land(peer: PeerId, frames: Uint8Array[], report: SyncReport): Promise<void> {
    if (frames.length === 0) return
    const ingestStart = performance.now()
    const results = await this.components.ingest.submitMany(frames, 'sync', peer.toString())
    report.ingestMs += performance.now() - ingestStart
    let rejected: IngestResult | undefined
    for (const result of results) {
      report.received[result.status]++
      this.metrics.received.inc({ status: result.status })
      if (result.status === 'rejected') rejected ??= result
    }
    // An honest peer serves only frames it verified: one that fails verification is on the peer.
    if (rejected !== undefined) throw new Violation(rejected.error ?? new RbqError('SYNC_PROTOCOL', 'peer served an invalid frame'))
  }

  /** One request/response, complete and checked; its frames are not submitted yet. */
  private async fetchBatch(peer: PeerId, request: FramesRequest | SetRequest, report: SyncReport): Promise<{ frames: Uint8Array[]; end: EndMessage }> {
    const frames: Uint8Array[] = []
    let end: EndMessage | undefined
    await this.request(peer, request, report, (message) => {
      if (end !== undefined) throw violation('message after end')
      if (message.type === 'frames') {
        if (frames.length + message.frames.length > request.limit) {
          throw violation(`response carries more than the ${request.limit} frames asked for`)
        }
        for (const text of message.frames) frames.push(utf8(text))
      } else if (message.type === 'end') {
        checkEnd(request, frames.length, message)
        end = message
      } else {
        throw violation(`unexpected ${message.type} in a frames response`)
      }
    })
    if (end === undefined) throw violation('response ended without end')
    return { frames, end }
  }

  /**
   * Opens a stream, sends `request`, and feeds each response message to `onMessage` until the
   * responder closes. Bounds: message size, total response bytes, the request timeout.
   */
  private async request(peer: PeerId, request: SyncRequest, report: SyncReport, onMessage: (m: ReturnType<typeof decodeSyncResponse>) => void): Promise<void> {
    report.requests++
    const start = performance.now()
    const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.timeoutMs)])
    const stream = await this.components.host.dialProtocol(peer, SYNC_PROTOCOL, { signal })
    const release = abortOn(stream, signal)
    try {
      await send(stream, request, signal)
      await stream.close({ signal })
      let total = 0
      try {
        for await (const chunk of lp.decode(stream, { maxDataLength: SYNC_MAX_MESSAGE_BYTES })) {
          total += chunk.byteLength
          if (total > SYNC_MAX_RESPONSE_BYTES) throw violation(`response exceeds ${SYNC_MAX_RESPONSE_BYTES} bytes`)
          onMessage(decodeSyncResponse(chunk.subarray()))
        }
      } catch (e) {
        // Typed errors come from decoding and checking peer input: the peer's fault.
        if (e instanceof RbqError) throw new Violation(e)
        // it-length-prefixed reports an oversized message by its error name.
        if ((e as Error).name === 'InvalidDataLengthError' || (e as Error).name === 'InvalidDataLengthLengthError') {
          throw new Violation(new RbqError('INPUT_TOO_LARGE', `sync message over ${SYNC_MAX_MESSAGE_BYTES} bytes`))
        }
        throw e
      }
    } catch (e) {
      stream.abort(e instanceof Error ? e : new Error(String(e)))
      throw e
    } finally {
      release()
      report.waitMs += performance.now() - start
    }
  }

  private penalise(peer: PeerId, error: RbqError, side: 'requester' | 'responder'): void {
    this.metrics.violations.inc({ code: error.code, side })
    this.log.warn({ peer: peer.toString(), side, ...errorFields(error) }, 'sync protocol violation')
    const { host, penalties } = this.components
    const addresses = [...new Set(host.getConnections(peer).flatMap((c) => ipOf(c.remoteAddr) ?? []))]
    if (penalties.strike(peer, addresses)) {
      this.metrics.bans.inc()
      const bannedAddresses = addresses.filter((ip) => penalties.isAddressBanned(ip))
      this.log.warn({ peer: peer.toString(), addresses, bannedAddresses }, 'peer banned for repeated sync violations')
      void host.hangUp(peer).catch(() => undefined)
      if (bannedAddresses.length > 0) {
        this.metrics.addressBans.inc(bannedAddresses.length)
        // Every identity on a banned address goes, not only the one that earned it.
        for (const conn of host.getConnections()) {
          if (penalties.isAddressBanned(conn.remoteAddr)) void conn.close().catch(() => undefined)
        }
      }
    }
  }

  // --- responder -----------------------------------------------------------------------------

  private readonly onStream = (stream: Stream, connection: Connection): void => {
    void this.serve(stream, connection.remotePeer)
  }

  private async serve(stream: Stream, peer: PeerId): Promise<void> {
    if (this.components.penalties.isBanned(peer)) {
      stream.abort(new Error('banned'))
      return
    }
    const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.timeoutMs)])
    const release = abortOn(stream, signal)
    try {
      let request: SyncRequest
      try {
        // One request per stream: read the first message and stop listening.
        const messages = lp.decode(stream, { maxDataLength: SYNC_MAX_REQUEST_BYTES })[Symbol.asyncIterator]()
        const first = await messages.next()
        void messages.return?.()
        // A requester that gives up (timeout, shutdown) closes early: not a strike.
        if (first.done === true) throw new Error('stream closed before a request')
        request = decodeSyncRequest(first.value.subarray())
      } catch (e) {
        const name = (e as Error).name
        const error =
          name === 'InvalidDataLengthError' || name === 'InvalidDataLengthLengthError'
            ? new RbqError('INPUT_TOO_LARGE', `sync request over ${SYNC_MAX_REQUEST_BYTES} bytes`)
            : e
        if (error instanceof RbqError) this.penalise(peer, error, 'responder')
        throw error
      }
      this.metrics.served.inc({ request: request.type })
      switch (request.type) {
        case 'summary-request':
          await send(stream, await this.summaryPage(request.after), signal)
          break
        case 'frames-request':
          await this.serveFrames(stream, request, signal)
          break
        case 'set-request':
          await this.serveSet(stream, request, signal)
          break
      }
      await stream.close({ signal })
    } catch (e) {
      this.log.debug({ peer: peer.toString(), ...errorFields(e) }, 'sync request not served')
      stream.abort(e instanceof Error ? e : new Error(String(e)))
    } finally {
      release()
    }
  }

  private async summaryPage(after: KeyId | undefined): Promise<SummaryMessage> {
    const { runs } = this.components
    const keys = runs.keys()
    const entries: SummaryEntry[] = []
    let size = 0
    let i = runs.indexAfter(after ?? '')
    for (; i < keys.length && entries.length < SYNC_MAX_SUMMARY_KEYS; i++) {
      const keyid = keys[i] as KeyId
      const entry: SummaryEntry = [keyid, summaryRuns(runs.runs(keyid) ?? [])]
      const cost = JSON.stringify(entry).length + 1
      if (size + cost > SUMMARY_BUDGET_BYTES) break
      entries.push(entry)
      size += cost
    }
    const page: SummaryMessage = { type: 'summary', keys: entries, delegations: this.localSet('delegations').digest, proofs: this.localSet('proofs').digest }
    const last = entries[entries.length - 1]
    if (i < keys.length && last !== undefined) page.next = last[0]
    return page
  }

  /**
   * Sends what the store holds in the requested ranges, in order, up to the request's limit and
   * the byte budget. A response does not end inside the frames of one seq (both statements of
   * an equivocation travel together) unless that seq alone fills it; then the rest of that seq
   * is skipped, which only a key already proven to equivocate can cause (its proof travels in
   * the proofs set).
   */
  private async serveFrames(stream: Stream, request: FramesRequest, signal: AbortSignal): Promise<void> {
    const limit = Math.min(request.limit, SYNC_MAX_BATCH_FRAMES)
    const out: Uint8Array[] = []
    let bytes = 0
    let next: [number, number] | undefined
    for (const [index, [keyid, from, to]] of request.ranges.entries()) {
      if (this.components.runs.runs(keyid) === undefined) continue
      const room = limit - out.length
      if (room === 0) {
        next = [index, from]
        break
      }
      const frames = await this.components.store.attestationsInRange(keyid, from, to, room)
      let fit = 0
      let size = bytes
      for (const frame of frames) {
        if (size + frame.length + 3 > FRAME_BUDGET_BYTES) break
        size += frame.length + 3
        fit++
      }
      if (fit === frames.length && frames.length < room) {
        // The whole range fits: go on with the next one.
        out.push(...frames)
        bytes = size
        continue
      }
      // The response ends in this range.
      const kept = frames.slice(0, fit)
      const last = kept[kept.length - 1]
      if (last === undefined) {
        next = [index, from]
        break
      }
      const lastSeq = storedAttestationSeq(last)
      let group = kept.length
      while (group > 0 && storedAttestationSeq(kept[group - 1] as Uint8Array) === lastSeq) group--
      let resume: number
      if (group > 0 || out.length > 0) {
        kept.length = group // the frames of lastSeq go whole in the next response
        resume = lastSeq
      } else {
        resume = lastSeq + 1
      }
      out.push(...kept)
      if (resume <= to) next = [index, resume]
      else if (index + 1 < request.ranges.length) next = [index + 1, (request.ranges[index + 1] as SeqRange)[1]]
      break
    }
    // A response with no frame must be final, or the requester could not make progress.
    if (out.length === 0) next = undefined
    await this.sendFrames(stream, out, next, signal)
  }

  private async serveSet(stream: Stream, request: SetRequest, signal: AbortSignal): Promise<void> {
    const { frames } = this.localSet(request.set)
    const limit = Math.min(request.limit, SYNC_MAX_BATCH_FRAMES)
    const out: Uint8Array[] = []
    let bytes = 0
    let lastId: string | undefined
    let next: string | undefined
    for (const [id, frame] of frames) {
      if (request.after !== undefined && id <= request.after) continue
      if (out.length >= limit || bytes + frame.length + 3 > FRAME_BUDGET_BYTES) {
        next = lastId
        break
      }
      out.push(frame)
      bytes += frame.length + 3
      lastId = id
    }
    await this.sendFrames(stream, out, next, signal)
  }

  private async sendFrames(stream: Stream, frames: Uint8Array[], next: [number, number] | string | undefined, signal: AbortSignal): Promise<void> {
    for (const message of packFrames(frames.map((f) => decodeUtf8(f, 'stored frame')))) await send(stream, message, signal)
    await send(stream, next === undefined ? { type: 'end' } : { type: 'end', next }, signal)
  }

  /** This node's delegations or proofs by frame id (ascending), from TrustState, with the set's digest. */
  private localSet(set: SyncSet): { digest: SetDigest; frames: ReadonlyMap<string, Uint8Array> } {
    const { version, frames } = this.components.trust.frameSet(set)
    let cached = this.digests.get(set)
    if (cached?.version !== version) this.digests.set(set, (cached = { version, digest: setDigest([...frames.keys()]) }))
    return { digest: cached.digest, frames }
  }
}
