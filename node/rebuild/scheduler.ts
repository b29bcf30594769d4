/**
 * The rebuild scheduler: a persistent job queue in the store's 'jobs' sublevel.
 *
 *   jobs sublevel layout (owned here):
 *     'queue' \0 purl -> RebuildJob      one per purl (dedupe); state queued | running
 *     'done'  \0 purl -> FinishedJob     last result per purl; a feed never re-queues a done purl
 *
 * - Survives restarts: a job found `running` on start was interrupted (crash) and is re-queued.
 * - `concurrency` jobs at a time; API requests first, then new uploads, then other nodes'
 *   requests (demand), then the rest of the sample (JobReason).
 * - Transient failures (the runner says so, or throws DOWNLOAD_FAILED / FEED_ERROR) are retried
 *   with exponential backoff up to `maxAttempts`; anything else is final (a build that fails
 *   deterministically fails again). The runner learns when an attempt is the last one, so it can
 *   attest the failure then.
 * - Every attempt runs under a job timeout: its AbortSignal fires, and a runner that does not
 *   settle within a grace period loses its slot anyway.
 * Time comes from an injectable Clock so tests drive backoff without waiting.
 */
import { EventEmitter } from 'node:events'
import type { Counter, Gauge } from 'prom-client'
import { canonicalJson, isRbqError, RbqError, type ErrorCode } from '../../protocol/index.js'
import { SEP } from '../db/buckets.js'
import type { JsonSublevel } from '../db/store-types.js'
import { errorFields, silentLogger, type Logger } from '../../common/logger.js'
import type { Metrics } from '../metrics.js'
import type { RebuildOutcome } from './rebuild-types.js'

/**
 * What to build for a purl; stored in the job, so a restarted node needs no feed to resume.
 * A recipe target carries the recipe file's SHA-256: an edited recipe is a new target.
 */
export type JobTarget = { backend: 'recipe'; recipe: string; sha256: string } | { backend: 'debian'; source: string; version: string }

/**
 * Why a job exists, in the order jobs run: someone asked this node (API `rebuild-request`,
 * forced); the feed sampled a new upload (a version its previous index did not have); another
 * node asked the network (a rebuild request on gossip, node/p2p/demand.ts); the feed sampled it.
 */
export type JobReason = 'request' | 'upload' | 'demand' | 'feed'
const REASON_RANK: Record<JobReason, number> = { request: 0, upload: 1, demand: 2, feed: 3 }

/** Jobs queued by a feed: dropped on start when their package is no longer followed. */
export function isFeedReason(reason: JobReason): boolean {
  return reason === 'feed' || reason === 'upload'
}

export interface RebuildJob {
  purl: string
  target: JobTarget
  reason: JobReason
  state: 'queued' | 'running'
  /** Attempts started so far. */
  attempts: number
  /** Not before this time (ms since epoch): the backoff of a retry. */
  notBefore: number
  enqueuedAt: number
  lastError?: { code: ErrorCode; message: string }
}

export interface FinishedJob {
  purl: string
  target: JobTarget
  /** `done`: the runner reported an outcome (attested); `failed`: gave up without one. */
  status: 'done' | 'failed'
  outcome?: RebuildOutcome
  frameId?: string
  attempts: number
  finishedAt: number
  error?: { code: ErrorCode; message: string }
}

/** What a runner reports for one attempt (or it throws). */
export type JobReport =
  | { status: 'done'; outcome: RebuildOutcome; frameId?: string }
  | { status: 'transient'; code: ErrorCode; message: string }

export interface JobContext {
  /** 1-based number of this attempt. */
  attempt: number
  /** No retry follows this attempt, whatever happens. */
  lastAttempt: boolean
  /** Fires at the job timeout and when the scheduler stops. */
  signal: AbortSignal
}

export type JobRunner = (job: RebuildJob, ctx: JobContext) => Promise<JobReport>

export interface Clock {
  now(): number
  /** Calls `fn` after `ms`; returns a cancel function. */
  setTimer(ms: number, fn: () => void): () => void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (ms, fn) => {
    const t = setTimeout(fn, Math.max(0, ms))
    t.unref?.()
    return () => clearTimeout(t)
  }
}

export interface SchedulerInit {
  /** Jobs run at once (default 1: builds are heavy and the machine is shared). */
  concurrency?: number
  /** Attempts per job, the first included (default 5). */
  maxAttempts?: number
  /** Backoff before retry n is min(base * 2^(n-1), max) (defaults 60 s, 1 h). */
  backoffBaseMs?: number
  backoffMaxMs?: number
  /** One attempt, downloads included (default 4 h). */
  jobTimeoutMs?: number
  /** A runner still busy this long after its abort loses its slot (default 60 s). */
  abortGraceMs?: number
  /** Queued jobs at most (default 100 000): enqueue beyond it is QUEUE_FULL. */
  maxQueued?: number
  clock?: Clock
}

export interface SchedulerComponents {
  jobs: JsonSublevel<RebuildJob | FinishedJob>
  runJob: JobRunner
  logger?: Logger
  metrics?: Metrics
}

export type EnqueueStatus = 'queued' | 'already-queued' | 'running' | 'already-done'

export type SchedulerEvent =
  | { type: 'started'; job: RebuildJob }
  | { type: 'retry'; job: RebuildJob; error: { code: ErrorCode; message: string } }
  | { type: 'finished'; job: FinishedJob }

const TRANSIENT_CODES: readonly ErrorCode[] = ['DOWNLOAD_FAILED', 'FEED_ERROR']

/**
 * Errors worth retrying: network and archive-index trouble, and a full disk (space may be
 * freed) — not the build itself.
 */
export function isTransientError(e: unknown): boolean {
  if (e instanceof RbqError && TRANSIENT_CODES.includes(e.code)) return true
  const errno = (x: unknown) => (x as { code?: unknown } | undefined)?.code
  return errno(e) === 'ENOSPC' || errno((e as { cause?: unknown } | undefined)?.cause) === 'ENOSPC'
}

const queueKey = (purl: string) => `queue${SEP}${purl}`
const doneKey = (purl: string) => `done${SEP}${purl}`
const range = (prefix: string) => ({ gte: `${prefix}${SEP}`, lt: `${prefix}\x01` })

export class RebuildScheduler extends EventEmitter<{ job: [SchedulerEvent] }> {
  private readonly jobs: JsonSublevel<RebuildJob | FinishedJob>
  private readonly runJob: JobRunner
  private readonly logger: Logger
  private readonly clock: Clock
  private readonly concurrency: number
  private readonly maxAttempts: number
  private readonly backoffBaseMs: number
  private readonly backoffMaxMs: number
  private readonly jobTimeoutMs: number
  private readonly abortGraceMs: number
  private readonly maxQueued: number
  private readonly queue = new Map<string, RebuildJob>()
  private readonly running = new Map<string, { controller: AbortController; done: Promise<void> }>()
  private cancelWake: (() => void) | undefined
  private enqueueChain: Promise<unknown> = Promise.resolve()
  private started = false
  private readonly metrics: { finished?: Counter<'status'>; queued?: Gauge<'state'> }

  constructor(components: SchedulerComponents, init: SchedulerInit = {}) {
    super()
    this.jobs = components.jobs
    this.runJob = components.runJob
    this.logger = components.logger ?? silentLogger()
    this.clock = init.clock ?? systemClock
    this.concurrency = init.concurrency ?? 1
    this.maxAttempts = init.maxAttempts ?? 5
    this.backoffBaseMs = init.backoffBaseMs ?? 60_000
    this.backoffMaxMs = init.backoffMaxMs ?? 3_600_000
    this.jobTimeoutMs = init.jobTimeoutMs ?? 4 * 3_600_000
    this.abortGraceMs = init.abortGraceMs ?? 60_000
    this.maxQueued = init.maxQueued ?? 100_000
    if (!(Number.isInteger(this.concurrency) && this.concurrency >= 1)) throw new RbqError('CONFIG_INVALID', 'scheduler concurrency must be a positive integer')
    if (!(Number.isInteger(this.maxAttempts) && this.maxAttempts >= 1)) throw new RbqError('CONFIG_INVALID', 'scheduler maxAttempts must be a positive integer')
    this.metrics = {
      finished: components.metrics?.counter({ name: 'rbq_rebuild_jobs_finished_total', help: 'Rebuild jobs finished, by status (done: attested; failed: gave up)', labelNames: ['status'] }),
      queued: components.metrics?.gauge({ name: 'rbq_rebuild_jobs', help: 'Rebuild jobs in the queue, by state', labelNames: ['state'] })
    }
  }

  /**
   * Loads the queue; jobs interrupted by a crash are queued again. Feed jobs `keep` refuses
   * (a package no longer followed since they were queued) are dropped, not built.
   */
  async start(options: { keep?: (job: RebuildJob) => boolean } = {}): Promise<void> {
    if (this.started) return
    for await (const [, job] of this.jobs.iterator(range('queue'))) {
      const j = job as RebuildJob
      if (isFeedReason(j.reason) && options.keep !== undefined && !options.keep(j)) {
        await this.jobs.del(queueKey(j.purl))
        this.logger.info({ purl: j.purl }, 'rebuild job dropped: its package is no longer followed')
        continue
      }
      if (j.state === 'running') {
        this.logger.warn({ purl: j.purl, attempts: j.attempts }, 'rebuild job was interrupted; queued again')
        j.state = 'queued'
        await this.jobs.put(queueKey(j.purl), j)
      }
      this.queue.set(j.purl, j)
    }
    this.started = true
    this.pump()
  }

  /** Aborts running attempts; they stay queued (not counted) for the next start. */
  async stop(): Promise<void> {
    if (!this.started) return
    this.started = false
    this.cancelWake?.()
    this.cancelWake = undefined
    for (const r of this.running.values()) r.controller.abort(new RbqError('BUILD_TIMEOUT', 'node stopping'))
    await Promise.all([...this.running.values()].map((r) => r.done))
    this.queue.clear()
  }

  /**
   * Adds a job unless one is queued or running for the purl (dedupe), or the purl was already
   * rebuilt from the same target (unless `force`: an explicit request rebuilds again). A forced
   * request for a job waiting on its backoff makes it due now.
   */
  enqueue(purl: string, target: JobTarget, opts: { reason?: JobReason; force?: boolean } = {}): Promise<EnqueueStatus> {
    // One at a time: two callers (feed poll, API request) must not both add the same purl.
    const next = this.enqueueChain.then(() => this.enqueueNow(purl, target, opts))
    this.enqueueChain = next.catch(() => undefined)
    return next
  }

  private async enqueueNow(purl: string, target: JobTarget, opts: { reason?: JobReason; force?: boolean }): Promise<EnqueueStatus> {
    const reason = opts.reason ?? 'feed'
    const existing = this.queue.get(purl)
    if (existing !== undefined) {
      if (existing.state === 'running') return 'running'
      const due = opts.force === true && existing.notBefore > this.clock.now()
      // A queued job asked for again for a more urgent reason moves up (a sampled package
      // another node asks for; a demand this node's user repeats).
      if (due || REASON_RANK[reason] < REASON_RANK[existing.reason]) {
        if (due) existing.notBefore = this.clock.now()
        if (REASON_RANK[reason] < REASON_RANK[existing.reason]) existing.reason = reason
        await this.jobs.put(queueKey(purl), existing)
        this.pump()
      }
      return 'already-queued'
    }
    if (opts.force !== true) {
      const done = (await this.jobs.get(doneKey(purl))) as FinishedJob | undefined
      if (done !== undefined && canonicalJson(done.target) === canonicalJson(target)) return 'already-done'
    }
    if (this.queue.size >= this.maxQueued) throw new RbqError('QUEUE_FULL', `rebuild queue holds ${this.queue.size} jobs; not adding ${purl}`)
    const now = this.clock.now()
    const job: RebuildJob = { purl, target, reason, state: 'queued', attempts: 0, notBefore: now, enqueuedAt: now }
    await this.jobs.put(queueKey(purl), job)
    this.queue.set(purl, job)
    this.pump()
    return 'queued'
  }

  /** The queued/running job for a purl, else its last finished record. */
  async get(purl: string): Promise<RebuildJob | FinishedJob | undefined> {
    const queued = this.queue.get(purl)
    return queued === undefined ? ((await this.jobs.get(doneKey(purl))) as FinishedJob | undefined) : { ...queued }
  }

  queued(): RebuildJob[] {
    return [...this.queue.values()].map((j) => ({ ...j }))
  }

  async finished(): Promise<FinishedJob[]> {
    const out: FinishedJob[] = []
    for await (const [, v] of this.jobs.iterator(range('done'))) out.push(v as FinishedJob)
    return out
  }

  /** Queued (not running) jobs of one reason, e.g. the demand bound of the pipeline. */
  queuedFor(reason: JobReason): number {
    let n = 0
    for (const j of this.queue.values()) if (j.reason === reason && j.state === 'queued') n++
    return n
  }

  stats(): { queued: number; running: number } {
    return { queued: this.queue.size - this.running.size, running: this.running.size }
  }

  /** Backoff before the retry that follows attempt `attempts`. */
  backoffMs(attempts: number): number {
    return Math.min(this.backoffBaseMs * 2 ** Math.max(0, attempts - 1), this.backoffMaxMs)
  }

  // --- internals ---------------------------------------------------------------------------

  private pump(): void {
    if (!this.started) return
    const now = this.clock.now()
    while (this.running.size < this.concurrency) {
      const next = this.nextDue(now)
      if (next === undefined) break
      this.launch(next)
    }
    this.updateGauges()
    this.scheduleWake(now)
  }

  private nextDue(now: number): RebuildJob | undefined {
    let best: RebuildJob | undefined
    for (const j of this.queue.values()) {
      if (j.state !== 'queued' || j.notBefore > now) continue
      if (best === undefined || before(j, best)) best = j
    }
    return best
  }

  /** One timer for the earliest job waiting on its backoff. */
  private scheduleWake(now: number): void {
    this.cancelWake?.()
    this.cancelWake = undefined
    if (this.running.size >= this.concurrency) return
    let earliest = Infinity
    for (const j of this.queue.values()) if (j.state === 'queued' && j.notBefore > now) earliest = Math.min(earliest, j.notBefore)
    if (earliest !== Infinity) this.cancelWake = this.clock.setTimer(earliest - now, () => this.pump())
  }

  private launch(job: RebuildJob): void {
    job.state = 'running'
    job.attempts++
    const controller = new AbortController()
    const done = this.attempt(job, controller).catch((e: unknown) => {
      // Only store errors reach here: the job stays as it is and runs again after a restart.
      this.logger.error({ purl: job.purl, ...errorFields(e) }, 'rebuild scheduler could not record a job')
    })
    this.running.set(job.purl, { controller, done })
    void done.finally(() => {
      this.running.delete(job.purl)
      this.pump()
    })
  }

  private async attempt(job: RebuildJob, controller: AbortController): Promise<void> {
    await this.jobs.put(queueKey(job.purl), job) // persisted as running before any work
    this.emit('job', { type: 'started', job: { ...job } })
    const ctx: JobContext = { attempt: job.attempts, lastAttempt: job.attempts >= this.maxAttempts, signal: controller.signal }
    let report: JobReport
    try {
      report = await this.withTimeout(job, ctx, controller)
    } catch (e) {
      if (!this.started) return this.requeueUncounted(job)
      const error = { code: isRbqError(e) ? e.code : ('INTERNAL' as ErrorCode), message: (e as Error)?.message ?? String(e) }
      if (!isTransientError(e)) return this.finish(job, { status: 'failed', error })
      report = { status: 'transient', ...error }
    }
    if (report.status === 'done') {
      return this.finish(job, { status: 'done', outcome: report.outcome, ...(report.frameId === undefined ? {} : { frameId: report.frameId }) })
    }
    if (!this.started) return this.requeueUncounted(job)
    const error = { code: report.code, message: report.message }
    if (ctx.lastAttempt) return this.finish(job, { status: 'failed', error })
    job.state = 'queued'
    job.lastError = error
    job.notBefore = this.clock.now() + this.backoffMs(job.attempts)
    await this.jobs.put(queueKey(job.purl), job)
    this.logger.info({ purl: job.purl, attempt: job.attempts, retryInMs: job.notBefore - this.clock.now(), code: error.code, err: error.message }, 'rebuild will be retried')
    this.emit('job', { type: 'retry', job: { ...job }, error })
  }

  /** Interrupted by stop(): not the job's fault, so the attempt does not count. */
  private async requeueUncounted(job: RebuildJob): Promise<void> {
    job.state = 'queued'
    job.attempts--
    await this.jobs.put(queueKey(job.purl), job)
  }

  private withTimeout(job: RebuildJob, ctx: JobContext, controller: AbortController): Promise<JobReport> {
    return new Promise<JobReport>((resolve, reject) => {
      if (controller.signal.aborted) {
        reject(controller.signal.reason) // stopped before the runner was even called
        return
      }
      let cancelGrace: (() => void) | undefined
      const cancelTimeout = this.clock.setTimer(this.jobTimeoutMs, () => {
        controller.abort(new RbqError('BUILD_TIMEOUT', `rebuild job for ${job.purl} exceeded ${this.jobTimeoutMs} ms`))
      })
      const onAbort = (): void => {
        cancelGrace = this.clock.setTimer(this.abortGraceMs, () => reject(controller.signal.reason))
      }
      controller.signal.addEventListener('abort', onAbort, { once: true })
      const settle = (): void => {
        cancelTimeout()
        cancelGrace?.()
        controller.signal.removeEventListener('abort', onAbort)
      }
      this.runJob({ ...job }, ctx).then(
        (r) => {
          settle()
          if (controller.signal.aborted) reject(controller.signal.reason)
          else resolve(r)
        },
        (e: unknown) => {
          settle()
          reject(controller.signal.aborted ? controller.signal.reason : e)
        }
      )
    })
  }

  private async finish(job: RebuildJob, how: Pick<FinishedJob, 'status' | 'outcome' | 'frameId' | 'error'>): Promise<void> {
    const record: FinishedJob = { purl: job.purl, target: job.target, attempts: job.attempts, finishedAt: this.clock.now(), ...how }
    await this.jobs.batch([
      { type: 'del', key: queueKey(job.purl) },
      { type: 'put', key: doneKey(job.purl), value: record }
    ])
    this.queue.delete(job.purl)
    this.metrics.finished?.inc({ status: record.status })
    const level = record.status === 'failed' ? 'warn' : 'info'
    this.logger[level]({ purl: job.purl, status: record.status, outcome: record.outcome, attempts: record.attempts, ...(record.error ?? {}) }, 'rebuild job finished')
    this.emit('job', { type: 'finished', job: record })
  }

  private updateGauges(): void {
    this.metrics.queued?.set({ state: 'running' }, this.running.size)
    this.metrics.queued?.set({ state: 'queued' }, this.queue.size - this.running.size)
  }
}

/** By reason (requests, uploads, demand, the rest of the sample), then the earliest due, then the oldest. */
function before(a: RebuildJob, b: RebuildJob): boolean {
  const ra = REASON_RANK[a.reason] ?? REASON_RANK.feed
  const rb = REASON_RANK[b.reason] ?? REASON_RANK.feed
  if (ra !== rb) return ra < rb
  if (a.notBefore !== b.notBefore) return a.notBefore < b.notBefore
  return a.enqueuedAt < b.enqueuedAt
}
