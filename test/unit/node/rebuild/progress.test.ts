/** RebuildProgress over a real scheduler and a real store: done counts, ETA, duration metrics. */
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Store } from '../../../../node/db/store.js'
import { Metrics } from '../../../../node/metrics.js'
import { RebuildProgress } from '../../../../node/rebuild/progress.js'
import { RebuildScheduler, type JobReport, type SchedulerEvent } from '../../../../node/rebuild/scheduler.js'
import { makeTempDir } from '../../../utils/tmp.js'

let dir: string
let cleanup: () => Promise<void>
let store: Store
let scheduler: RebuildScheduler | undefined

beforeEach(async () => {
  ;({ dir, cleanup } = await makeTempDir('rbq-progress-'))
  store = await Store.open(join(dir, 'db'))
})

afterEach(async () => {
  await scheduler?.stop()
  await store.close()
  await cleanup()
})

const target = (n: number) => ({ backend: 'recipe' as const, recipe: `/r/${n}.toml`, sha256: String(n).padStart(64, '0') })
const next = (s: RebuildScheduler, type: SchedulerEvent['type']) => new Promise<SchedulerEvent>((resolve) => {
  const on = (e: SchedulerEvent) => {
    if (e.type !== type) return
    s.off('job', on)
    resolve(e)
  }
  s.on('job', on)
})

describe('RebuildProgress', () => {
  it('counts finished purls by outcome, measures attempts, and estimates the queue at the recent pace', async () => {
    let now = 0
    const metrics = new Metrics()
    const progress = new RebuildProgress({ metrics }, { now: () => now })
    const reports: ((r: JobReport) => void)[] = []
    scheduler = new RebuildScheduler({ jobs: store.sublevel('jobs'), runJob: () => new Promise<JobReport>((r) => reports.push(r)) }, { concurrency: 1 })
    await progress.attach(scheduler)
    await scheduler.start()
    expect(progress.snapshot({ queued: 0, running: 0, concurrency: 1 })).toMatchObject({ etaSeconds: 0, recentSeconds: null })

    const started = next(scheduler, 'started')
    for (const n of [1, 2, 3]) await scheduler.enqueue(`pkg:generic/p${n}@1`, target(n))
    await started
    expect(progress.snapshot({ ...scheduler.stats(), concurrency: 1 }).etaSeconds).toBeNull() // nothing ended yet

    now = 100_000
    const finished = next(scheduler, 'finished')
    const second = next(scheduler, 'started')
    reports.shift()!({ status: 'done', outcome: 'reproduced' })
    await finished
    await second
    const snap = progress.snapshot({ ...scheduler.stats(), concurrency: 1 })
    expect(scheduler.stats()).toEqual({ queued: 1, running: 1 })
    expect(snap).toMatchObject({ etaSeconds: 200, recentSeconds: 100, done: { reproduced: 1, mismatch: 0, failed: 0, built: 0, error: 0 } })
    expect(progress.snapshot({ queued: 1, running: 1, concurrency: 2 }).etaSeconds).toBe(100)

    now = 130_000
    const retried = next(scheduler, 'retry')
    reports.shift()!({ status: 'transient', code: 'DOWNLOAD_FAILED', message: 'mirror away' })
    await retried
    expect(progress.snapshot({ queued: 2, running: 0, concurrency: 1 })).toMatchObject({ recentSeconds: 65, etaSeconds: 130 })

    const text = await metrics.text()
    expect(text).toMatch(/rbq_rebuild_duration_seconds_bucket\{le="120",backend="recipe",outcome="reproduced"\} 1/)
    expect(text).toMatch(/rbq_rebuild_duration_seconds_bucket\{le="60",backend="recipe",outcome="reproduced"\} 0/)
    expect(text).toMatch(/rbq_rebuild_outcomes_total\{backend="recipe",outcome="retry"\} 1/)

    // A restarted node counts the finished records it finds.
    await scheduler.stop()
    const again = new RebuildProgress({})
    scheduler = new RebuildScheduler({ jobs: store.sublevel('jobs'), runJob: () => new Promise<JobReport>(() => {}) }, { concurrency: 1 })
    await again.attach(scheduler)
    expect(again.snapshot({ queued: 0, running: 0, concurrency: 1 }).done).toEqual({ reproduced: 1, mismatch: 0, failed: 0, built: 0, error: 0 })
  })

  it('keeps each feed\'s last poll: its size and the sampled share', () => {
    const progress = new RebuildProgress({}, { now: () => Date.parse('2026-06-01T00:00:00Z') })
    progress.feedPolled('debian', 35_000, 350)
    progress.feedPolled('debian', 35_010, 351)
    expect(progress.snapshot({ queued: 0, running: 0, concurrency: 1 }).feeds).toEqual([{ feed: 'debian', entries: 35_010, sampled: 351, polledAt: '2026-06-01T00:00:00.000Z' }])
  })
})
