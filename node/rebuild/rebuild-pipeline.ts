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
import { canonicalPurl, RbqError, type KeyId, type RebuildRequestMessage } from '../../protocol/index.js'
import type { JsonSublevel, SublevelName } from '../db/store-types.js'
import { errorFields, silentLogger, type Logger } from '../../common/logger.js'
import type { Metrics } from '../metrics.js'
import { dataDirLayout } from '../../common/data-dir.js'
import { publishRebuild, type AttestationPublisher } from './rebuild-statement.js'
import type { RebuildConfig } from './rebuild-config.js'
import { helperBuilder } from '../build-helper/helper-client.js'
import { localBuilder, type TargetBuilder } from '../build-helper/local-builder.js'
import { debianDoctor } from './debian/debian-doctor.js'
import { ARCHIVE_DEFAULT_SHARE, DebianFeed, RecipeDirFeed, type FeedEntry, type RebuildFeed } from './feeds.js'
import { detectNetworkIsolation } from './recipe/network-isolation.js'
import { RebuildProgress, type ProgressSnapshot } from './progress.js'
import { loadOrCreateSamplerSeed, Sampler } from './sampler.js'
import { RebuildScheduler, type Clock, type EnqueueStatus, type FinishedJob, type JobContext, type JobReport, type RebuildJob } from './scheduler.js'
import type { ProgressEvent, ProgressPhase, RebuildResult } from './rebuild-types.js'

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
  private feeds: RebuildFeed[]
  private checkTimer: NodeJS.Timeout | undefined
  /** Requesting key → times (ms) a request of theirs was honoured, within the last hour. */
  private readonly honoured = new Map<string, number[]>()
  private readonly cacheDir: string
  private readonly debianCacheDir: string
  private sampler: Sampler | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private polling: Promise<void> | undefined
  private readonly abort = new AbortController()
  private jobCounter = 0
  private readonly running = new Map<string, Running>()
  private readonly progress: RebuildProgress
  /** In this process, or through the privileged build helper (`[rebuild] build_helper`). */
  private readonly builder: TargetBuilder

  constructor(components: RebuildPipelineComponents, init: RebuildPipelineInit) {
    this.init = init
    this.publisher = components.publisher
    this.logger = components.logger ?? silentLogger()
    this.cacheDir = dataDirLayout(init.dataDir).cache
    this.debianCacheDir = init.debian.cacheDir ?? join(this.cacheDir, 'debian')
    this.builder = init.buildHelper === undefined ? localBuilder({ cacheDir: this.cacheDir, debianCacheDir: this.debianCacheDir, rebuild: init }) : helperBuilder(init.buildHelper)
    // `follow = "auto"` is settled in start(), once rbq doctor has said whether Debian builds run here.
    this.feeds = init.feeds ?? defaultFeeds(init, init.debian.follow === 'archive' ? 'archive' : 'sources', this.debianCacheDir, this.cacheDir, this.logger)
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
    this.sampler = new Sampler(await loadOrCreateSamplerSeed(this.init.dataDir), { share: this.init.share ?? 1, filter: this.init.packages })
    await mkdir(join(this.cacheDir, 'rebuild', 'logs'), { recursive: true })
    for (const leftover of ['jobs', 'work']) await rm(join(this.cacheDir, 'rebuild', leftover), { recursive: true, force: true }) // a crash's
    await mkdir(join(this.cacheDir, 'rebuild', 'work'), { recursive: true })
    await this.reportBuilders()
    await this.progress.attach(this.scheduler)
    await this.scheduler.start({ keep: (job) => this.followed(job) })
    this.schedulePoll(0)
    this.scheduleCheck()
  }

  async stop(): Promise<void> {
    if (this.pollTimer !== undefined) clearTimeout(this.pollTimer)
    this.pollTimer = undefined
    if (this.checkTimer !== undefined) clearTimeout(this.checkTimer)
    this.checkTimer = undefined
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

  /**
   * Another node's rebuild request (gossip, node/p2p/demand.ts), or this node's own sent with
   * `--network`: queued after new uploads when `[rebuild] demand` allows — a feed of this node
   * resolves and follows the package (`feed`), and for `sample` its sample includes it — within
   * the per-requester rate and the bound on waiting demand jobs. Never forced: a package this
   * node already rebuilt at that version has its attestation out already.
   */
  async honourRequest(request: Pick<RebuildRequestMessage, 'purl' | 'requester'>): Promise<{ status: EnqueueStatus | 'declined'; detail: string }> {
    const rule = this.init.demand
    const declined = (detail: string) => {
      this.logger.info({ purl: request.purl, requester: request.requester, detail }, 'rebuild request not honoured')
      return { status: 'declined' as const, detail }
    }
    if (rule.honour === 'off') return declined('[rebuild] demand = "off"')
    let found: { feed: RebuildFeed; entry: FeedEntry } | undefined
    for (const feed of this.feeds) {
      let entry: FeedEntry | undefined
      try {
        entry = await feed.resolve(request.purl, this.abort.signal)
      } catch (e) {
        return declined(`${feed.name} feed cannot resolve it: ${(e as Error).message}`)
      }
      if (entry !== undefined && feed.follows(entry.target)) {
        found = { feed, entry }
        break
      }
    }
    if (found === undefined) return declined('no feed of this node follows it')
    const sampler = this.sampler
    if (sampler === undefined || !sampler.passesFilter(found.entry.purl)) return declined('outside [rebuild] packages')
    if (rule.honour === 'sample' && !sampler.includes(found.entry.purl, this.shareOf(found.feed))) return declined('outside this node\'s sample ([rebuild] demand = "sample")')
    const now = Date.now()
    const times = (this.honoured.get(request.requester) ?? []).filter((t) => now - t < 3_600_000)
    if (times.length >= rule.perRequesterPerHour) return declined(`requester over ${rule.perRequesterPerHour} honoured requests per hour`)
    if (this.scheduler.queuedFor('demand') >= rule.maxQueued) return declined(`${rule.maxQueued} requested jobs already waiting`)
    const status = await this.scheduler.enqueue(found.entry.purl, found.entry.target, { reason: 'demand' })
    if (status === 'queued' || status === 'already-queued') {
      times.push(now)
      this.honoured.delete(request.requester)
      this.honoured.set(request.requester, times)
      if (this.honoured.size > 10_000) this.honoured.delete(this.honoured.keys().next().value as string)
    }
    this.logger.info({ purl: found.entry.purl, requester: request.requester, status }, 'rebuild request honoured')
    return { status, detail: `${found.feed.name} feed` }
  }

  /** `[rebuild] share`, else the feed's own default (the archive's is small). */
  private shareOf(feed: RebuildFeed): number {
    return this.init.share ?? feed.defaultShare ?? 1
  }

  /** A feed job still wanted: some feed follows its package and its sample still includes it. */
  private followed(job: RebuildJob): boolean {
    const feed = this.feeds.find((f) => f.follows(job.target))
    return feed !== undefined && (this.sampler?.includes(job.purl, this.shareOf(feed)) ?? true)
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

  /**
   * Every `[rebuild.debian] check_interval_seconds`: feeds that can tell cheaply whether their
   * source changed (Debian: InRelease) are asked; a change re-reads the feeds at once.
   */
  private scheduleCheck(): void {
    if (!this.feeds.some((f) => f.changed !== undefined)) return
    this.checkTimer = setTimeout(() => {
      void this.checkFeeds().finally(() => {
        if (!this.abort.signal.aborted) this.scheduleCheck()
      })
    }, this.init.debian.checkIntervalSeconds * 1000)
    this.checkTimer.unref?.()
  }

  private async checkFeeds(): Promise<void> {
    for (const feed of this.feeds) {
      if (feed.changed === undefined) continue
      try {
        if (!(await feed.changed(this.abort.signal))) continue
        this.logger.info({ feed: feed.name }, 'rebuild feed changed upstream; reading it again')
        await this.pollFeeds()
        return
      } catch (e) {
        if (this.abort.signal.aborted) return
        this.logger.warn({ feed: feed.name, ...errorFields(e) }, 'rebuild feed check failed; trying again next interval')
      }
    }
  }

  private async poll(): Promise<void> {
    const sampler = this.sampler
    if (sampler === undefined) return
    for (const feed of this.feeds) {
      try {
        const entries = await feed.entries(this.abort.signal)
        const share = this.shareOf(feed)
        let queued = 0
        let sampled = 0
        let uploads = 0
        for (const e of entries) {
          if (!sampler.includes(e.purl, share)) continue
          sampled++
          if (e.upload === true) uploads++
          if ((await this.scheduler.enqueue(e.purl, e.target, { reason: e.upload === true ? 'upload' : 'feed' })) === 'queued') queued++
        }
        await feed.commit?.()
        this.progress.feedPolled(feed.name, entries.length, sampled)
        this.logger.info({ feed: feed.name, entries: entries.length, share, sampled, uploads, queued }, 'rebuild feed polled')
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

  private build(job: RebuildJob, dir: string, signal: AbortSignal, onProgress: (e: ProgressEvent) => void): Promise<RebuildResult> {
    return this.builder(job.target, { outDir: dir, signal, onProgress, timeoutMs: this.init.debianTimeoutMs ?? this.init.jobTimeoutSeconds * 1000 })
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

  /**
   * Says once, at start, what this machine can build (and what it cannot), and settles
   * `follow = "auto"`: the whole archive when no other feed is configured (no `sources`, no
   * `recipes_dir`) and the Debian builder can run here; else the list, saying why.
   */
  private async reportBuilders(): Promise<void> {
    const isolation = await detectNetworkIsolation()
    if (isolation.mode === 'none') this.logger.warn({ detail: isolation.detail }, 'recipe builds cannot be cut off from the network')
    const { follow, sources } = this.init.debian
    const autoArchive = follow === 'auto' && sources.length === 0 && this.init.recipesDir === undefined && this.init.feeds === undefined
    if (sources.length === 0 && follow !== 'archive' && !autoArchive) return
    const doctor = await debianDoctor()
    const failed = doctor.checks.filter((c) => !c.ok && c.required).map((c) => `${c.name}: ${c.detail}`)
    if (autoArchive) {
      if (doctor.ready) {
        this.feeds = defaultFeeds(this.init, 'archive', this.debianCacheDir, this.cacheDir, this.logger)
        this.logger.info({ share: this.init.share ?? ARCHIVE_DEFAULT_SHARE }, 'following the whole Debian archive ([rebuild.debian] follow = "auto": no sources or recipes configured, and Debian builds run here)')
      } else {
        this.logger.info({ failed, install: doctor.install }, 'not following the Debian archive: the Debian builder cannot run on this machine (rbq doctor); set [rebuild.debian] follow = "sources" to silence this')
      }
      return
    }
    if (!doctor.ready) this.logger.warn({ failed, install: doctor.install }, 'the Debian builder cannot run on this machine (rbq doctor)')
  }
}

function defaultFeeds(init: RebuildPipelineInit, follow: 'archive' | 'sources', debianCacheDir: string, cacheDir: string, logger: Logger): RebuildFeed[] {
  const feeds: RebuildFeed[] = []
  if (init.recipesDir !== undefined) feeds.push(new RecipeDirFeed(init.recipesDir, { logger }))
  // Always present: explicit requests for Debian purls work even with no followed sources.
  feeds.push(
    new DebianFeed(
      {
        cacheDir: debianCacheDir,
        follow,
        sources: init.debian.sources,
        exclude: init.debian.exclude,
        ...(init.debian.maxSourceBytes > 0 ? { maxSourceBytes: init.debian.maxSourceBytes } : {}),
        statePath: join(cacheDir, 'rebuild', 'debian-feed-state.json'),
        ...(init.debian.mirror === undefined ? {} : { mirror: init.debian.mirror }),
        ...(init.debian.suite === undefined ? {} : { suite: init.debian.suite })
      },
      { logger }
    )
  )
  return feeds
}
