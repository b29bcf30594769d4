/**
 * The typed client of a node's HTTP API (protocol/api.ts types), for the CLI, the apt hook and
 * scripts. Uses the global fetch; light to import (no fastify, no libp2p).
 *
 * Finding the node: `url` (e.g. `--api`), else $RBQ_API, else the `api.url` file the node
 * writes into its data dir (`dataDir`, else the default data dir), else — only when no data dir
 * was named — http://127.0.0.1:4778.
 * Write methods send the token of `<dataDir>/api.token` (read when first needed) unless one is
 * given. A node that does not answer is RbqError('API_UNAVAILABLE') saying how to start one.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import {
  API_MAX_BATCH,
  API_MAX_FRAMES_BODY_BYTES,
  API_MAX_FRAMES_PER_SUBMIT,
  DEFAULT_API_URL,
  MEDIA_JSON,
  MEDIA_NDJSON,
  type ApiEvent,
  type ApiEventType,
  type AttestationsPage,
  type AttestationsQuery,
  type NetworkStats,
  type PeerInfo,
  type PeersResponse,
  type RebuildResponse,
  type DelegationRequest,
  type RebuildResultRequest,
  type SignedStatement,
  type StatsQuery,
  type StatusResponse,
  type StoredFrame,
  type SubmitManyResponse,
  type SubmitResult,
  type TrustExplanation,
  type BriefVerdictResult,
  type VerdictEvidenceMode,
  type VerdictQuery,
  type VerdictResult,
  type VerdictsResponse,
  type WatchedArtifact,
  type WatchItem,
  type WatchResponse
} from '../protocol/api.js'
import { RbqError } from '../protocol/errors.js'
import { defaultDataDir } from '../common/data-dir.js'
import { errorFromBody, parseEventStream } from './api-responses.js'
import { readApiToken } from '../identity/api-token.js'

export interface ApiClientInit {
  /** Base URL of the node's API, e.g. http://127.0.0.1:4778. */
  url?: string
  /** The node's data dir: api.url and api.token are read from it. */
  dataDir?: string
  /** Bearer token for write routes (default: read from `<dataDir>/api.token`). */
  token?: string
  /** Milliseconds per request (default 60 s; not applied to events()). */
  timeoutMs?: number
  env?: NodeJS.ProcessEnv
}

export interface EventsOptions {
  types?: readonly ApiEventType[]
  /** Resume after this event id (ids from the same node process are replayed). */
  lastEventId?: string
  signal?: AbortSignal
}

/**
 * Where the node's API is (see the module comment). A data dir given explicitly without an
 * api.url means its node is not running: the default port might be another node's.
 */
export async function resolveApiUrl(init: Pick<ApiClientInit, 'url' | 'dataDir' | 'env'> = {}): Promise<string> {
  const env = init.env ?? process.env
  const explicit = init.url ?? (env.RBQ_API || undefined)
  if (explicit !== undefined) return checkUrl(explicit)
  const file = join(init.dataDir ?? defaultDataDir(env), 'api.url')
  const text = await fs.readFile(file, 'utf8').catch(() => undefined)
  const fromFile = text?.trim()
  if (fromFile !== undefined && fromFile !== '') return checkUrl(fromFile)
  if (init.dataDir !== undefined) {
    throw new RbqError('API_UNAVAILABLE', `no rbq node is running with data dir ${init.dataDir} (no ${file}) — start one with \`rbq node start\``)
  }
  return DEFAULT_API_URL
}

function checkUrl(text: string): string {
  let u: URL
  try {
    u = new URL(text)
  } catch {
    throw new RbqError('USAGE', `not an API URL: "${text.slice(0, 200)}" (expected e.g. ${DEFAULT_API_URL})`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new RbqError('USAGE', `API URL must be http(s): "${text.slice(0, 200)}"`)
  return u.toString().replace(/\/+$/, '')
}

type Method = 'GET' | 'POST'

export class ApiClient {
  private readonly init: ApiClientInit
  private urlPromise: Promise<string> | undefined
  private tokenPromise: Promise<string> | undefined

  constructor(init: ApiClientInit = {}) {
    this.init = init
  }

  /** The base URL this client talks to. */
  url(): Promise<string> {
    this.urlPromise ??= resolveApiUrl(this.init)
    return this.urlPromise
  }

  status(): Promise<StatusResponse> {
    return this.request('GET', '/v1/status')
  }

  async peers(): Promise<PeerInfo[]> {
    return (await this.request<PeersResponse>('GET', '/v1/peers')).peers
  }

  /** The verdict for one file under the node's policy; `evidence: 'brief'` leaves the evidence out. */
  verdict(query: VerdictQuery, options?: { evidence?: 'full' }): Promise<VerdictResult>
  verdict(query: VerdictQuery, options: { evidence: 'brief' }): Promise<BriefVerdictResult>
  verdict(query: VerdictQuery, options: { evidence?: VerdictEvidenceMode } = {}): Promise<VerdictResult | BriefVerdictResult> {
    return this.request('GET', '/v1/verdict', { query: { ...query, ...(options.evidence === undefined ? {} : { evidence: options.evidence }) } })
  }

  /**
   * Verdicts for many files (any number: sent in batches of 10,000), in order; `policy` (TOML)
   * replaces the node's policy for these questions; `evidence: 'brief'` answers status, reason
   * and evidenceHash only (far smaller and faster: what an install gate needs).
   */
  async verdicts(queries: readonly VerdictQuery[], options?: { policy?: string; evidence?: 'full' }): Promise<VerdictResult[]>
  async verdicts(queries: readonly VerdictQuery[], options: { policy?: string; evidence: 'brief' }): Promise<BriefVerdictResult[]>
  async verdicts(queries: readonly VerdictQuery[], options: { policy?: string; evidence?: VerdictEvidenceMode } = {}): Promise<(VerdictResult | BriefVerdictResult)[]> {
    const out: (VerdictResult | BriefVerdictResult)[] = []
    for (let i = 0; i < queries.length; i += API_MAX_BATCH) {
      const body = {
        artifacts: queries.slice(i, i + API_MAX_BATCH),
        ...(options.policy === undefined ? {} : { policy: options.policy }),
        ...(options.evidence === undefined ? {} : { evidence: options.evidence })
      }
      out.push(...(await this.request<VerdictsResponse>('POST', '/v1/verdicts', { json: body })).results)
    }
    return out
  }

  /** One page of stored attestations (exactly one of package, sha256, builder). */
  attestations(query: AttestationsQuery): Promise<AttestationsPage> {
    return this.request('GET', '/v1/attestations', { query: { ...query } })
  }

  /** Every stored attestation matching the query, page by page. */
  async *allAttestations(query: Omit<AttestationsQuery, 'cursor'>): AsyncGenerator<StoredFrame> {
    let cursor: string | undefined
    do {
      const page = await this.attestations(cursor === undefined ? query : { ...query, cursor })
      yield* page.items
      cursor = page.next ?? undefined
    } while (cursor !== undefined)
  }

  /** A stored frame by id (NOT_FOUND when this node does not have it). */
  frame(id: string): Promise<StoredFrame> {
    return this.request('GET', `/v1/attestations/${encodeURIComponent(id)}`)
  }

  /**
   * Submits one frame (canonical bytes) of any kind. Resolves `stored` or `duplicate`; a frame
   * the node refuses throws its typed error (e.g. SIGNATURE_INVALID).
   */
  submitFrame(bytes: Uint8Array): Promise<SubmitResult> {
    return this.request('POST', '/v1/attestations', { raw: { type: MEDIA_JSON, bytes }, auth: true })
  }

  /** Submits frames as JSON lines (split into requests within the limits); one result per frame, in order. */
  async submitFrames(frames: readonly Uint8Array[]): Promise<SubmitResult[]> {
    const out: SubmitResult[] = []
    let batch: Uint8Array[] = []
    let size = 0
    const flush = async () => {
      if (batch.length === 0) return
      const body = Buffer.concat(batch.flatMap((b) => [b, Buffer.from('\n')]))
      const res = await this.request<SubmitManyResponse>('POST', '/v1/attestations', { raw: { type: MEDIA_NDJSON, bytes: body }, auth: true })
      out.push(...res.results)
      batch = []
      size = 0
    }
    for (const f of frames) {
      if (batch.length === API_MAX_FRAMES_PER_SUBMIT || size + f.length + 1 > API_MAX_FRAMES_BODY_BYTES) await flush()
      batch.push(f)
      size += f.length + 1
    }
    await flush()
    return out
  }

  /**
   * Asks the node to sign a rebuild result with its own key (its next seq) and publish it; the
   * answer carries the frame as stored. Content the node refuses throws its typed error.
   */
  publishRebuildResult(result: RebuildResultRequest): Promise<SignedStatement> {
    return this.request('POST', '/v1/rebuild-results', { json: result, auth: true })
  }

  /**
   * Asks the node to sign a delegation (or revocation) from its own key and publish it; the
   * answer carries the frame as stored (`duplicate` when the identical one was stored already).
   * Content the node refuses throws its typed error (SIGNER_MISMATCH: `signer` is not its key).
   */
  publishDelegation(delegation: DelegationRequest): Promise<SignedStatement> {
    return this.request('POST', '/v1/delegations', { json: delegation, auth: true })
  }

  /** `network`: ask every node (a signed request on gossip) instead of this node's scheduler only. */
  requestRebuild(purl: string, options: { network?: boolean } = {}): Promise<RebuildResponse> {
    return this.request('POST', '/v1/rebuilds', { json: options.network === true ? { purl, scope: 'network' } : { purl }, auth: true })
  }

  /** Adds artifacts to the watch list (`replace`: the list becomes exactly these; `remove`: removes them). */
  async watch(artifacts: readonly WatchItem[], options: { replace?: boolean; remove?: boolean } = {}): Promise<WatchedArtifact[]> {
    const body = { artifacts, ...options }
    return (await this.request<WatchResponse>('POST', '/v1/watch', { json: body, auth: true })).watched
  }

  async watched(): Promise<WatchedArtifact[]> {
    return (await this.request<WatchResponse>('GET', '/v1/watch')).watched
  }

  /** How a key (key id or ed25519:…) is trusted, under the node policy or `policy` (TOML). */
  explainTrust(key: string, options: { package?: string; policy?: string } = {}): Promise<TrustExplanation> {
    return this.request('POST', '/v1/trust/explain', { json: { key, ...options } })
  }

  /** Statistics of the network for a distribution (default debian) and optionally a suite. */
  stats(query: StatsQuery = {}): Promise<NetworkStats> {
    return this.request('GET', '/v1/stats', { query: { ...query } })
  }

  async metrics(): Promise<string> {
    return this.request<string>('GET', '/metrics', { text: true })
  }

  openapi(): Promise<Record<string, unknown>> {
    return this.request('GET', '/openapi.json')
  }

  /**
   * The node's event stream, until the node closes it or `signal` aborts (then the iterator
   * just ends). Reconnecting is the caller's choice: pass the last event's id as `lastEventId`.
   */
  async *events(options: EventsOptions = {}): AsyncGenerator<ApiEvent> {
    const base = await this.url()
    const url = new URL(base + '/v1/events')
    if (options.types !== undefined && options.types.length > 0) url.searchParams.set('types', options.types.join(','))
    const headers: Record<string, string> = { accept: 'text/event-stream' }
    if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId
    let res: Response
    try {
      res = await fetch(url, { headers, ...(options.signal === undefined ? {} : { signal: options.signal }) })
    } catch (e) {
      if (options.signal?.aborted === true) return
      throw unavailable(base, e)
    }
    if (!res.ok || res.body === null) throw errorFromBody(res.status, await res.json().catch(() => undefined))
    try {
      yield* parseEventStream(res.body as unknown as AsyncIterable<Uint8Array>)
    } catch (e) {
      if (options.signal?.aborted === true) return
      if (e instanceof RbqError) throw e
      throw new RbqError('API_UNAVAILABLE', `the event stream from ${base} broke: ${(e as Error).message}`, { cause: e })
    }
  }

  private token(): Promise<string> {
    if (this.init.token !== undefined) return Promise.resolve(this.init.token)
    this.tokenPromise ??= (async () => {
      const file = join(this.init.dataDir ?? defaultDataDir(this.init.env ?? process.env), 'api.token')
      try {
        return await readApiToken(file)
      } catch (e) {
        this.tokenPromise = undefined
        if (e instanceof RbqError && e.code === 'FILE_NOT_FOUND') {
          throw new RbqError('UNAUTHORIZED', `no API token: ${file} does not exist (the node writes it on its first start; give the node's --data DIR)`, { cause: e })
        }
        throw e
      }
    })()
    return this.tokenPromise
  }

  private async request<T>(
    method: Method,
    path: string,
    options: { query?: Record<string, unknown>; json?: unknown; raw?: { type: string; bytes: Uint8Array }; auth?: boolean; text?: boolean } = {}
  ): Promise<T> {
    const base = await this.url()
    const url = new URL(base + path)
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v))
    const headers: Record<string, string> = { accept: options.text === true ? 'text/plain' : MEDIA_JSON }
    let body: string | Uint8Array | undefined
    if (options.json !== undefined) {
      headers['content-type'] = MEDIA_JSON
      body = JSON.stringify(options.json)
    } else if (options.raw !== undefined) {
      headers['content-type'] = options.raw.type
      body = options.raw.bytes
    }
    if (options.auth === true) headers.authorization = `Bearer ${await this.token()}`
    let res: Response
    try {
      res = await fetch(url, { method, headers, ...(body === undefined ? {} : { body }), signal: AbortSignal.timeout(this.init.timeoutMs ?? 60_000) })
    } catch (e) {
      throw unavailable(base, e)
    }
    const text = await res.text().catch((e: unknown) => {
      throw unavailable(base, e)
    })
    if (!res.ok) {
      let parsed: unknown
      try {
        parsed = JSON.parse(text)
      } catch {
        parsed = undefined
      }
      throw errorFromBody(res.status, parsed)
    }
    if (options.text === true) return text as T
    try {
      return JSON.parse(text) as T
    } catch {
      throw new RbqError('API_ERROR', `${method} ${path}: the node's answer is not JSON`)
    }
  }
}

function unavailable(base: string, e: unknown): RbqError {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause
  const name = (e as Error)?.name
  if (name === 'TimeoutError') return new RbqError('API_UNAVAILABLE', `the rbq node at ${base} did not answer in time`, { cause: e })
  const detail = cause?.code === 'ECONNREFUSED' || cause?.code === undefined ? '' : ` (${cause.code})`
  return new RbqError('API_UNAVAILABLE', `no rbq node at ${base}${detail} — start one with \`rbq node start\``, { cause: e })
}
