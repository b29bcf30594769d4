/**
 * The API's defences against hostile clients (issue 14): which Host and Origin it answers, how
 * many connections it holds and which one it lets go at the cap, how slowly a body may arrive,
 * and how many batch verdicts run at once. The values come from `[api]` (node/node-config.ts);
 * node/api/README.md documents them.
 */
import { readFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import { Transform, type TransformCallback } from 'node:stream'
import { RbqError } from '../../protocol/index.js'
import type { TableReader } from '../config-reader.js'

export interface ApiLimits {
  /** Host names answered besides the loopback names (`name` any port, `name:port` that port). */
  allowedHosts: readonly string[]
  /** Connections held at once; at the cap the oldest idle one is closed (kept below the fd limit). */
  maxConnections: number
  /** Seconds to receive a request's headers. */
  headersTimeoutSeconds: number
  /** Seconds to receive a whole request (headers and body). */
  requestTimeoutSeconds: number
  /** Seconds an idle keep-alive connection is kept. */
  keepAliveTimeoutSeconds: number
  /** A body arriving slower than this (after its first second) is cut with 408. */
  minBodyBytesPerSecond: number
  /** Batch verdict requests evaluated at once. */
  maxBatches: number
  /** Batch verdict requests waiting; beyond, 503 QUEUE_FULL with Retry-After. */
  maxQueuedBatches: number
}

export const DEFAULT_API_LIMITS: ApiLimits = {
  allowedHosts: [],
  maxConnections: 1024,
  headersTimeoutSeconds: 10,
  requestTimeoutSeconds: 60,
  keepAliveTimeoutSeconds: 5,
  minBodyBytesPerSecond: 4096,
  maxBatches: 2,
  maxQueuedBatches: 8
}

/** `[api]` keys of the limits (the rest of [api] is read by node/node-config.ts). */
export function readApiLimits(api: TableReader): ApiLimits {
  const d = DEFAULT_API_LIMITS
  const limits: ApiLimits = {
    allowedHosts: api.strings('allowed_hosts', [...d.allowedHosts], (s, field) => {
      if (splitHost(s) === undefined) throw new RbqError('CONFIG_INVALID', `config ${field}: expected a host name or address, optionally with :port (e.g. "rbq.example.org" or "[fd00::1]:4778"), got "${s}"`, { field })
    }),
    maxConnections: api.int('max_connections', d.maxConnections, 16, 1_000_000),
    headersTimeoutSeconds: api.int('headers_timeout_seconds', d.headersTimeoutSeconds, 1, 3600),
    requestTimeoutSeconds: api.int('request_timeout_seconds', d.requestTimeoutSeconds, 1, 3600),
    keepAliveTimeoutSeconds: api.int('keep_alive_timeout_seconds', d.keepAliveTimeoutSeconds, 1, 3600),
    minBodyBytesPerSecond: api.int('min_body_bytes_per_second', d.minBodyBytesPerSecond, 0, 1 << 30),
    maxBatches: api.int('max_batches', d.maxBatches, 1, 64),
    maxQueuedBatches: api.int('max_queued_batches', d.maxQueuedBatches, 0, 1024)
  }
  if (limits.headersTimeoutSeconds > limits.requestTimeoutSeconds) {
    throw new RbqError('CONFIG_INVALID', 'config api.headers_timeout_seconds: must not exceed api.request_timeout_seconds', { field: 'api.headers_timeout_seconds' })
  }
  return limits
}

/** The `[api]` limits as the default config file shows them. */
export const DEFAULT_API_LIMITS_TOML = `# Host names answered besides 127.0.0.1, localhost and [::1] on the API port ("name" or
# "name:port"): requests naming any other host are refused (421), as are browser requests from
# pages of other origins (403), so a web page cannot reach the API through DNS rebinding.
# allowed_hosts = []
# Connections held at once (kept below half the open-files limit); at the cap the oldest idle one
# is closed for a new one.
max_connections = ${DEFAULT_API_LIMITS.maxConnections}
# Seconds to receive a request's headers, the whole request, and to keep an idle connection.
headers_timeout_seconds = ${DEFAULT_API_LIMITS.headersTimeoutSeconds}
request_timeout_seconds = ${DEFAULT_API_LIMITS.requestTimeoutSeconds}
keep_alive_timeout_seconds = ${DEFAULT_API_LIMITS.keepAliveTimeoutSeconds}
# A request body arriving slower than this (after its first second) is cut with 408 (0: off).
min_body_bytes_per_second = ${DEFAULT_API_LIMITS.minBodyBytesPerSecond}
# Batch verdict requests (POST /v1/verdicts) evaluated at once, and waiting; beyond: 503 + Retry-After.
max_batches = ${DEFAULT_API_LIMITS.maxBatches}
max_queued_batches = ${DEFAULT_API_LIMITS.maxQueuedBatches}`

/** File descriptors the node keeps for everything else (LevelDB, libp2p, logs, workers). */
const FD_RESERVE = 256

/** The soft open-files limit of this process (Linux /proc), undefined where unknown. */
export function openFilesLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'))
    const soft = line?.split(/\s{2,}/)[1]
    if (soft === undefined || soft === 'unlimited') return undefined
    const n = Number(soft)
    return Number.isSafeInteger(n) ? n : undefined
  } catch {
    return undefined
  }
}

/** The connection cap actually used: the configured one, at most half of what the fd limit leaves. */
export function effectiveConnectionCap(configured: number, fdLimit = openFilesLimit()): number {
  if (fdLimit === undefined) return configured
  return Math.max(16, Math.min(configured, Math.floor((fdLimit - FD_RESERVE) / 2)))
}

// --- Host and Origin ----------------------------------------------------------------------------

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]'])

/** `[::1]:4778` → { name: '[::1]', port: 4778 }; no port → port undefined. Lowercased. */
function splitHost(host: string): { name: string; port: number | undefined } | undefined {
  const text = host.trim().toLowerCase()
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::([0-9]{1,5}))?$/.exec(text)
  if (m === null) return undefined
  return { name: m[1]!, port: m[2] === undefined ? undefined : Number(m[2]) }
}

/**
 * Which Host headers (and browser Origins) the API answers: loopback names on the listen port,
 * the listen address itself when it is not a wildcard, and the configured names. A DNS-rebinding
 * page reaches 127.0.0.1 under its own name, so its requests carry a foreign Host and are refused.
 */
export class HostCheck {
  private readonly names = new Set<string>()
  private readonly anyPort = new Set<string>()
  private readonly exact = new Set<string>()

  constructor(listenHost: string, allowedHosts: readonly string[]) {
    for (const n of LOOPBACK_NAMES) this.names.add(n)
    if (listenHost !== '0.0.0.0' && listenHost !== '::') this.names.add(listenHost.includes(':') ? `[${listenHost.toLowerCase()}]` : listenHost.toLowerCase())
    for (const entry of allowedHosts) {
      const h = splitHost(entry)
      if (h === undefined) continue
      if (h.port === undefined) this.anyPort.add(h.name)
      else this.exact.add(`${h.name}:${h.port}`)
    }
  }

  /** Does a Host header value name this API listening on `port`? */
  allows(host: string | undefined, port: number): boolean {
    if (host === undefined) return false
    const h = splitHost(host)
    if (h === undefined) return false
    if (this.anyPort.has(h.name)) return true
    if (h.port !== undefined && this.exact.has(`${h.name}:${h.port}`)) return true
    return this.names.has(h.name) && (h.port ?? 80) === port
  }

  /** An Origin header is ours when it is http(s) on an allowed host. */
  allowsOrigin(origin: string, port: number): boolean {
    let url: URL
    try {
      url = new URL(origin)
    } catch {
      return false
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return false
    const originPort = url.port === '' ? (url.protocol === 'https:' ? '443' : '80') : url.port
    return this.allows(`${url.hostname}:${originPort}`, port)
  }
}

// --- connections --------------------------------------------------------------------------------

interface Held {
  /** A request of this connection is being handled (its body was read): not evicted. */
  busy: boolean
}

/**
 * Holds at most `cap` connections. At the cap a new connection closes the oldest one that is not
 * being handled (idle keep-alive, slow headers, slow body), so slow or idle sockets can never lock
 * local users out; when every held connection is busy, the new one is closed instead.
 */
export class ConnectionGuard {
  private readonly held = new Map<Socket, Held>()
  evicted = 0
  refused = 0

  constructor(readonly cap: number) {}

  get size(): number {
    return this.held.size
  }

  readonly onConnection = (socket: Socket): void => {
    if (this.held.size >= this.cap) {
      const victim = this.oldestIdle()
      if (victim === undefined) {
        this.refused++
        socket.destroy()
        return
      }
      this.held.delete(victim)
      this.evicted++
      victim.destroy()
    }
    this.held.set(socket, { busy: false })
    socket.once('close', () => this.held.delete(socket))
  }

  /** A request's handler started on this socket; idle again when its response is closed. */
  busy(socket: Socket, done: { once(event: 'close', f: () => void): unknown }): void {
    const h = this.held.get(socket)
    if (h === undefined) return
    h.busy = true
    done.once('close', () => {
      h.busy = false
    })
  }

  private oldestIdle(): Socket | undefined {
    for (const [socket, h] of this.held) if (!h.busy) return socket
    return undefined
  }
}

// --- body rate ----------------------------------------------------------------------------------

type BodySource = NodeJS.ReadableStream & { on(event: string, f: (e?: Error) => void): unknown }

/** A request body passed through while its bytes are counted. */
export class MeteredBody extends Transform {
  received = 0
  readonly startedAt = Date.now()

  constructor(private readonly source: BodySource) {
    super()
    source.on('error', (e) => this.destroy(e))
    source.on('aborted', () => this.destroy(new RbqError('HTTP_MALFORMED', 'request aborted by the client')))
    source.pipe(this)
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length
    callback(null, chunk)
  }

  /** Stops reading the source (the socket is not destroyed, so the error answer still goes out) and fails the body. */
  cut(error: Error): void {
    this.source.unpipe(this)
    this.destroy(error)
  }
}

/** Cuts bodies arriving slower than `minBytesPerSecond` (after a first second of grace) with 408. */
export class BodyRateGuard {
  private readonly bodies = new Set<MeteredBody>()
  private timer: NodeJS.Timeout | undefined
  cut = 0

  constructor(private readonly minBytesPerSecond: number) {}

  /** Meters a request body until it ends. */
  meter(raw: BodySource): MeteredBody {
    const body = new MeteredBody(raw)
    this.bodies.add(body)
    const forget = () => this.bodies.delete(body)
    // A cut body whose request is no longer being read (answered before its body, e.g. 401/415)
    // has no other 'error' listener: without this one the cut would be an uncaught exception.
    // While fastify reads the body, its own listener still gets the error and answers 408.
    body.on('error', () => {})
    body.once('end', forget)
    body.once('close', forget)
    return body
  }

  start(): void {
    if (this.minBytesPerSecond <= 0 || this.timer !== undefined) return
    this.timer = setInterval(() => this.sweep(), 500)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  private sweep(): void {
    const now = Date.now()
    for (const body of this.bodies) {
      const seconds = (now - body.startedAt) / 1000
      if (seconds <= 1 || body.received >= this.minBytesPerSecond * (seconds - 1)) continue
      this.bodies.delete(body)
      this.cut++
      const rate = Math.round(body.received / seconds)
      body.cut(new RbqError('REQUEST_TIMEOUT', `body: arriving at ${rate} bytes/s; at least ${this.minBytesPerSecond} bytes/s are needed`, { field: 'body' }))
    }
  }
}

// --- batch verdicts ---------------------------------------------------------------------------

/** Seconds a client told to come back later should wait. */
export const RETRY_AFTER_SECONDS = 1

/**
 * At most `running` batch requests evaluated at once and `queued` waiting; a request beyond that
 * is refused at once (503 QUEUE_FULL, Retry-After) instead of piling up memory and latency.
 */
export class BatchGate {
  private active = 0
  private readonly waiting: (() => void)[] = []
  refused = 0

  constructor(
    private readonly running: number,
    private readonly queued: number
  ) {}

  get inFlight(): number {
    return this.active
  }

  get waitingCount(): number {
    return this.waiting.length
  }

  /** Waits for a slot; the returned release is idempotent. */
  async enter(): Promise<() => void> {
    if (this.active >= this.running) {
      if (this.waiting.length >= this.queued) {
        this.refused++
        throw new RbqError('QUEUE_FULL', `busy: ${this.active} batch requests running and ${this.waiting.length} waiting; retry in ${RETRY_AFTER_SECONDS} s`)
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve))
    } else {
      this.active++
    }
    let released = false
    return () => {
      if (released) return
      released = true
      const next = this.waiting.shift()
      // The slot passes straight to the next waiter (active stays the same).
      if (next !== undefined) next()
      else this.active--
    }
  }
}
