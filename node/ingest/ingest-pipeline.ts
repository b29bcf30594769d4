/**
 * The one path every frame takes into the store — gossip, sync, API and this node's own
 * publications — so a frame means the same thing whichever way it arrived.
 *
 * Checks, in order (first failure wins; result codes are protocol RbqError codes):
 *   [IGNORE] QUEUE_FULL            the pipeline is not running
 *   [REJECT] INPUT_TOO_LARGE       over MAX_FRAME_BYTES (before hashing anything)
 *   [IGNORE] QUEUE_FULL            maxQueuedFrames / maxQueuedBytes already waiting (drop policy:
 *                                  the newest frame is dropped; gossip re-delivers nothing, but
 *                                  sync fetches what is missing later). 'local' is never dropped.
 *   [IGNORE] DUPLICATE             the same frame id is in the pipeline, or already stored
 *                                  (frame id = SHA-256 of the bytes: cheap, before any decoding)
 *   [REJECT] <decode codes>        protocol decodeFrame in the worker pool, in its normative
 *                                  order: UTF-8, canonical JSON, version, schema, key rule, key id,
 *                                  base64, payload type → SIGNATURE_INVALID → statement schema and
 *                                  semantics, EQUIVOCATION_INVALID for proofs (decode-pool.ts)
 *   [IGNORE] QUOTA_EXCEEDED        an untrusted key over its frames/bytes quota (quota.ts)
 *   (after each write)             strangers over their total budget: their oldest frames are
 *                                  evicted (quota.ts StrangerBudget)
 *   [IGNORE] STORE_ERROR           the write failed (disk full, I/O): nothing of it was written
 *   [IGNORE] DUPLICATE             stored meanwhile; the same statement under another signature;
 *                                  a second proof against an already proven key
 *   stored → 'stored' event; an attestation conflicting with a stored one (same key and seq,
 *   other statement) → this node signs, stores and emits an equivocation proof.
 * The [REJECT]/[IGNORE] marks are what each check means for gossip, decided in one place:
 * node/p2p/gossip-decision.ts (also the status per code, through results.ts). Every result is
 * counted in rbq_ingest_frames_total.
 *
 * Events: 'stored' fires for every newly stored frame, with its source (the verdict engine and
 * sync listen); 'equivocation' for each proof this node made (also 'stored', source 'local').
 * Which of these frames the node publishes on gossip: node/p2p/gossip-decision.ts.
 */
import { EventEmitter } from 'node:events'
import { availableParallelism } from 'node:os'
import type { Counter, Gauge } from 'prom-client'
import {
  MAX_FRAME_BYTES,
  RbqError,
  frameId,
  type AttestationFrame,
  type EquivocationFrame,
  type KeyId,
  type VerifiedFrame
} from '../../protocol/index.js'
import { equivocationBetween } from '../consensus/equivocation.js'
import type { Store } from '../db/store.js'
import { errorFields, silentLogger, type Logger } from '../../common/logger.js'
import { Metrics } from '../metrics.js'
import { DecodePool } from './decode-pool.js'
import { DEFAULT_QUOTA_LIMITS, DEFAULT_STRANGER_BUDGET, KeyQuota, StrangerBudget, type QuotaLimits, type StrangerBudgetLimits } from './quota.js'
import { failure } from './results.js'
import type { IngestEvents, IngestResult, IngestSource } from './ingest-types.js'

/** What the pipeline needs of the node's signer (identity/statement-signer.ts StatementSigner). */
export interface ProofSigner {
  readonly keyid: KeyId
  equivocationProof(a: AttestationFrame, b: AttestationFrame): EquivocationFrame
}

export interface IngestPipelineInit {
  /** This node's signer: signs equivocation proofs; frames of its key are never under quota. */
  signer: ProofSigner
  /** Keys exempt from the quota (e.g. the policy's effective builder set). Default: none. */
  isTrusted?: (keyid: KeyId) => boolean
  quota?: Partial<QuotaLimits>
  /** The keys isTrusted answers for, as a set (a new object when it changes): the stranger budget. Default: none. */
  trustedKeys?: () => ReadonlySet<KeyId>
  /** Total budget for frames of keys no policy trusts (quota.ts StrangerBudget). */
  strangerBudget?: Partial<StrangerBudgetLimits>
  /** Frames admitted but not finished; beyond it new frames are dropped (QUEUE_FULL). Default 16384. */
  maxQueuedFrames?: number
  /** Bytes of those frames. Default 64 MiB. */
  maxQueuedBytes?: number
  /** Decode worker threads. Default os.availableParallelism(); 0 decodes on the main thread. */
  workers?: number
  /** Frames per worker message and per store batch. Default 128. */
  maxBatch?: number
}

export interface IngestPipelineComponents {
  store: Store
  metrics?: Metrics
  logger?: Logger
}

export const DEFAULT_MAX_QUEUED_FRAMES = 16_384
export const DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024
export const DEFAULT_MAX_BATCH = 128

interface Item {
  readonly bytes: Uint8Array
  readonly source: IngestSource
  readonly peer: string | undefined
  readonly id: string
  readonly resolve: (result: IngestResult) => void
  frame?: VerifiedFrame
  done?: boolean
}

export class IngestPipeline extends EventEmitter<IngestEvents> {
  private readonly store: Store
  private readonly logger: Logger
  private readonly pool: DecodePool
  private readonly quota: KeyQuota
  private readonly budget: StrangerBudget
  private readonly signer: ProofSigner
  private readonly maxQueuedFrames: number
  private readonly maxQueuedBytes: number
  private readonly maxBatch: number
  private readonly results: Counter<'source' | 'status' | 'code'>

  private running = false
  /** Frames in the pipeline by id, with their pending outcome (a copy arriving meanwhile shares it). */
  private readonly inFlight = new Map<string, Promise<IngestResult>>()
  private queuedFrames = 0
  private queuedBytes = 0
  private staged: Item[] = []
  private flushScheduled = false
  private writeChain: Promise<void> = Promise.resolve()
  private idleWaiters: (() => void)[] = []

  constructor(components: IngestPipelineComponents, init: IngestPipelineInit) {
    super()
    this.store = components.store
    this.logger = components.logger ?? silentLogger()
    this.signer = init.signer
    const isTrusted = init.isTrusted ?? (() => false)
    const ownKey = init.signer.keyid
    this.quota = new KeyQuota({ ...DEFAULT_QUOTA_LIMITS, ...init.quota }, (keyid) => keyid === ownKey || isTrusted(keyid))
    this.maxQueuedFrames = init.maxQueuedFrames ?? DEFAULT_MAX_QUEUED_FRAMES
    this.maxQueuedBytes = init.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES
    this.maxBatch = init.maxBatch ?? DEFAULT_MAX_BATCH
    this.pool = new DecodePool({ logger: this.logger }, { workers: init.workers ?? availableParallelism() })

    const metrics = components.metrics ?? new Metrics()
    const noKeys: ReadonlySet<KeyId> = new Set()
    this.budget = new StrangerBudget(
      { store: this.store, trustedKeys: init.trustedKeys ?? (() => noKeys), ownKey, metrics, logger: this.logger },
      { ...DEFAULT_STRANGER_BUDGET, ...init.strangerBudget }
    )
    this.results = metrics.counter({
      name: 'rbq_ingest_frames_total',
      help: 'Frames through the ingest pipeline by source, status and error code (code "none" when stored)',
      labelNames: ['source', 'status', 'code']
    })
    const queued: Gauge = metrics.gauge({
      name: 'rbq_ingest_queued_frames',
      help: 'Frames admitted to the ingest pipeline and not finished yet',
      collect: () => queued.set(this.queuedFrames)
    })
    const store = this.store
    const stored: Gauge<'kind'> = metrics.gauge({
      name: 'rbq_store_frames',
      help: 'Frames in the store by kind',
      labelNames: ['kind'],
      collect: async () => {
        for (const kind of ['attestation', 'delegation', 'equivocation'] as const) stored.set({ kind }, await store.count(kind))
      }
    })
  }

  /** Decode worker threads running (0: decoding on the main thread). */
  get workers(): number {
    return this.pool.size
  }

  /** Frames admitted and not finished. */
  get queued(): number {
    return this.queuedFrames
  }

  /** Lets the decode workers go while no frame waits (node/memory.ts); the next frames start them again. */
  async parkWorkers(): Promise<void> {
    if (this.queuedFrames === 0) await this.pool.park()
  }

  async start(): Promise<void> {
    await this.pool.start()
    this.running = true
  }

  /** Stops admitting frames, finishes those in flight, stops the workers. */
  async stop(): Promise<void> {
    this.running = false
    this.flush()
    if (this.queuedFrames > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve))
    await this.pool.stop()
  }

  submit(bytes: Uint8Array, source: IngestSource, peer?: string): Promise<IngestResult> {
    return this.admit(bytes, source, peer)
  }

  /** Many frames (a sync batch, an API upload): decoded together in worker batches. */
  submitMany(frames: readonly Uint8Array[], source: IngestSource, peer?: string): Promise<IngestResult[]> {
    return Promise.all(frames.map((bytes) => this.admit(bytes, source, peer)))
  }

  // --- admission (synchronous, cheap) --------------------------------------------------------

  private admit(bytes: Uint8Array, source: IngestSource, peer: string | undefined): Promise<IngestResult> {
    // [IGNORE] QUEUE_FULL: not running (not started, or stopping).
    if (!this.running) return this.early(source, failure(new RbqError('QUEUE_FULL', 'the ingest pipeline is not running')), peer)
    // [REJECT] INPUT_TOO_LARGE: before hashing, so oversized input costs nothing.
    if (bytes.length > MAX_FRAME_BYTES) {
      return this.early(source, failure(new RbqError('INPUT_TOO_LARGE', `frame: ${bytes.length} bytes exceeds the ${MAX_FRAME_BYTES}-byte limit`, { field: 'frame' })), peer)
    }
    // [IGNORE] QUEUE_FULL: drop the newest; this node's own frames are never dropped.
    if (source !== 'local' && (this.queuedFrames >= this.maxQueuedFrames || this.queuedBytes + bytes.length > this.maxQueuedBytes)) {
      return this.early(source, failure(new RbqError('QUEUE_FULL', `ingest queue full (${this.queuedFrames} frames, ${this.queuedBytes} bytes)`)), peer)
    }
    const id = frameId(bytes)
    // The same frame already in the pipeline: this copy gets its outcome once known — an invalid
    // frame is rejected each time it is sent, a stored one is a [IGNORE] DUPLICATE for the copy.
    const pending = this.inFlight.get(id)
    if (pending !== undefined) {
      return pending.then((first) =>
        this.early(source, first.status === 'stored' ? { ...failure(new RbqError('DUPLICATE', 'frame already stored'), id), frame: first.frame! } : first, peer)
      )
    }

    this.queuedFrames++
    this.queuedBytes += bytes.length
    const outcome = new Promise<IngestResult>((resolve) => {
      this.staged.push({ bytes, source, peer, id, resolve })
      if (this.staged.length >= this.maxBatch) this.flush()
      else this.scheduleFlush()
    })
    this.inFlight.set(id, outcome)
    return outcome
  }

  /** A result decided before admission. */
  private early(source: IngestSource, result: IngestResult, peer: string | undefined): Promise<IngestResult> {
    this.count(source, result)
    if (result.status === 'rejected') this.logger.debug({ source, peer, ...errorFields(result.error) }, 'frame rejected')
    return Promise.resolve(result)
  }

  /** Waits one event-loop turn so frames arriving together (gossip bursts) share a batch. */
  private scheduleFlush(): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    setImmediate(() => {
      this.flushScheduled = false
      this.flush()
    })
  }

  private flush(): void {
    while (this.staged.length > 0) void this.process(this.staged.splice(0, this.maxBatch))
  }

  // --- processing (async, batched) -------------------------------------------------------------

  private async process(items: Item[]): Promise<void> {
    try {
      // [IGNORE] DUPLICATE: already stored (one read for the batch, before any decoding).
      const present = await this.store.hasFrames(items.map((i) => i.id))
      const fresh = items.filter((item, i) => {
        if (present[i] === true) this.finish(item, failure(new RbqError('DUPLICATE', 'frame already stored'), item.id))
        return present[i] !== true
      })
      // [REJECT] every decode check, in protocol order (see module comment), in the worker pool.
      const outcomes = await this.pool.decode(fresh.map((i) => i.bytes))
      const verified: Item[] = []
      fresh.forEach((item, i) => {
        const outcome = outcomes[i]
        if (outcome?.ok === true) {
          item.frame = outcome.frame
          verified.push(item)
        } else {
          this.finish(item, failure(outcome?.error ?? new RbqError('INTERNAL', 'no decode outcome'), item.id))
        }
      })
      // Writes are serialised: quota usage and equivocation checks see every earlier write.
      const write = this.writeChain.then(() => this.write(verified))
      this.writeChain = write.catch(() => undefined)
      await write
    } catch (e) {
      for (const item of items) if (item.done !== true) this.finish(item, failure(e, item.id))
    }
  }

  private async write(items: Item[]): Promise<void> {
    if (items.length === 0) return
    // [IGNORE] QUOTA_EXCEEDED: an untrusted key over its quota (this batch included).
    const quota = this.quota.batch((keyid) => this.store.keyStats(keyid))
    const admitted: Item[] = []
    for (const item of items) {
      try {
        await quota.admit((item.frame as VerifiedFrame).signer.keyid, item.bytes.length)
        admitted.push(item)
      } catch (e) {
        this.finish(item, failure(e, item.id))
      }
    }
    // [IGNORE] STORE_ERROR: the batch is atomic, so a failed write stored none of it.
    let outcomes
    try {
      outcomes = await this.store.putFrames(admitted.map((i) => i.frame as VerifiedFrame))
    } catch (e) {
      this.logger.error({ frames: admitted.length, ...errorFields(e) }, 'store write failed; frames dropped')
      for (const item of admitted) this.finish(item, failure(e, item.id))
      return
    }
    for (const [i, item] of admitted.entries()) {
      const frame = item.frame as VerifiedFrame
      const outcome = outcomes[i]
      // [IGNORE] DUPLICATE: see Store.putFrames.
      if (outcome?.status !== 'stored') {
        this.finish(item, { ...failure(new RbqError('DUPLICATE', 'frame or statement already stored'), item.id), frame })
        continue
      }
      this.emitSafe('stored', frame, item.source)
      const proof = frame.kind === 'attestation' && outcome.conflictsWith.length > 0 ? await this.proveEquivocation(frame, outcome.conflictsWith) : undefined
      this.finish(item, proof === undefined ? { status: 'stored', id: item.id, frame } : { status: 'stored', id: item.id, frame, proof })
    }
    // Within the write chain, so the next batch's quota sees the store after eviction.
    try {
      await this.budget.enforce()
    } catch (e) {
      this.logger.error(errorFields(e), "stranger budget not enforced (eviction failed; retried after the next write)")
    }
  }

  /** Frames and bytes stored from keys no policy trusts, and the budget for them. */
  async strangerUsage(): Promise<{ frames: number; bytes: number; limits: StrangerBudgetLimits }> {
    return { ...(await this.budget.usage()), limits: this.budget.limits }
  }

  /** Signs, stores and announces a proof that `frame`'s key equivocated (first proof per key). */
  private async proveEquivocation(frame: AttestationFrame, conflictsWith: string[]): Promise<EquivocationFrame | undefined> {
    const keyid = frame.signer.keyid
    try {
      if ((await this.store.proofIdFor(keyid)) !== undefined) return undefined
      const other = await this.store.getVerifiedFrame(conflictsWith[0] as string)
      if (other?.kind !== 'attestation') return undefined
      const equivocation = equivocationBetween(frame, other)
      if (equivocation === undefined) return undefined
      const proof = this.signer.equivocationProof(equivocation.a, equivocation.b)
      if ((await this.store.putFrame(proof)) !== 'stored') return undefined
      this.count('local', { status: 'stored', id: proof.id, frame: proof })
      this.logger.warn({ keyid, seq: frame.statement.predicate.builder.seq, proof: proof.id }, 'key equivocated; proof stored')
      this.emitSafe('stored', proof, 'local')
      this.emitSafe('equivocation', proof)
      return proof
    } catch (e) {
      this.logger.error({ keyid, ...errorFields(e) }, 'could not store an equivocation proof')
      return undefined
    }
  }

  // --- bookkeeping -----------------------------------------------------------------------------

  private finish(item: Item, result: IngestResult): void {
    if (item.done === true) return
    item.done = true
    this.inFlight.delete(item.id)
    this.queuedFrames--
    this.queuedBytes -= item.bytes.length
    this.count(item.source, result)
    if (result.status === 'rejected') this.logger.debug({ source: item.source, peer: item.peer, id: item.id, ...errorFields(result.error) }, 'frame rejected')
    item.resolve(result)
    if (this.queuedFrames === 0) for (const wake of this.idleWaiters.splice(0)) wake()
  }

  private count(source: IngestSource, result: IngestResult): void {
    this.results.inc({ source, status: result.status, code: result.error?.code ?? 'none' })
  }

  /** A throwing listener must not break ingestion. */
  private emitSafe<E extends keyof IngestEvents>(event: E, ...args: IngestEvents[E]): void {
    try {
      ;(this.emit as (event: E, ...args: IngestEvents[E]) => boolean)(event, ...args)
    } catch (e) {
      this.logger.error({ event, ...errorFields(e) }, 'ingest event listener threw')
    }
  }
}
