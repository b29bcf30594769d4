/**
 * The node's local HTTP API (fastify 5), `/v1`, on 127.0.0.1 by default. Every route declares
 * TypeBox schemas (validated by the TypeBox compiler, so bodies and query strings are strict:
 * unknown fields are refused, the offending field is named) and is listed in /openapi.json.
 *
 * Bodies are JSON (bounded depth, protocol parseJson) except POST /v1/attestations, which takes
 * frames as raw bytes (their canonical bytes are what is verified and stored). Limits: 256 KiB
 * per body, 8 MiB for batches (POST /v1/verdicts, POST /v1/watch) and JSON-lines frame uploads,
 * one frame + LF for a single frame; over a limit → 413. Write routes need the bearer token of
 * `<data>/api.token` (token.ts), checked before the body is read. Errors: errors.ts.
 *
 * On start the server writes its URL to `<data>/api.url`, so `rbq --data DIR` finds a node on
 * any port; the file is removed on stop.
 *
 * Hostile clients (limits.ts, `[api]` config): header, request and keep-alive timeouts; a body
 * slower than a minimum rate cut with 408; a connection cap (below the fd limit) at which the
 * oldest idle connection is let go; only loopback Host names on the listen port (and configured
 * names), no browser requests from other origins; batch verdicts bounded, evaluated in slices
 * that yield, streamed out. Every answer, fastify's and node's own errors included, is either a
 * route's answer or `{ error: { code, message } }`.
 */
import { promises as fs } from 'node:fs'
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { Type, type TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { Value } from '@sinclair/typebox/value'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Counter, Gauge, Histogram } from 'prom-client'
import { API_MAX_BODY_BYTES, DEFAULT_API_HOST, DEFAULT_API_PORT, MEDIA_JSON, type FrameEvent } from '../../protocol/api.js'
import { parseJson, RbqError, type VerifiedFrame } from '../../protocol/index.js'
import { fieldOf } from '../../protocol/schema.js'
import { silentLogger, type Logger } from '../../common/logger.js'
import { VERSION } from '../../common/version.js'
import type { ApiComponents, ApiContext, ApiRoute } from './context.js'
import { errorReply, SchemaViolation } from './api-errors.js'
import { BatchGate, BodyRateGuard, ConnectionGuard, DEFAULT_API_LIMITS, effectiveConnectionCap, HostCheck, RETRY_AFTER_SECONDS, type ApiLimits } from './limits.js'
import { EventHub } from './node-events.js'
import { openApiDocument } from './openapi.js'
import { PolicyFile, policyPath } from '../trust/policy-file.js'
import { TrustState } from '../trust/trust-state.js'
import { attestationRoutes } from './routes/attestation-routes.js'
import { eventRoutes } from './routes/event-routes.js'
import { metricsRoutes } from './routes/metrics-routes.js'
import { rebuildRoutes } from './routes/rebuild-routes.js'
import { statementRoutes } from './routes/statement-routes.js'
import { statusRoutes } from './routes/status-routes.js'
import { verdictRoutes } from './routes/verdict-routes.js'
import { statsRoutes } from './routes/stats-routes.js'
import { watchRoutes } from './routes/watch-routes.js'
import { bearerToken, loadOrCreateApiToken, tokenMatches } from '../../identity/api-token.js'
import { VerdictService } from '../consensus/verdict-service.js'
import { WatchList } from '../consensus/watch-list.js'

export { type ApiComponents } from './context.js'

export const API_URL_FILE = 'api.url'

const NO_QUERY = Type.Object({}, { additionalProperties: false })

/** Longest request target (path and query) answered; longer → 414. */
const MAX_URL_BYTES = 8192
/** Request line and headers together (node's parser); more → 431. */
const MAX_HEADER_BYTES = 16 * 1024
/** Header lines read; more are dropped by node's parser. */
const MAX_HEADERS_COUNT = 100
/** UTF-8 decoding that refuses invalid bytes instead of replacing them. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

export interface ApiServerInit {
  /** The node's data dir: api.token, api.url and (by default) policy.toml live there. */
  dataDir: string
  /** Default 127.0.0.1. */
  host?: string
  /** Unset: 4778, or a free port when 4778 is taken; set: that port or fail (0: a free port). See `url` after start. */
  port?: number
  /** Default `<dataDir>/policy.toml`. */
  policyFile?: string
  /** The node's trust state (started; shared with the ingest quota and sync); wins over `policyFile`. Without it the server keeps its own. */
  trust?: TrustState
  /** Default `<dataDir>/api.token`. */
  tokenFile?: string
  /** SSE heartbeat period in ms (default 15 s). */
  heartbeatMs?: number
  /** Write `<dataDir>/api.url` (default true). */
  writeUrlFile?: boolean
  /** Timeouts, caps and allowed hosts (default DEFAULT_API_LIMITS; `[api]` in the config). */
  limits?: Partial<ApiLimits>
}

export class ApiServer {
  readonly verdicts: VerdictService
  readonly watch: WatchList
  readonly events: EventHub
  readonly trust: TrustState
  /** The trust state this server made itself (no `trust` given): started and stopped with it. */
  private readonly ownTrust: TrustState | undefined
  private readonly app: FastifyInstance
  private readonly log: Logger
  private readonly routes: ApiRoute[]
  private readonly context: ApiContext
  private token = ''
  private baseUrl = ''
  private started = false
  private port = 0
  private hosts: HostCheck | undefined
  readonly limits: ApiLimits
  readonly connections: ConnectionGuard
  readonly bodyRate: BodyRateGuard
  readonly batches: BatchGate
  private readonly metrics: {
    requests?: Counter<'route' | 'method' | 'status'>
    duration?: Histogram<'route'>
    refused?: Counter<'reason'>
  }

  constructor(
    private readonly components: ApiComponents,
    private readonly init: ApiServerInit
  ) {
    this.log = (components.logger ?? silentLogger()).child({ component: 'api' })
    this.limits = { ...DEFAULT_API_LIMITS, ...init.limits }
    const cap = effectiveConnectionCap(this.limits.maxConnections)
    if (cap < this.limits.maxConnections) this.log.info({ configured: this.limits.maxConnections, cap }, 'api.max_connections lowered to stay below the open-files limit (ulimit -n)')
    this.connections = new ConnectionGuard(cap)
    this.bodyRate = new BodyRateGuard(this.limits.minBodyBytesPerSecond)
    this.batches = new BatchGate(this.limits.maxBatches, this.limits.maxQueuedBatches)
    this.ownTrust = init.trust === undefined ? new TrustState({ store: components.store, policy: new PolicyFile(init.policyFile ?? policyPath(init.dataDir)), logger: this.log }) : undefined
    this.trust = init.trust ?? this.ownTrust!
    this.verdicts = new VerdictService({ store: components.store, trust: this.trust })
    this.events = new EventHub(init.heartbeatMs === undefined ? {} : { heartbeatMs: init.heartbeatMs })
    this.watch = new WatchList({ store: components.store, verdicts: this.verdicts, trust: this.trust, onChange: (e) => this.events.publishVerdict(e), logger: this.log })
    this.context = {
      components,
      verdicts: this.verdicts,
      watch: this.watch,
      events: this.events,
      trust: this.trust,
      dataDir: init.dataDir,
      startedAt: new Date(),
      url: () => this.baseUrl
    }
    const m = components.metrics
    this.metrics = {
      requests: m?.counter({ name: 'rbq_api_requests_total', help: 'API requests answered, by route, method and HTTP status', labelNames: ['route', 'method', 'status'] }),
      duration: m?.histogram({
        name: 'rbq_api_request_duration_seconds',
        help: 'API request duration by route',
        labelNames: ['route'],
        buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]
      }),
      refused: m?.counter({
        name: 'rbq_api_refused_total',
        help: 'API requests and connections refused by a limit: host, origin, timeout, body_rate, batch_queue, evicted (idle connection closed at the cap), connection_cap',
        labelNames: ['reason']
      })
    }
    const held: Gauge | undefined = m?.gauge({
      name: 'rbq_api_connections',
      help: 'HTTP connections the API holds',
      collect: () => held?.set(this.connections.size)
    })
    const streams: Gauge | undefined = m?.gauge({
      name: 'rbq_api_event_streams',
      help: 'Clients following GET /v1/events',
      collect: () => streams?.set(this.events.size)
    })
    this.routes = [
      ...statusRoutes(this.context),
      ...verdictRoutes(this.context, this.batches),
      ...attestationRoutes(this.context),
      ...rebuildRoutes(this.context),
      ...statementRoutes(this.context),
      ...watchRoutes(this.context),
      ...statsRoutes(this.context),
      ...eventRoutes(this.context),
      ...metricsRoutes(this.context, () => openApiDocument(this.routes, { version: VERSION, url: this.baseUrl }))
    ]
    this.app = this.build()
  }

  /** Base URL, e.g. http://127.0.0.1:4778 (after start). */
  get url(): string {
    return this.baseUrl
  }

  /** The routes as registered (method, url, schemas): what /openapi.json describes. */
  get routeList(): readonly ApiRoute[] {
    return this.routes
  }

  async start(): Promise<void> {
    if (this.started) return
    const tokenFile = this.init.tokenFile ?? join(this.init.dataDir, 'api.token')
    const { token, created } = await loadOrCreateApiToken(tokenFile)
    this.token = token
    if (created) this.log.info({ file: tokenFile }, 'API token created')
    await this.ownTrust?.start()
    await this.watch.start()
    this.components.ingest?.on('stored', this.onStored)
    this.events.start()
    const host = this.init.host ?? DEFAULT_API_HOST
    this.hosts = new HostCheck(host, this.limits.allowedHosts)
    this.bodyRate.start()
    await this.listen(host)
    const address = this.app.server.address()
    const port = typeof address === 'object' && address !== null ? address.port : this.init.port ?? DEFAULT_API_PORT
    this.port = port
    this.baseUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
    if (this.init.writeUrlFile !== false) await fs.writeFile(join(this.init.dataDir, API_URL_FILE), this.baseUrl + '\n', { mode: 0o644 })
    if (host !== DEFAULT_API_HOST && host !== '::1' && host !== 'localhost') this.log.warn({ host }, 'API listens beyond loopback: reads need no token')
    this.started = true
    this.log.info({ url: this.baseUrl, maxConnections: this.connections.cap, allowedHosts: this.limits.allowedHosts }, 'API listening')
  }

  /** The configured port, else 4778, else (taken) any free port: clients read <data>/api.url. */
  private async listen(host: string): Promise<void> {
    const port = this.init.port ?? DEFAULT_API_PORT
    try {
      await this.app.listen({ host, port })
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw new RbqError('CONFIG_INVALID', `API cannot listen on ${host}:${port}: ${(e as Error).message}`, { cause: e })
      if (this.init.port !== undefined) throw new RbqError('CONFIG_INVALID', `API port ${port} on ${host} is in use (another rbq node?): set another [api] port`, { cause: e })
      this.log.warn({ port }, 'default API port in use; listening on a free port (see api.url in the data dir)')
      await this.app.listen({ host, port: 0 })
    }
  }

  async stop(): Promise<void> {
    if (!this.started) return
    this.started = false
    this.components.ingest?.off('stored', this.onStored)
    this.events.stop()
    this.bodyRate.stop()
    await this.app.close()
    await this.watch.stop()
    this.ownTrust?.stop()
    if (this.init.writeUrlFile !== false) {
      const file = join(this.init.dataDir, API_URL_FILE)
      const text = await fs.readFile(file, 'utf8').catch(() => '')
      if (text.trim() === this.baseUrl) await fs.rm(file, { force: true })
    }
  }

  /** A frame was stored (any source): announce it and re-evaluate the watches it affects. */
  private readonly onStored = (frame: VerifiedFrame): void => {
    this.events.publishFrame(frame.kind, frameEvent(frame))
    this.watch.notify([frame])
  }

  private build(): FastifyInstance {
    const limits = this.limits
    const app = Fastify({
      logger: false,
      bodyLimit: API_MAX_BODY_BYTES,
      forceCloseConnections: true,
      return503OnClosing: false,
      keepAliveTimeout: limits.keepAliveTimeoutSeconds * 1000,
      requestTimeout: limits.requestTimeoutSeconds * 1000,
      http: {
        headersTimeout: limits.headersTimeoutSeconds * 1000,
        requestTimeout: limits.requestTimeoutSeconds * 1000,
        keepAliveTimeout: limits.keepAliveTimeoutSeconds * 1000,
        // How often node looks for requests past their header/request deadline (default 30 s).
        connectionsCheckingInterval: 1000,
        maxHeaderSize: MAX_HEADER_BYTES
      },
      // Node's own refusals (timeouts, header overflow, malformed HTTP) and the router's (bad URL, long parameter).
      clientErrorHandler: (err, socket) => this.clientError(err, socket),
      frameworkErrors: (err, req, reply) => this.sendError(err, req, reply),
      // Querystring arrays (?a=1&a=2) reach the schema, which refuses them.
      routerOptions: { ignoreTrailingSlash: true, maxParamLength: 128 }
    })
    app.server.maxHeadersCount = MAX_HEADERS_COUNT
    // Admission happens in the guard (evicting an idle connection at the cap); node's own cap is a
    // backstop against bursts faster than closed sockets are reaped.
    app.server.maxConnections = this.connections.cap + 64
    app.server.on('connection', (socket: Socket) => {
      const before = { evicted: this.connections.evicted, refused: this.connections.refused }
      this.connections.onConnection(socket)
      if (this.connections.evicted > before.evicted) this.metrics.refused?.inc({ reason: 'evicted' })
      if (this.connections.refused > before.refused) this.metrics.refused?.inc({ reason: 'connection_cap' })
    })
    app.server.on('drop', () => this.metrics.refused?.inc({ reason: 'connection_cap' }))
    app.setValidatorCompiler(({ schema, httpPart }) => routeValidator(schema as TSchema, httpPart))
    // Answers are built from typed values: plain JSON.stringify (response schemas document them).
    app.setSerializerCompiler(() => (data) => JSON.stringify(data))
    app.removeAllContentTypeParsers()
    app.addContentTypeParser(MEDIA_JSON, { parseAs: 'buffer' }, (_req, body, done) => {
      try {
        const bytes = body as Buffer
        if (bytes.length === 0) throw new RbqError('JSON_MALFORMED', 'body: empty', { field: 'body' })
        let text: string
        try {
          text = strictUtf8.decode(bytes)
        } catch {
          throw new RbqError('JSON_MALFORMED', 'body: not valid UTF-8', { field: 'body' })
        }
        done(null, parseJson(text, 'body'))
      } catch (e) {
        done(e as Error, undefined)
      }
    })
    app.setErrorHandler((err, req, reply) => this.sendError(err, req, reply))
    app.setNotFoundHandler((req, reply) => {
      reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]!.slice(0, 200)} (see /openapi.json)` } })
    })
    // Before any route hook (the token check included): who may ask at all.
    app.addHook('onRequest', async (req) => this.admit(req))
    // Bodies are metered while they arrive: too slow → 408 (limits.ts BodyRateGuard).
    app.addHook('preParsing', async (req, _reply, payload) => (req.method === 'POST' ? this.bodyRate.meter(payload) : payload))
    // A connection whose request is being handled is not evicted at the connection cap.
    app.addHook('preHandler', async (req, reply) => this.connections.busy(req.raw.socket, reply.raw))
    app.addHook('onResponse', async (req, reply) => {
      const route = req.routeOptions.url ?? 'unmatched'
      this.metrics.requests?.inc({ route, method: req.method, status: String(reply.statusCode) })
      this.metrics.duration?.observe({ route }, reply.elapsedTime / 1000)
    })

    const requireToken = async (req: FastifyRequest) => {
      if (!tokenMatches(bearerToken(req.headers.authorization), this.token)) {
        throw new RbqError(
          'UNAUTHORIZED',
          `this route needs \`Authorization: Bearer <token>\`; the token is in ${this.init.tokenFile ?? join(this.init.dataDir, 'api.token')}`
        )
      }
    }
    for (const route of this.routes) {
      const options = {
        method: route.method,
        url: route.url,
        // No query string declared: none is accepted (a typo'd parameter is an error, not ignored).
        schema: route.schema.querystring === undefined ? { ...route.schema, querystring: NO_QUERY } : route.schema,
        ...(route.bodyLimit === undefined ? {} : { bodyLimit: route.bodyLimit }),
        ...(route.auth === true ? { onRequest: requireToken } : {}),
        handler: route.handler
      }
      if (route.raw === undefined) {
        app.route(options)
        continue
      }
      // Raw bodies: a context of their own with buffer parsers, one limit per media type.
      const raw = route.raw
      void app.register(async (child) => {
        child.removeAllContentTypeParsers()
        for (const [media, limit] of Object.entries(raw)) {
          child.addContentTypeParser(media, { parseAs: 'buffer', bodyLimit: limit }, (_req, body, done) => done(null, body))
        }
        const { schema: _documentedOnly, ...rest } = options
        child.route({
          ...rest,
          handler: async (req, reply) => {
            if (!Buffer.isBuffer(req.body)) {
              throw new RbqError('UNSUPPORTED_MEDIA_TYPE', `send the body as ${Object.keys(raw).join(' or ')}`, { field: 'content-type' })
            }
            return route.handler(req, reply)
          }
        })
      })
    }
    return app
  }

  /** Host, Origin and URL length: checked for every request before anything else. */
  private admit(req: FastifyRequest): void {
    if (req.url.length > MAX_URL_BYTES) throw new RbqError('URI_TOO_LONG', `request target: ${req.url.length} bytes; at most ${MAX_URL_BYTES}`)
    const hosts = this.hosts
    if (hosts === undefined) return
    const host = req.headers.host
    if (!hosts.allows(host, this.port)) {
      this.metrics.refused?.inc({ reason: 'host' })
      throw new RbqError(
        'HOST_NOT_ALLOWED',
        `Host ${host === undefined ? '(none)' : JSON.stringify(host.slice(0, 100))} is not a name of this API: use 127.0.0.1:${this.port}, localhost:${this.port} or [::1]:${this.port}, or list the name in [api] allowed_hosts`,
        { field: 'host' }
      )
    }
    const origin = req.headers.origin
    if (origin !== undefined && !hosts.allowsOrigin(origin, this.port)) {
      this.metrics.refused?.inc({ reason: 'origin' })
      throw new RbqError('ORIGIN_NOT_ALLOWED', `requests from web pages of another origin (${JSON.stringify(origin.slice(0, 100))}) are refused`, { field: 'origin' })
    }
  }

  private sendError(err: unknown, req: FastifyRequest, reply: FastifyReply): void {
    const e = errorReply(err)
    if (e.internal) this.log.error({ err: (err as Error)?.message, stack: (err as Error)?.stack, url: req.url }, 'API request failed')
    if (reply.sent || reply.raw.headersSent) return
    if (e.body.error.code === 'QUEUE_FULL') {
      void reply.header('retry-after', String(RETRY_AFTER_SECONDS))
      this.metrics.refused?.inc({ reason: 'batch_queue' })
    }
    // The rest of the body was not read: the connection cannot carry another request.
    if (e.status === 408 || e.status === 413) void reply.header('connection', 'close')
    if (e.body.error.code === 'REQUEST_TIMEOUT') this.metrics.refused?.inc({ reason: 'body_rate' })
    void reply.code(e.status).send(e.body)
  }

  /** Errors node's HTTP parser and timers raise before a request reaches fastify, in our error shape. */
  private clientError(err: Error & { code?: string }, socket: Socket): void {
    if (err.code === 'ECONNRESET' || socket.destroyed) return
    let error: RbqError
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      this.metrics.refused?.inc({ reason: 'timeout' })
      error = new RbqError(
        'REQUEST_TIMEOUT',
        `request not received in time (headers within ${this.limits.headersTimeoutSeconds} s, the whole request within ${this.limits.requestTimeoutSeconds} s)`
      )
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      error = new RbqError('HEADERS_TOO_LARGE', `request line and headers are over ${MAX_HEADER_BYTES} bytes`)
    } else {
      error = new RbqError('HTTP_MALFORMED', `malformed HTTP request (${err.code ?? 'parse error'})`)
    }
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage
    if (socket.writable && inFlight?.headersSent !== true) {
      const e = errorReply(error)
      const body = JSON.stringify(e.body)
      socket.write(
        `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
      )
    }
    socket.destroySoon()
  }
}

/**
 * Validates one part of a request with the TypeBox compiler. Query strings and path parameters
 * arrive as strings: they are converted to the schema's types (and defaults applied) first.
 * The first violation becomes SCHEMA_INVALID naming the field (`artifacts[3].sha256`).
 */
function routeValidator(schema: TSchema, httpPart: string | undefined): (data: unknown) => { value?: unknown; error?: Error } {
  const compiled = TypeCompiler.Compile(schema)
  const part = httpPart === 'querystring' ? 'query' : (httpPart ?? 'body')
  const fromStrings = httpPart === 'querystring' || httpPart === 'params'
  return (data) => {
    if (fromStrings) {
      const loose = looseScalar(schema, data, part)
      if (loose !== undefined) return { error: new SchemaViolation(loose) }
    }
    const value = fromStrings ? Value.Convert(schema, Value.Default(schema, Value.Clone(data))) : data
    if (compiled.Check(value)) return { value }
    const first = compiled.Errors(value).First()
    const field = fieldOf('', first?.path ?? '') || part
    const described = typeof first?.schema.description === 'string' ? ` (${first.schema.description})` : ''
    const what = first === undefined ? 'does not match the schema' : first.message.charAt(0).toLowerCase() + first.message.slice(1)
    return { error: new SchemaViolation(new RbqError('SCHEMA_INVALID', `${field}: ${what}${described}`, { field })) }
  }
}

const SCALAR_TEXT: Record<string, { pattern: RegExp; expected: string }> = {
  integer: { pattern: /^-?(0|[1-9][0-9]{0,15})$/, expected: 'a whole number in plain digits' },
  number: { pattern: /^-?(0|[1-9][0-9]{0,15})(\.[0-9]{1,16})?$/, expected: 'a number in plain digits' },
  boolean: { pattern: /^(true|false)$/, expected: 'true or false' }
}

/**
 * Query and path values are strings; a number or boolean parameter must be written plainly
 * (`limit=50`), not as anything JavaScript would coerce (`1e9`, `0x10`, `1.5` for an integer, ` 7`,
 * `true` for a number). Returns the error naming the first such parameter.
 */
function looseScalar(schema: TSchema, data: unknown, part: string): RbqError | undefined {
  const properties = (schema as { properties?: Record<string, TSchema> }).properties
  if (properties === undefined || typeof data !== 'object' || data === null) return undefined
  for (const [name, value] of Object.entries(data as Record<string, unknown>)) {
    const rule = SCALAR_TEXT[String(properties[name]?.type)]
    if (rule === undefined || typeof value !== 'string' || rule.pattern.test(value)) continue
    return new RbqError('SCHEMA_INVALID', `${name}: expected ${rule.expected} (got ${JSON.stringify(value.slice(0, 40))})`, { field: part === 'query' ? name : `${part}.${name}` })
  }
  return undefined
}

/** What an SSE frame event says about a frame. */
export function frameEvent(f: VerifiedFrame): FrameEvent {
  const e: FrameEvent = { id: f.id, kind: f.kind, signer: f.signer.keyid }
  if (f.kind === 'attestation') {
    e.package = f.statement.predicate.package
    e.outcome = f.statement.predicate.outcome
    e.subject = f.statement.subject.map((s) => ({ name: s.name, sha256: s.digest.sha256 }))
  }
  return e
}
