/**
 * Server-sent events for GET /v1/events: `attestation` / `delegation` / `equivocation` when a
 * frame is newly stored, `verdict` when a watched artifact's verdict changes, and a comment
 * line as heartbeat so proxies and clients can tell a quiet stream from a dead one.
 *
 * Each event has an id `<boot>-<n>`; the last `replay` events are kept so a client that
 * reconnects with `Last-Event-ID` from this process gets what it missed. A client that does
 * not read (its socket buffer over `maxBufferedBytes`) is disconnected rather than buffered
 * without bound; it can reconnect and replay.
 */
import { randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import type { ApiEventType, FrameEvent, VerdictEvent } from '../../protocol/api.js'
import { RbqError } from '../../protocol/errors.js'

export interface EventHubInit {
  /** Milliseconds between heartbeat comments (default 15 s). */
  heartbeatMs?: number
  /** Events kept for Last-Event-ID replay (default 1000). */
  replay?: number
  /** Unsent bytes allowed per client before it is dropped (default 4 MiB). */
  maxBufferedBytes?: number
  /** Streams open at once; more are refused with QUEUE_FULL (default 256). */
  maxClients?: number
}

interface Client {
  res: ServerResponse
  types: ReadonlySet<ApiEventType> | undefined
}

export class EventHub {
  private readonly boot = randomBytes(4).toString('hex')
  private seq = 0
  private readonly ring: { id: string; n: number; type: ApiEventType; text: string }[] = []
  private readonly clients = new Set<Client>()
  private readonly heartbeatMs: number
  private readonly replay: number
  private readonly maxBufferedBytes: number
  private readonly maxClients: number
  private timer: NodeJS.Timeout | undefined

  constructor(init: EventHubInit = {}) {
    this.heartbeatMs = init.heartbeatMs ?? 15_000
    this.replay = init.replay ?? 1000
    this.maxBufferedBytes = init.maxBufferedBytes ?? 4 * 1024 * 1024
    this.maxClients = init.maxClients ?? 256
  }

  /** Throws QUEUE_FULL when no further stream may open (call before taking over the response). */
  checkCapacity(): void {
    if (this.clients.size >= this.maxClients) throw new RbqError('QUEUE_FULL', `${this.clients.size} event streams are open already; try again later`)
  }

  get size(): number {
    return this.clients.size
  }

  start(): void {
    this.timer ??= setInterval(() => this.broadcast(': heartbeat\n\n', undefined), this.heartbeatMs).unref()
  }

  /** Ends every stream (server stopping). */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    for (const c of this.clients) c.res.end()
    this.clients.clear()
  }

  publishFrame(type: 'attestation' | 'delegation' | 'equivocation', data: FrameEvent): void {
    this.publish(type, data)
  }

  publishVerdict(data: VerdictEvent): void {
    this.publish('verdict', data)
  }

  private publish(type: ApiEventType, data: unknown): void {
    const n = ++this.seq
    const id = `${this.boot}-${n}`
    const text = `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`
    this.ring.push({ id, n, type, text })
    if (this.ring.length > this.replay) this.ring.shift()
    this.broadcast(text, type)
  }

  /**
   * Takes over a response as an event stream. `lastEventId` from this process replays the
   * events after it; `types` filters (undefined: every type).
   */
  attach(res: ServerResponse, types: ReadonlySet<ApiEventType> | undefined, lastEventId: string | undefined): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no'
    })
    const client: Client = { res, types }
    let text = 'retry: 2000\n: connected\n\n'
    const after = this.replayPoint(lastEventId)
    if (after !== undefined) for (const e of this.ring) if (e.n > after && (types === undefined || types.has(e.type))) text += e.text
    res.write(text)
    this.clients.add(client)
    res.on('close', () => this.clients.delete(client))
  }

  private replayPoint(lastEventId: string | undefined): number | undefined {
    if (lastEventId === undefined) return undefined
    const m = /^([0-9a-f]{8})-([0-9]{1,15})$/.exec(lastEventId)
    if (m === null || m[1] !== this.boot) return undefined
    return Number(m[2])
  }

  private broadcast(text: string, type: ApiEventType | undefined): void {
    for (const c of this.clients) {
      if (type !== undefined && c.types !== undefined && !c.types.has(type)) continue
      if (c.res.writableLength > this.maxBufferedBytes) {
        this.clients.delete(c)
        c.res.destroy()
        continue
      }
      c.res.write(text)
    }
  }
}
