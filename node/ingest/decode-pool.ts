/**
 * A worker_threads pool that decodes frames (protocol decodeFrame: parse, Ed25519 signature,
 * statement) in batches, off the main thread, one worker per core by default.
 *
 * Why whole decodes and not only signatures: parsing and opening a frame cost about as much
 * CPU as its signature (the public-key point check alone is ~80 µs), so a pool that only
 * verified signatures would leave the main thread doing most of the work and the throughput
 * capped at one core; decoding in the workers scales with the cores and keeps the main thread
 * (libp2p, API) responsive. A batch travels to a worker as one transferred buffer; each verified
 * frame comes back as a structured clone without its bytes (the pool keeps the originals).
 *
 * Worker script: the compiled `decode-worker.js`. In production it sits next to this module
 * (dist/node/ingest/); when this module runs from TypeScript sources (vitest), the pool loads
 * `<package root>/dist/node/ingest/decode-worker.js`, which `npm test` builds first. With no
 * script found, or `workers: 0`, or after a worker crash, frames are decoded inline with the
 * same function (decode-job.ts), so verdicts never depend on where a frame was decoded.
 */
import { existsSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { errorFields, silentLogger, type Logger } from '../../common/logger.js'
import { decodeOne, fromWire, packFrames, type DecodeOutcome, type DecodeRequest, type WorkerMessage } from './decode-job.js'

export interface DecodePoolInit {
  /** Worker threads (default os.availableParallelism()); 0 decodes on the calling thread. */
  workers?: number
  /** Worker script (default: see module comment). */
  workerUrl?: URL
}

export interface DecodePoolComponents {
  logger?: Logger
}

/** Batches sent ahead to one worker, so it never waits for the main thread between batches. */
const IN_FLIGHT_PER_WORKER = 2
/** Replacements for crashed workers over the pool's lifetime before it decodes inline. */
const MAX_RESPAWNS = 16

interface Task {
  frames: Uint8Array[]
  resolve: (outcomes: DecodeOutcome[]) => void
}

interface PoolWorker {
  worker: Worker
  inFlight: Map<number, Task>
  lastError?: unknown
  /** Terminated on purpose (parked): its exit is not a crash. */
  leaving?: boolean
}

/** Where the compiled worker script is: next to this module, else in the package's dist/. */
export function findWorkerScript(): URL | undefined {
  const candidates = [new URL('./decode-worker.js', import.meta.url), new URL('../../dist/node/ingest/decode-worker.js', import.meta.url)]
  return candidates.find((url) => existsSync(url))
}

export class DecodePool {
  private readonly logger: Logger
  private readonly wanted: number
  private workerUrl: URL | undefined
  private readonly workers: PoolWorker[] = []
  private readonly queue: Task[] = []
  private nextId = 1
  private respawns = 0
  private stopping = false
  /** Workers let go while idle (park); the next batch starts them again. */
  private parked = false
  /** Workers being started again after a park. */
  private starting = 0

  constructor(components: DecodePoolComponents = {}, init: DecodePoolInit = {}) {
    this.logger = components.logger ?? silentLogger()
    this.wanted = init.workers ?? availableParallelism()
    this.workerUrl = init.workerUrl
  }

  /** Running worker threads (0: decoding inline, or parked while idle). */
  get size(): number {
    return this.workers.length
  }

  async start(): Promise<void> {
    this.stopping = false
    if (this.wanted <= 0) return
    this.workerUrl ??= findWorkerScript()
    if (this.workerUrl === undefined) {
      this.logger.warn('decode worker script not found (build with `npm run build`); decoding frames on the main thread')
      return
    }
    const started = await Promise.allSettled(Array.from({ length: this.wanted }, () => this.spawn()))
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected')
    if (failed !== undefined) {
      this.logger.warn({ ...errorFields(failed.reason), started: this.workers.length, wanted: this.wanted }, 'decode workers failed to start')
    }
  }

  async stop(): Promise<void> {
    this.stopping = true
    this.parked = false
    await Promise.all(this.workers.map((w) => w.worker.terminate()))
    this.workers.length = 0 // later batches decode inline
  }

  /**
   * Lets the worker threads go while nothing is being decoded (each is a V8 isolate with its
   * own heap, kept at its busiest size otherwise); the next batch starts them again.
   */
  async park(): Promise<void> {
    if (this.stopping || this.parked || this.starting > 0 || this.workers.length === 0 || this.queue.length > 0) return
    if (this.workers.some((w) => w.inFlight.size > 0)) return
    const leaving = this.workers.splice(0)
    this.parked = true
    for (const w of leaving) w.leaving = true
    await Promise.all(leaving.map((w) => w.worker.terminate()))
  }

  /** Starts the parked workers again; batches wait in the queue until one is ready. */
  private unpark(): void {
    this.parked = false
    this.starting = this.wanted
    for (let i = 0; i < this.wanted; i++) {
      this.spawn()
        .catch((e: unknown) => this.logger.error(errorFields(e), 'decode worker failed to start again'))
        .finally(() => {
          this.starting--
          this.dispatch() // none started: what waits is decoded inline
        })
    }
  }

  /** Decodes a batch; outcomes in input order. Never rejects. */
  decode(frames: Uint8Array[]): Promise<DecodeOutcome[]> {
    if (frames.length === 0) return Promise.resolve([])
    if (this.parked) this.unpark()
    if (this.workers.length === 0 && this.starting === 0) return Promise.resolve(frames.map(decodeOne))
    return new Promise((resolve) => {
      this.queue.push({ frames, resolve })
      this.dispatch()
    })
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let target: PoolWorker | undefined
      for (const w of this.workers) {
        if (w.inFlight.size < IN_FLIGHT_PER_WORKER && (target === undefined || w.inFlight.size < target.inFlight.size)) target = w
      }
      if (target === undefined) {
        // No worker left (all crashed, none replaced): decode what waits inline.
        if (this.workers.length === 0 && this.starting === 0) for (const task of this.queue.splice(0)) task.resolve(task.frames.map(decodeOne))
        return
      }
      const task = this.queue.shift() as Task
      const id = this.nextId++
      target.inFlight.set(id, task)
      // One copy into a buffer that is then moved, not cloned: no per-frame serialisation.
      const { buffer, ends } = packFrames(task.frames)
      target.worker.postMessage({ id, buffer, ends } satisfies DecodeRequest, [buffer])
    }
  }

  /** Starts one worker and resolves once its modules loaded (its 'ready' message). */
  private spawn(): Promise<void> {
    const url = this.workerUrl as URL
    return new Promise((resolve, reject) => {
      const w: PoolWorker = { worker: new Worker(url), inFlight: new Map() }
      let ready = false
      w.worker.on('message', (message: WorkerMessage) => {
        if (message.type === 'ready') {
          ready = true
          if (this.stopping) {
            // Ready after the pool stopped (started again after a park): not kept.
            w.leaving = true
            void w.worker.terminate()
            resolve()
            return
          }
          this.workers.push(w)
          this.dispatch()
          resolve()
          return
        }
        const task = w.inFlight.get(message.id)
        if (task === undefined) return
        w.inFlight.delete(message.id)
        task.resolve(message.outcomes.map((outcome, i) => fromWire(outcome, task.frames[i] as Uint8Array)))
        this.dispatch()
      })
      w.worker.on('error', (e) => {
        w.lastError = e
      })
      w.worker.on('exit', (code) => {
        if (!ready) {
          reject(w.lastError ?? new Error(`decode worker exited with code ${code} before it was ready`))
          return
        }
        this.onExit(w, code)
      })
    })
  }

  /** A worker ended: finish its batches inline, replace it unless stopping. */
  private onExit(w: PoolWorker, code: number): void {
    if (w.leaving === true) return
    const index = this.workers.indexOf(w)
    if (index !== -1) this.workers.splice(index, 1)
    for (const task of w.inFlight.values()) task.resolve(task.frames.map(decodeOne))
    w.inFlight.clear()
    if (this.stopping) return
    this.logger.error({ ...errorFields(w.lastError ?? `exit code ${code}`), workers: this.workers.length }, 'decode worker died')
    if (this.respawns < MAX_RESPAWNS) {
      this.respawns++
      this.spawn().catch((e: unknown) => this.logger.error(errorFields(e), 'decode worker replacement failed to start'))
    }
    this.dispatch()
  }
}
