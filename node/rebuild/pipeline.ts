/**
 * The rebuild subsystem a node starts and stops (and the API's `ApiRebuilds`):
 *
 *   feeds ──poll──▶ sampler ──▶ scheduler (persistent queue) ──▶ builder ──▶ attest ──▶ Publisher
 *                                   ▲
 *   requestRebuild(purl) (API) ─────┘  (bypasses the sampler; rebuilds again even if done)
 *
 * Each job builds in `<data>/cache/rebuild/jobs/<id>`; after attesting, the artifacts are
 * removed and the build log is kept as `<data>/cache/rebuild/logs/<sha256>.log` (its digest is in
 * the attestation), newest `keepLogs` only. A result whose failure is transient is retried
 * without attesting, except on the last attempt, which attests `failed`.
 */
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { canonicalPurl, RbqError, type KeyId } from '../../protocol/index.js'
import type { JsonSublevel, SublevelName } from '../db/types.js'
import { errorFields, silentLogger, type Logger } from '../logger.js'
import type { Metrics } from '../metrics.js'
import { dataDirLayout } from '../paths.js'
import { publishRebuild, type AttestationPublisher } from './attest.js'
import type { RebuildConfig } from './config.js'
import { rebuildDebian } from './debian/builder.js'
import { debianDoctor } from './debian/doctor.js'
import { DebianFeed, RecipeDirFeed, type RebuildFeed } from './feeds.js'
import { rebuildRecipe } from './recipe/builder.js'
import { detectNetworkIsolation } from './recipe/network-isolation.js'
import { loadRecipe } from './recipe/recipe.js'
import { RebuildProgress, type ProgressSnapshot } from './progress.js'
import { loadOrCreateSamplerSeed, Sampler } from './sampler.js'
import { RebuildScheduler, type Clock, type EnqueueStatus, type FinishedJob, type JobContext, type JobReport, type RebuildJob } from './scheduler.js'
import type { ProgressEvent, ProgressPhase, RebuildResult } from './types.js'

/** A job being built, as `rbq status` names it. */
export interface RunningRebuild {
  purl: string
  /** The builder's current phase; `starting` before its first progress event. */
  phase: ProgressPhase | 'starting'
  message?: string
  elapsedSeconds: number
  attempt: number
}

interface Running {
  purl: string
  attempt: number
  startedAt: number
  phase: ProgressPhase | 'starting'
  phaseSince: number
  message?: string
}

export interface RebuildPipelineInit extends Omit<RebuildConfig, 'enabled'> {
  dataDir: string
  /** Build logs kept (default 1000). */
  keepLogs?: number
  /** Replace the feeds made from the config (tests). */
  feeds?: RebuildFeed[]
  clock?: Clock
  /** Debian builder timeout per job (default: the job timeout). */
  debianTimeoutMs?: number
}

export interface RebuildPipelineComponents {
  store: { sublevel<V = unknown>(name: SublevelName): JsonSublevel<V> }
  publisher: AttestationPublisher & { keyid?: KeyId }
  logger?: Logger
  metrics?: Metrics
}

export class RebuildPipeline {
  readonly scheduler: RebuildScheduler
  private readonly init: RebuildPipelineInit
  private readonly publisher: AttestationPublisher
  private readonly logger: Logger
  private readonly feeds: RebuildFeed[]
  private readonly cacheDir: string
  private readonly debianCacheDir: string
  private sampler: Sampler | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private polling: Promise<void> | undefined
  private readonly abort = new AbortController()
  private jobCounter = 0
  private readonly running = new Map<string, Running>()
  private readonly progress: RebuildProgress

  constructor(components: RebuildPipelineComponents, init: RebuildPipelineInit) {
    this.init = init
    this.publisher = components.publisher
    this.logger = components.logger ?? silentLogger()
    this.cacheDir = dataDirLayout(init.dataDir).cache
    this.debianCacheDir = init.debian.cacheDir ?? join(this.cacheDir, 'debian')
    this.feeds = init.feeds ?? defaultFeeds(init, this.debianCacheDir, this.logger)
    this.scheduler = new RebuildScheduler(
      {
        jobs: components.store.sublevel('jobs'),
        runJob: (job, ctx) => this.runJob(job, ctx),
        logger: this.logger,
        ...(components.metrics === undefined ? {} : { metrics: components.metrics })
      },
      {
        concurrency: init.concurrency,
        maxAttempts: init.maxAttempts,
        jobTimeoutMs: init.jobTimeoutSeconds * 1000,
        ...(init.clock === undefined ? {} : { clock: init.clock })
      }
    )
    this.progress = new RebuildProgress(components.metrics === undefined ? {} : { metrics: components.metrics })
  }

  async start(): Promise<void> {
    this.sampler = new Sampler(await loadOrCreateSamplerSeed(this.init.dataDir), { share: this.init.share, filter: this.init.packages })
    await mkdir(join(this.cacheDir, 'rebuild', 'logs'), { recursive: true })
    for (const leftover of ['jobs', 'work']) await rm(join(this.cacheDir, 'rebuild', leftover), { recursive: true, force: true }) // a crash's
    await mkdir(join(this.cacheDir, 'rebuild', 'work'), { recursive: true })
    await this.reportBuilders()
    await this.progress.attach(this.scheduler)
    await this.scheduler.start({ keep: (job) => this.followed(job) })
    this.schedulePoll(0)
  }

  async stop(): Promise<void> {
    if (this.pollTimer !== undefined) clearTimeout(this.pollTimer)
    this.pollTimer = undefined
    this.abort.abort(new RbqError('FEED_ERROR', 'node stopping'))
    await this.polling?.catch(() => {})
    await this.scheduler.stop()
  }

  /**
   * An explicit request (API): rebuild this purl even if it is outside the sample or was
   * rebuilt before. NOT_FOUND when no feed knows how to build it.
   */
  async requestRebuild(purl: string): Promise<{ purl: string; status: EnqueueStatus; detail: string }> {
    const canonical = canonicalPurl(purl)
    for (const feed of this.feeds) {
      const entry = await feed.resolve(canonical, this.abort.signal)
      if (entry === undefined) continue
      // Exactly the resolved purl, nothing else (a version-less Debian purl names its newest version).
      const status = await this.scheduler.enqueue(entry.purl, entry.target, { reason: 'request', force: true })
      const waiting = this.scheduler.stats().queued
      return { purl: entry.purl, status, detail: `${feed.name} feed; ${waiting} ${waiting === 1 ? 'job' : 'jobs'} waiting` }
    }
    throw new RbqError('NOT_FOUND', `no feed of this node can rebuild ${canonical} (Debian source purls: pkg:deb/debian/NAME[@VERSION][?arch=source]; recipes: a purl from the recipe directory)`)
  }

  /** A feed job still wanted: some feed follows its package and the sample still includes it. */
  private followed(job: RebuildJob): boolean {
    return this.feeds.some((f) => f.follows(job.target)) && (this.sampler?.includes(job.purl) ?? true)
  }

  /** Reads every feed once and queues the sampled entries. */
  pollFeeds(): Promise<void> {
    this.polling ??= this.poll().finally(() => (this.polling = undefined))
    return this.polling
  }

  status(purl: string): Promise<RebuildJob | FinishedJob | undefined> {
    return this.scheduler.get(purl)
  }

  /** Queue size, the running jobs (purl, phase, elapsed) and progress (feeds, done, ETA) for /v1/status. */
  stats(): { queued: number; running: number; jobs: RunningRebuild[] } & ProgressSnapshot {
    const now = Date.now()
    const jobs = [...this.running.values()].map((r) => ({
      purl: r.purl,
      phase: r.phase,
      ...(r.message === undefined ? {} : { message: r.message }),
      elapsedSeconds: Math.max(0, Math.floor((now - r.startedAt) / 1000)),
      attempt: r.attempt
    }))
    const pending = this.scheduler.stats()
    return { ...pending, jobs, ...this.progress.snapshot({ ...pending, concurrency: this.init.concurrency }) }
  }

  // --- internals ---------------------------------------------------------------------------

  private schedulePoll(ms: number): void {
    this.pollTimer = setTimeout(() => {
      void this.pollFeeds().finally(() => {
        if (!this.abort.signal.aborted) this.schedulePoll(this.init.pollIntervalSeconds * 1000)
      })
    }, ms)
    this.pollTimer.unref?.()
  }

  private async poll(): Promise<void> {
    const sampler = this.sampler
    if (sampler === undefined) return
    for (const feed of this.feeds) {
      try {
        const entries = await feed.entries(this.abort.signal)
        let queued = 0
        let sampled = 0
        for (const e of entries) {
          if (!sampler.includes(e.purl)) continue
          sampled++
          if ((await this.scheduler.enqueue(e.purl, e.target, { reason: 'feed' })) === 'queued') queued++
        }
        this.progress.feedPolled(feed.name, entries.length, sampled)
        this.logger.info({ feed: feed.name, entries: entries.length, sampled, queued }, 'rebuild feed polled')
      } catch (e) {
        if (this.abort.signal.aborted) return
        this.logger.warn({ feed: feed.name, ...errorFields(e) }, 'rebuild feed poll failed; trying again next interval')
      }
    }
  }

  private async runJob(job: RebuildJob, ctx: JobContext): Promise<JobReport> {
    const dir = join(this.cacheDir, 'rebuild', 'jobs', `${Date.now()}-${process.pid}-${++this.jobCounter}`)
    const now = Date.now()
    const running: Running = { purl: job.purl, attempt: ctx.attempt, startedAt: now, phase: 'starting', phaseSince: now }
    this.running.set(job.purl, running)
    this.logger.info({ purl: job.purl, attempt: ctx.attempt, reason: job.reason }, 'rebuild started')
    try {
      const result = await this.build(job, dir, ctx.signal, (e) => this.onProgress(running, e))
      if (result.failure?.transient === true && !ctx.lastAttempt) {
        return { status: 'transient', code: result.failure.code ?? 'DOWNLOAD_FAILED', message: result.failure.reason }
      }
      const frame = await publishRebuild(result, this.publisher)
      await this.keepLog(result.log.path, result.log.sha256)
      this.logger.info({ purl: result.package, outcome: result.outcome, frame: frame.id, seq: frame.statement.predicate.builder.seq }, 'rebuild attested')
      return { status: 'done', outcome: result.outcome, frameId: frame.id }
    } finally {
      this.running.delete(job.purl)
      await rm(dir, { recursive: true, force: true })
    }
  }

  /**
   * A build can take minutes in one phase (the ~0.5 GB build root, dpkg-buildpackage): each
   * step the builder announces is logged, and a phase change says how long the last one took.
   * Lines of build output go to the build log only.
   */
  private onProgress(running: Running, e: ProgressEvent): void {
    if (e.logLine !== undefined) return
    const now = Date.now()
    const changed = e.phase !== running.phase
    const previous = changed && running.phase !== 'starting' ? { previousPhase: running.phase, previousSeconds: Math.round((now - running.phaseSince) / 1000) } : {}
    this.logger.info({ purl: running.purl, phase: e.phase, ...previous }, e.message)
    if (changed) {
      running.phase = e.phase
      running.phaseSince = now
    }
    running.message = e.message
  }

  private async build(job: RebuildJob, dir: string, signal: AbortSignal, onProgress: (e: ProgressEvent) => void): Promise<RebuildResult> {
    const t = job.target
    if (t.backend === 'recipe') {
      const recipe = await loadRecipe(t.recipe)
      return rebuildRecipe(recipe, {
        outDir: dir,
        workRoot: join(this.cacheDir, 'rebuild', 'work'),
        sourceCacheDir: join(this.cacheDir, 'rebuild', 'sources'),
        requireNetworkIsolation: this.init.requireNetworkIsolation,
        signal,
        onProgress
      })
    }
    return rebuildDebian(
      { source: t.source, version: t.version },
      {
        cacheDir: this.debianCacheDir,
        outDir: dir,
        signal,
        timeoutMs: this.init.debianTimeoutMs ?? this.init.jobTimeoutSeconds * 1000,
        onProgress,
        faithful: { buildinfoSources: this.init.debian.buildinfoSources, repositories: this.init.debian.exactRepositories },
        ...(this.init.debian.mirror === undefined ? {} : { mirror: this.init.debian.mirror }),
        ...(this.init.debian.suite === undefined ? {} : { suite: this.init.debian.suite })
      }
    )
  }

  /** Keeps the log under its digest, dropping the oldest beyond `keepLogs`. */
  private async keepLog(path: string, sha256: string): Promise<void> {
    const logs = join(this.cacheDir, 'rebuild', 'logs')
    try {
      await rename(path, join(logs, `${sha256}.log`))
      const names = await readdir(logs)
      const keep = this.init.keepLogs ?? 1000
      if (names.length <= keep) return
      const aged = await Promise.all(names.map(async (n) => ({ n, t: (await stat(join(logs, n))).mtimeMs })))
      aged.sort((a, b) => a.t - b.t)
      for (const { n } of aged.slice(0, names.length - keep)) await rm(join(logs, n), { force: true })
    } catch (e) {
      this.logger.warn({ log: path, ...errorFields(e) }, 'could not keep the build log')
    }
  }

  /** Says once, at start, what this machine can build (and what it cannot). */
  private async reportBuilders(): Promise<void> {
    const isolation = await detectNetworkIsolation()
    if (isolation.mode === 'none') this.logger.warn({ detail: isolation.detail }, 'recipe builds cannot be cut off from the network')
    if (this.init.debian.sources.length > 0) {
      const doctor = await debianDoctor()
      if (!doctor.ready) {
        const failed = doctor.checks.filter((c) => !c.ok && c.required).map((c) => `${c.name}: ${c.detail}`)
        this.logger.warn({ failed, install: doctor.install }, 'the Debian builder cannot run on this machine (rbq doctor)')
      }
    }
  }
}

function defaultFeeds(init: RebuildPipelineInit, debianCacheDir: string, logger: Logger): RebuildFeed[] {
  const feeds: RebuildFeed[] = []
  if (init.recipesDir !== undefined) feeds.push(new RecipeDirFeed(init.recipesDir, { logger }))
  // Always present: explicit requests for Debian purls work even with no followed sources.
  feeds.push(
    new DebianFeed(
      {
        cacheDir: debianCacheDir,
        sources: init.debian.sources,
        ...(init.debian.mirror === undefined ? {} : { mirror: init.debian.mirror }),
        ...(init.debian.suite === undefined ? {} : { suite: init.debian.suite })
      },
      { logger }
    )
  )
  return feeds
}
