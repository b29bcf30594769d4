/**
 * Progress a volunteer can read (`rbq status`, /v1/status `scheduler`, /metrics): how large the
 * feed and the sample are, how many sampled packages are done / failed, an ETA for the queue,
 * and the rebuild-duration histogram and per-outcome counters.
 *
 * - Done / failed come from the scheduler's `done` records (the last result per purl), read
 *   once on start, then kept up to date from its `finished` events: a purl rebuilt again (an
 *   explicit request) counts once, with its newest result.
 * - Durations are measured per attempt, from the scheduler's `started` event to the attempt's
 *   end (`finished` or `retry`). The ETA is the mean of the last `recent` attempt durations
 *   (this process's) × the jobs queued and running / concurrency; unknown (null) until the
 *   first attempt of this process ends.
 * - Metrics: `rbq_rebuild_duration_seconds{backend,outcome}` (histogram) and
 *   `rbq_rebuild_outcomes_total{backend,outcome}`; outcome = the attested outcome (reproduced,
 *   mismatch, failed, built), `error` (given up without an attestation) or `retry` (a transient
 *   failure, retried later). Labels come from closed sets.
 */
import type { Counter, Histogram } from 'prom-client'
import type { Metrics } from '../metrics.js'
import type { FinishedJob, RebuildScheduler, SchedulerEvent } from './scheduler.js'
import type { RebuildOutcome } from './rebuild-types.js'

export const PROGRESS_OUTCOMES = ['reproduced', 'mismatch', 'failed', 'built', 'error', 'retry'] as const
export type ProgressOutcome = (typeof PROGRESS_OUTCOMES)[number]

/** Seconds: a recipe takes seconds, a Debian package minutes to hours. */
const DURATION_BUCKETS = [5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400]

export interface FeedSize {
  feed: string
  /** Entries the feed listed at its last poll (e.g. source packages of the suite). */
  entries: number
  /** Of those, the sampler's share: what this node rebuilds. */
  sampled: number
  polledAt: string
}

export interface ProgressSnapshot {
  feeds: FeedSize[]
  /** Sampled or requested purls with a final result, by attested outcome; `error`: given up unattested. */
  done: Record<RebuildOutcome | 'error', number>
  /** Seconds until the queue is empty at the recent pace; null until an attempt has ended. */
  etaSeconds: number | null
  /** Mean of the recent attempt durations (seconds); null when none ended yet. */
  recentSeconds: number | null
}

export class RebuildProgress {
  private readonly recentLimit: number
  private readonly recent: number[] = []
  private readonly startedAt = new Map<string, number>()
  /** purl → its final result: done records are per purl, so a purl rebuilt again counts once. */
  private readonly results = new Map<string, RebuildOutcome | 'error'>()
  private readonly feeds = new Map<string, FeedSize>()
  private readonly duration: Histogram<'backend' | 'outcome'> | undefined
  private readonly outcomes: Counter<'backend' | 'outcome'> | undefined
  private readonly now: () => number

  constructor(components: { metrics?: Metrics }, init: { recent?: number; now?: () => number } = {}) {
    this.recentLimit = init.recent ?? 20
    this.now = init.now ?? Date.now
    this.duration = components.metrics?.histogram({
      name: 'rbq_rebuild_duration_seconds',
      help: 'Duration of rebuild attempts (seconds), by backend and outcome (attested outcome, error: given up unattested, retry: transient)',
      labelNames: ['backend', 'outcome'],
      buckets: DURATION_BUCKETS
    })
    this.outcomes = components.metrics?.counter({
      name: 'rbq_rebuild_outcomes_total',
      help: 'Rebuild attempts ended, by backend and outcome (attested outcome, error: given up unattested, retry: transient)',
      labelNames: ['backend', 'outcome']
    })
  }

  /** Reads the finished records once and follows the scheduler's events from now on. */
  async attach(scheduler: RebuildScheduler): Promise<void> {
    scheduler.on('job', (e) => this.onJob(e))
    for (const f of await scheduler.finished()) this.results.set(f.purl, resultOf(f))
  }

  /** A feed was read: its size and the sampled part. */
  feedPolled(feed: string, entries: number, sampled: number): void {
    this.feeds.set(feed, { feed, entries, sampled, polledAt: new Date(this.now()).toISOString() })
  }

  snapshot(pending: { queued: number; running: number; concurrency: number }): ProgressSnapshot {
    const done: ProgressSnapshot['done'] = { reproduced: 0, mismatch: 0, failed: 0, built: 0, error: 0 }
    for (const r of this.results.values()) done[r]++
    const recentSeconds = this.recent.length === 0 ? null : this.recent.reduce((a, b) => a + b, 0) / this.recent.length
    const left = pending.queued + pending.running
    const etaSeconds = left === 0 ? 0 : recentSeconds === null ? null : Math.ceil((recentSeconds * left) / Math.max(1, pending.concurrency))
    return { feeds: [...this.feeds.values()], done, etaSeconds, recentSeconds: recentSeconds === null ? null : Math.round(recentSeconds) }
  }

  private onJob(e: SchedulerEvent): void {
    if (e.type === 'started') {
      this.startedAt.set(e.job.purl, this.now())
      return
    }
    const outcome: ProgressOutcome = e.type === 'retry' ? 'retry' : resultOf(e.job)
    if (e.type === 'finished') this.results.set(e.job.purl, resultOf(e.job))
    const started = this.startedAt.get(e.job.purl)
    this.startedAt.delete(e.job.purl)
    const backend = e.job.target.backend
    this.outcomes?.inc({ backend, outcome })
    if (started === undefined) return
    const seconds = Math.max(0, (this.now() - started) / 1000)
    this.duration?.observe({ backend, outcome }, seconds)
    this.recent.push(seconds)
    if (this.recent.length > this.recentLimit) this.recent.shift()
  }
}

function resultOf(f: FinishedJob): RebuildOutcome | 'error' {
  return f.status === 'done' && f.outcome !== undefined ? f.outcome : 'error'
}
