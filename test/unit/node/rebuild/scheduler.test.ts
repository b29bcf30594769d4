/**
 * The scheduler over a real LevelDB store, with a manual clock for backoff and timeouts.
 */
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { RbqError } from '../../../../protocol/index.js'
import { Store } from '../../../../node/db/store.js'
import {
  RebuildScheduler,
  type Clock,
  type FinishedJob,
  type JobContext,
  type JobReport,
  type JobRunner,
  type JobTarget,
  type RebuildJob,
  type SchedulerEvent,
  type SchedulerInit
} from '../../../../node/rebuild/scheduler.js'
import { makeTempDir } from '../../../utils/tmp.js'

class ManualClock implements Clock {
  private t = 1_700_000_000_000
  private timers: { at: number; fn: () => void }[] = []
  now(): number {
    return this.t
  }
  setTimer(ms: number, fn: () => void): () => void {
    const timer = { at: this.t + Math.max(0, ms), fn }
    this.timers.push(timer)
    return () => {
      this.timers = this.timers.filter((x) => x !== timer)
    }
  }
  pending(): number[] {
    return this.timers.map((x) => x.at)
  }
  advance(ms: number): void {
    this.t += ms
    for (;;) {
      const due = this.timers.filter((x) => x.at <= this.t).sort((a, b) => a.at - b.at)[0]
      if (due === undefined) return
      this.timers = this.timers.filter((x) => x !== due)
      due.fn()
    }
  }
}

/** A runner whose attempts the test settles by hand. */
class ScriptedRunner {
  readonly calls: { job: RebuildJob; ctx: JobContext; settle: (r: JobReport | Error) => void }[] = []
  readonly run: JobRunner = (job, ctx) =>
    new Promise<JobReport>((resolve, reject) => {
      this.calls.push({ job, ctx, settle: (r) => (r instanceof Error ? reject(r) : resolve(r)) })
    })
  last(): (typeof this.calls)[number] {
    const c = this.calls[this.calls.length - 1]
    if (c === undefined) throw new Error('no call yet')
    return c
  }
}

const debianTarget = (source: string): JobTarget => ({ backend: 'debian', source, version: '1.0-1' })
const purl = (source: string) => `pkg:deb/debian/${source}@1.0-1?arch=source`
const done = (outcome: 'reproduced' | 'failed' = 'reproduced'): JobReport => ({ status: 'done', outcome })

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

let dir: string
let cleanup: () => Promise<void>
let store: Store
let clock: ManualClock
const schedulers: RebuildScheduler[] = []

beforeEach(async () => {
  ;({ dir, cleanup } = await makeTempDir('rbq-scheduler-'))
  store = await Store.open(join(dir, 'db'))
  clock = new ManualClock()
})

afterEach(async () => {
  for (const s of schedulers.splice(0)) {
    const stopped = s.stop()
    clock.advance(86_400_000) // runners the test left hanging lose their slot after the abort grace
    await stopped
  }
  await store.close()
  await cleanup()
})

function scheduler(runner: JobRunner, init: SchedulerInit = {}, on = store): { s: RebuildScheduler; events: SchedulerEvent[] } {
  const s = new RebuildScheduler({ jobs: on.sublevel('jobs'), runJob: runner }, { clock, backoffBaseMs: 1000, backoffMaxMs: 10_000, ...init })
  const events: SchedulerEvent[] = []
  s.on('job', (e) => events.push(e))
  schedulers.push(s)
  return { s, events }
}

const finishedOf = (events: SchedulerEvent[], p: string) =>
  events.find((e): e is Extract<SchedulerEvent, { type: 'finished' }> => e.type === 'finished' && e.job.purl === p)?.job

describe('RebuildScheduler', () => {
  it('runs a job, records the result, and dedupes by purl', async () => {
    const runner = new ScriptedRunner()
    const { s, events } = scheduler(runner.run)
    await s.start()
    expect(await s.enqueue(purl('a'), debianTarget('a'))).toBe('queued')
    await until(() => runner.calls.length === 1, 'the job to start')
    expect(await s.enqueue(purl('a'), debianTarget('a'))).toBe('running')
    runner.last().settle({ status: 'done', outcome: 'reproduced', frameId: 'f'.repeat(64) })
    await until(() => finishedOf(events, purl('a')) !== undefined, 'the job to finish')
    expect(await s.get(purl('a'))).toMatchObject({ status: 'done', outcome: 'reproduced', frameId: 'f'.repeat(64), attempts: 1 })
    // done: the feed does not queue it again, an explicit request does, and so does a new target
    expect(await s.enqueue(purl('a'), debianTarget('a'))).toBe('already-done')
    expect(await s.enqueue(purl('a'), { backend: 'debian', source: 'a', version: '1.0-2' })).toBe('queued')
    await until(() => runner.calls.length === 2, 'the new target to start')
    runner.last().settle(done())
    await until(async () => ((await s.get(purl('a'))) as FinishedJob).attempts === 1 && runner.calls.length === 2 && s.stats().running === 0, 'idle')
    expect(await s.enqueue(purl('a'), debianTarget('a'), { reason: 'request', force: true })).toBe('queued')
  })

  it('queues survive a restart; a job running at crash time is queued again', async () => {
    const runner = new ScriptedRunner()
    const first = scheduler(runner.run)
    await first.s.start()
    await first.s.enqueue(purl('a'), debianTarget('a'))
    await first.s.enqueue(purl('b'), debianTarget('b'))
    await until(() => runner.calls.length === 1, 'a to start')
    // crash: the process dies with `a` running and `b` queued; nothing is stopped cleanly
    schedulers.splice(schedulers.indexOf(first.s), 1)
    await store.close()
    store = await Store.open(join(dir, 'db'))

    const runner2 = new ScriptedRunner()
    const second = scheduler(runner2.run)
    await second.s.start()
    expect(second.s.queued().map((j) => j.purl).sort()).toEqual([purl('a'), purl('b')])
    await until(() => runner2.calls.length === 1, 'the re-queued job to start')
    const interrupted = runner2.last()
    expect(interrupted.job.purl).toBe(purl('a'))
    expect(interrupted.ctx.attempt).toBe(2) // the crashed attempt counts
    interrupted.settle(done())
    await until(() => runner2.calls.length === 2, 'b to start')
    runner2.last().settle(done())
    await until(() => finishedOf(second.events, purl('b')) !== undefined, 'b to finish')
    expect((await second.s.finished()).map((f) => f.purl).sort()).toEqual([purl('a'), purl('b')])
    expect(second.s.queued()).toEqual([])
  })

  it('a clean stop leaves the running job queued, its attempt not counted', async () => {
    const runner: JobRunner = (_job, ctx) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)))
    let started = 0
    const { s } = scheduler(async (job, ctx) => {
      started++
      return runner(job, ctx)
    })
    await s.start()
    await s.enqueue(purl('a'), debianTarget('a'))
    await until(() => started === 1, 'a to start')
    await s.stop()
    const runner2 = new ScriptedRunner()
    const again = scheduler(runner2.run)
    await again.s.start()
    await until(() => runner2.calls.length === 1, 'a to start again')
    expect(runner2.last().ctx.attempt).toBe(1)
  })

  it('retries transient failures with exponential backoff on the injected clock', async () => {
    const runner = new ScriptedRunner()
    const { s, events } = scheduler(runner.run, { maxAttempts: 5 })
    await s.start()
    await s.enqueue(purl('a'), debianTarget('a'))
    await until(() => runner.calls.length === 1, 'attempt 1')
    expect(runner.last().ctx).toMatchObject({ attempt: 1, lastAttempt: false })
    runner.last().settle(new RbqError('DOWNLOAD_FAILED', 'mirror unreachable'))
    await until(() => events.some((e) => e.type === 'retry'), 'retry 1')
    const queued = (await s.get(purl('a'))) as RebuildJob
    expect(queued).toMatchObject({ state: 'queued', attempts: 1, notBefore: clock.now() + 1000, lastError: { code: 'DOWNLOAD_FAILED' } })

    clock.advance(999)
    expect(s.stats()).toEqual({ queued: 1, running: 0 }) // not before the backoff (pump is synchronous)
    clock.advance(1)
    expect(s.stats()).toEqual({ queued: 0, running: 1 })
    await until(() => runner.calls.length === 2, 'attempt 2')
    // a runner may also report a transient failure instead of throwing
    runner.last().settle({ status: 'transient', code: 'FEED_ERROR', message: 'index not signed yet' })
    await until(() => events.filter((e) => e.type === 'retry').length === 2, 'retry 2')
    expect(((await s.get(purl('a'))) as RebuildJob).notBefore).toBe(clock.now() + 2000) // doubled
    clock.advance(2000)
    await until(() => runner.calls.length === 3, 'attempt 3')
    runner.last().settle(done())
    await until(() => finishedOf(events, purl('a')) !== undefined, 'success')
    expect(finishedOf(events, purl('a'))).toMatchObject({ status: 'done', attempts: 3 })
    expect(s.backoffMs(1)).toBe(1000)
    expect(s.backoffMs(4)).toBe(8000)
    expect(s.backoffMs(10)).toBe(10_000) // capped
  })

  it('does not retry deterministic failures', async () => {
    const runner = new ScriptedRunner()
    const { s, events } = scheduler(runner.run)
    await s.start()
    await s.enqueue(purl('a'), debianTarget('a'))
    await s.enqueue(purl('b'), debianTarget('b'))
    await until(() => runner.calls.length === 1, 'a')
    runner.last().settle(done('failed')) // the build failed: attested, final
    await until(() => runner.calls.length === 2, 'b')
    runner.last().settle(new RbqError('CHECKSUM_MISMATCH', 'source does not match'))
    await until(() => finishedOf(events, purl('b')) !== undefined, 'b finished')
    expect(finishedOf(events, purl('a'))).toMatchObject({ status: 'done', outcome: 'failed', attempts: 1 })
    expect(finishedOf(events, purl('b'))).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'CHECKSUM_MISMATCH' } })
    expect(events.some((e) => e.type === 'retry')).toBe(false)
    clock.advance(3_600_000)
    expect(s.stats()).toEqual({ queued: 0, running: 0 })
    expect(runner.calls.length).toBe(2)
  })

  it('gives up after maxAttempts, telling the runner which attempt is the last', async () => {
    const runner = new ScriptedRunner()
    const { s, events } = scheduler(runner.run, { maxAttempts: 2 })
    await s.start()
    await s.enqueue(purl('a'), debianTarget('a'))
    await until(() => runner.calls.length === 1, 'attempt 1')
    runner.last().settle(new RbqError('DOWNLOAD_FAILED', 'x'))
    await until(() => events.some((e) => e.type === 'retry'), 'retry')
    clock.advance(1000)
    await until(() => runner.calls.length === 2, 'attempt 2')
    expect(runner.last().ctx).toMatchObject({ attempt: 2, lastAttempt: true })
    runner.last().settle(new RbqError('DOWNLOAD_FAILED', 'still down'))
    await until(() => finishedOf(events, purl('a')) !== undefined, 'give up')
    expect(finishedOf(events, purl('a'))).toMatchObject({ status: 'failed', attempts: 2, error: { code: 'DOWNLOAD_FAILED', message: 'still down' } })
  })

  it('aborts an attempt at the job timeout; a runner ignoring the abort loses its slot after the grace', async () => {
    let signal: AbortSignal | undefined
    let calls = 0
    const { s, events } = scheduler(
      (job, ctx) => {
        calls++
        signal = ctx.signal
        // `a` honours the abort, `b` never settles
        return new Promise((_resolve, reject) => {
          if (job.purl === purl('a')) ctx.signal.addEventListener('abort', () => reject(new Error('killed')))
        })
      },
      { jobTimeoutMs: 5000, abortGraceMs: 1000 }
    )
    await s.start()
    await s.enqueue(purl('a'), debianTarget('a'))
    await until(() => calls === 1, 'a')
    clock.advance(5000)
    await until(() => finishedOf(events, purl('a')) !== undefined, 'a timed out')
    expect(signal?.aborted).toBe(true)
    expect(finishedOf(events, purl('a'))).toMatchObject({ status: 'failed', error: { code: 'BUILD_TIMEOUT' } })

    await s.enqueue(purl('b'), debianTarget('b'))
    await until(() => calls === 2, 'b')
    clock.advance(5000)
    expect(signal?.aborted).toBe(true)
    expect(clock.pending()).toContain(clock.now() + 1000) // the grace, not yet over
    expect(finishedOf(events, purl('b'))).toBeUndefined()
    clock.advance(1000)
    await until(() => finishedOf(events, purl('b')) !== undefined, 'b given up')
    expect(finishedOf(events, purl('b'))).toMatchObject({ status: 'failed', error: { code: 'BUILD_TIMEOUT' } })
  })

  it('respects the concurrency limit and runs requests before feed jobs', async () => {
    const runner = new ScriptedRunner()
    const { s } = scheduler(runner.run, { concurrency: 2 })
    for (const x of ['a', 'b', 'c']) await s.enqueue(purl(x), debianTarget(x))
    await s.enqueue(purl('r'), debianTarget('r'), { reason: 'request', force: true })
    await s.start()
    expect(s.stats()).toEqual({ queued: 2, running: 2 })
    await until(() => runner.calls.length === 2, 'two jobs')
    expect(runner.calls[0]?.job.purl).toBe(purl('r'))
    runner.calls[0]?.settle(done())
    await until(() => runner.calls.length === 3, 'a third job after one finished')
    for (const c of runner.calls.slice(1)) c.settle(done())
    await until(() => runner.calls.length === 4, 'the last job')
    runner.last().settle(done())
    await until(() => s.stats().queued + s.stats().running === 0, 'an empty queue')
    expect(runner.calls.map((c) => c.job.purl)).toEqual([purl('r'), purl('a'), purl('b'), purl('c')])
  })

  it('runs requests, then new uploads, then demand, then the rest; a queued feed job asked for by demand moves up', async () => {
    const runner = new ScriptedRunner()
    const { s } = scheduler(runner.run)
    await s.enqueue(purl('f1'), debianTarget('f1'))
    await s.enqueue(purl('f2'), debianTarget('f2'))
    await s.enqueue(purl('d'), debianTarget('d'), { reason: 'demand' })
    await s.enqueue(purl('u'), debianTarget('u'), { reason: 'upload' })
    await s.enqueue(purl('r'), debianTarget('r'), { reason: 'request', force: true })
    expect(await s.enqueue(purl('f2'), debianTarget('f2'), { reason: 'demand' })).toBe('already-queued')
    expect(s.queuedFor('demand')).toBe(2)
    await s.start()
    for (let i = 1; i <= 5; i++) {
      await until(() => runner.calls.length === i, `job ${i}`)
      runner.last().settle(done())
    }
    // f2 and d are both demand now: the older first.
    expect(runner.calls.map((c) => c.job.purl)).toEqual([purl('r'), purl('u'), purl('f2'), purl('d'), purl('f1')])
  })

  it('a forced request makes a job waiting on its backoff due now', async () => {
    const runner = new ScriptedRunner()
    const { s, events } = scheduler(runner.run)
    await s.start()
    await s.enqueue(purl('a'), debianTarget('a'))
    await until(() => runner.calls.length === 1, 'attempt 1')
    runner.last().settle(new RbqError('DOWNLOAD_FAILED', 'x'))
    await until(() => events.some((e) => e.type === 'retry'), 'retry')
    expect(await s.enqueue(purl('a'), debianTarget('a'), { reason: 'request', force: true })).toBe('already-queued')
    await until(() => runner.calls.length === 2, 'attempt 2 without waiting')
    runner.last().settle(done())
  })

  it('concurrent enqueues of one purl add one job', async () => {
    const runner = new ScriptedRunner()
    const { s } = scheduler(runner.run)
    const statuses = await Promise.all([s.enqueue(purl('a'), debianTarget('a')), s.enqueue(purl('a'), debianTarget('a'), { reason: 'request', force: true })])
    expect(statuses.sort()).toEqual(['already-queued', 'queued'])
    expect(s.queued().length).toBe(1)
  })

  it('refuses new jobs beyond maxQueued', async () => {
    const { s } = scheduler(new ScriptedRunner().run, { maxQueued: 1 })
    await s.enqueue(purl('a'), debianTarget('a'))
    await expect(s.enqueue(purl('b'), debianTarget('b'))).rejects.toMatchObject({ code: 'QUEUE_FULL' })
  })
})
