/**
 * Gives memory back once the node goes idle after heavy work (floods of frames, big batch
 * verdicts). V8 shrinks its heap only at a major GC, and an idle node runs none: after a flood
 * the heap stayed at its flood size (130–290 MiB total) until V8's memory reducer ran tens of
 * seconds later, and the decode workers' isolates stayed at theirs. So every 3 s this looks at the event loop: when the last
 * interval was idle (utilisation below 5 %) and the resident set grew by 32 MiB since the last
 * reclaim (or start), it runs one compacting full GC, then the `onIdle` hooks (the decode pool
 * parks its worker threads, started again by the next frames); once more on the next idle
 * interval (what the work's connections still held is garbage by then). The resident set after
 * is the next reference, so an idle node reclaims once per burst of work, never in a loop. The
 * GC takes 0.1–0.4 s on the main thread, run only when nothing was asked for 3 s.
 *
 * Last, on glibc, it calls malloc_trim(0): glibc keeps memory freed in the middle of its arenas
 * (the main thread's, and one per thread: libuv pool, LevelDB, decode workers) resident and
 * returns it only on that call, which nothing in Node makes. Measured (long form of
 * test/hostile/memory-floods.test.ts): after the GC and the parked workers, 280–313 MiB, of
 * which malloc_trim gave back 67–108 MiB (arenas 81–97 → 20–31 MiB, brk heap 31–73 → 26–31
 * MiB); fixed glibc thresholds (GLIBC_TUNABLES mmap/trim_threshold) did not, as the free memory
 * is not at the top of the arenas. The call goes through koffi (an FFI with prebuilt binaries,
 * no compiler needed); where it cannot load, or the C library is not glibc, the step is skipped.
 * Figures: test/hostile/README.md.
 *
 * The GC function is V8's own (`--expose-gc` set at run time, then read from a fresh context),
 * so nothing has to be passed on the command line.
 */
import { performance } from 'node:perf_hooks'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { errorFields, type Logger } from '../common/logger.js'

type MallocTrim = (pad: number) => number
/** glibc's malloc_trim, loaded once; null where there is none (not glibc, or koffi not loadable). */
let mallocTrim: MallocTrim | null | undefined
async function loadMallocTrim(logger: Logger): Promise<MallocTrim | null> {
  if (mallocTrim !== undefined) return mallocTrim
  mallocTrim = null
  const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header
  if (process.platform !== 'linux' || header?.glibcVersionRuntime === undefined) return null
  try {
    const { default: koffi } = await import('koffi')
    mallocTrim = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)') as MallocTrim
  } catch (e) {
    logger.warn(errorFields(e), 'idle: malloc_trim not available; freed native memory stays with glibc')
  }
  return mallocTrim
}

export interface MemoryReclaimerInit {
  logger: Logger
  /** Run after the GC (e.g. park idle worker threads). */
  onIdle?: (() => Promise<void> | void)[]
  /** How often the event loop is looked at (default 3 s). */
  intervalMs?: number
  /** Event-loop utilisation below which an interval counts as idle (default 0.05). */
  idleUtilization?: number
  /** Resident growth since the last reclaim that makes one worth it (default 32 MiB). */
  growthBytes?: number
}

const DEFAULTS = { intervalMs: 3000, idleUtilization: 0.05, growthBytes: 32 * 2 ** 20 }

let gcFunction: (() => void) | undefined
/**
 * V8's full GC, exposed without a command-line flag, compacting every page: a flood leaves pages
 * with a few live objects each, which a plain full GC keeps (measured: 519 of 601 MiB kept
 * after a plain GC, 48 MiB after a compacting one). The flag is V8's, read at each full GC, and
 * set only for this one.
 */
function compactingGc(): void {
  if (gcFunction === undefined) {
    setFlagsFromString('--expose-gc')
    gcFunction = runInNewContext('gc') as () => void
  }
  setFlagsFromString('--compact-on-every-full-gc')
  try {
    gcFunction()
  } finally {
    setFlagsFromString('--no-compact-on-every-full-gc')
  }
}

export class MemoryReclaimer {
  private timer: NodeJS.Timeout | undefined
  private reference = 0
  private lastElu = performance.eventLoopUtilization()
  private running = false
  /** A reclaim ran; one more follows on the next idle interval. */
  private settling = false

  private readonly options: typeof DEFAULTS
  /** Reclaims run so far. */
  reclaims = 0

  constructor(private readonly init: MemoryReclaimerInit) {
    this.options = {
      intervalMs: init.intervalMs ?? DEFAULTS.intervalMs,
      idleUtilization: init.idleUtilization ?? DEFAULTS.idleUtilization,
      growthBytes: init.growthBytes ?? DEFAULTS.growthBytes
    }
  }

  start(): void {
    this.reference = process.memoryUsage.rss()
    this.lastElu = performance.eventLoopUtilization()
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  private async tick(): Promise<void> {
    const now = performance.eventLoopUtilization()
    const { utilization } = performance.eventLoopUtilization(now, this.lastElu)
    this.lastElu = now
    const rss = process.memoryUsage.rss()
    if (this.running || utilization >= this.options.idleUtilization) {
      if (rss < this.reference) this.reference = rss
      return
    }
    if (rss - this.reference >= this.options.growthBytes) {
      this.settling = true
      await this.reclaim(rss)
    } else if (this.settling) {
      // Once more on the next idle interval: what the work's connections and streams still held
      // at the first reclaim is garbage by then.
      this.settling = false
      await this.reclaim(rss)
    } else if (rss < this.reference) {
      this.reference = rss
    }
  }

  private async reclaim(rss: number): Promise<void> {
    this.running = true
    try {
      const started = performance.now()
      compactingGc()
      const gcMs = performance.now() - started
      for (const hook of this.init.onIdle ?? []) await hook()
      // After the hooks: parked workers' threads have freed their native memory by then.
      const trim = await loadMallocTrim(this.init.logger)
      const trimStarted = performance.now()
      trim?.(0)
      const trimMs = performance.now() - trimStarted
      this.reference = process.memoryUsage.rss()
      this.reclaims++
      const heap = process.memoryUsage()
      this.init.logger.info({ rssBefore: rss, rssAfter: this.reference, heapUsed: heap.heapUsed, heapTotal: heap.heapTotal, gcMs: Math.round(gcMs), ...(trim === null ? {} : { trimMs: Math.round(trimMs) }) }, 'idle: memory reclaimed')
    } finally {
      this.running = false
    }
  }
}
