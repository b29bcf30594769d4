/**
 * A rebuilderd instance over HTTP: its list (v0 in one piece, v1 page by page), its published
 * keys and its attestations. Routes as rebuilderd's daemon serves them (daemon/src/lib.rs):
 *
 *   GET /api/v0/pkgs/list                         PkgRelease[] (Last-Modified, If-Modified-Since)
 *   GET /api/v1/packages/binary?limit=&after=     ResultPage<BinaryPackage>, ordered by id;
 *                                                 `after` = the last id seen; default limit 1000
 *   GET /api/v1/builds/{build}/artifacts/{artifact}/attestation   in-toto link (in-toto-link.ts)
 *   GET /api/v0/builds/{build}/attestation        the build's first artifact's link
 *   GET /api/v1/meta/public-keys                  { "current": [PEM, …] }
 *
 * The user may give the list URL of either version, or just the instance (`https://host/`),
 * which reads v1 filtered to `distribution=debian`.
 */
import { RbqError } from '../../protocol/index.js'
import { parsePublicKeysResponse, type RebuilderdKey } from './in-toto-link.js'
import { decodeUtf8, fetchBounded, MAX_ATTESTATION_BYTES, MAX_LIST_BYTES, type Validators } from './list-source.js'
import { parseRebuilderdList, type RebuilderdApiVersion, type RebuilderdArtifact, type RebuilderdList, type RowSkipReason } from './rebuilderd.js'
import type { BridgeState, PageMemo } from './bridge-state.js'

export interface Endpoint {
  /** The instance root (no trailing slash): names the origin of its records. */
  base: string
  api: RebuilderdApiVersion
  listUrl: string
}

/** v1 page size when the URL does not set one (rebuilderd's own default). */
export const V1_PAGE_LIMIT = 1000
/** A safety stop for servers that ignore `after`: ~100 M rows. */
const MAX_PAGES = 100_000

export function endpointOf(url: string): Endpoint {
  const u = new URL(url)
  const at = u.pathname.indexOf('/api/')
  if (at < 0) {
    const base = `${u.origin}${u.pathname.replace(/\/+$/, '')}`
    return { base, api: 'v1', listUrl: `${base}/api/v1/packages/binary?distribution=debian` }
  }
  const base = `${u.origin}${u.pathname.slice(0, at)}`
  const route = u.pathname.slice(at).replace(/\/+$/, '')
  if (route === '/api/v0/pkgs/list') return { base, api: 'v0', listUrl: u.href }
  if (route === '/api/v1/packages/binary') return { base, api: 'v1', listUrl: u.href }
  throw new RbqError('USAGE', `${url}: not a rebuilderd list (…/api/v0/pkgs/list, …/api/v1/packages/binary, or the instance's root URL)`)
}

export function attestationUrl(endpoint: Endpoint, a: RebuilderdArtifact): string | undefined {
  if (!a.hasAttestation || a.buildId === undefined) return undefined
  if (endpoint.api === 'v1') return a.artifactId === undefined ? undefined : `${endpoint.base}/api/v1/builds/${a.buildId}/artifacts/${a.artifactId}/attestation`
  return `${endpoint.base}/api/v0/builds/${a.buildId}/attestation`
}

export function publicKeysUrl(endpoint: Endpoint): string {
  return `${endpoint.base}/api/${endpoint.api}/${endpoint.api === 'v1' ? 'meta/' : ''}public-keys`
}

export interface ListRead {
  api: RebuilderdApiVersion
  artifacts: RebuilderdArtifact[]
  rows: number
  total: number
  pages: number
  /** Pages the server answered 304 Not Modified: nothing new there. */
  notModified: number
  skipped: Partial<Record<RowSkipReason, number>>
  problems: string[]
  /** Validators to remember (by scope + URL) once everything read was stored. */
  memos: Map<string, PageMemo>
}

function merge(into: ListRead, list: RebuilderdList): void {
  into.artifacts.push(...list.artifacts)
  into.rows += list.rows
  for (const [k, n] of Object.entries(list.skipped) as [RowSkipReason, number][]) into.skipped[k] = (into.skipped[k] ?? 0) + n
  for (const p of list.problems) if (into.problems.length < 5) into.problems.push(p)
}

function pageUrl(listUrl: string, after: number | undefined): { url: string; limit: number } {
  const u = new URL(listUrl)
  const limit = Number(u.searchParams.get('limit') ?? NaN)
  if (!(limit > 0)) u.searchParams.set('limit', String(V1_PAGE_LIMIT))
  if (after !== undefined) u.searchParams.set('after', String(after))
  else u.searchParams.delete('after')
  return { url: u.href, limit: limit > 0 ? limit : V1_PAGE_LIMIT }
}

/**
 * Reads the whole list: every v1 page, each with the validators remembered from last time.
 * A 304 page contributes no rows; its remembered last id continues the paging.
 */
export async function readInstanceList(
  endpoint: Endpoint,
  options: {
    allowHttp: boolean
    state: BridgeState
    /** What else decides which rows get imported (pinned keys, --allow-unsigned): a 304 only means "nothing new" under the same choices. */
    memoScope: string
    progress?: (m: string) => void
    onBytes?: (bytes: number) => void
  }
): Promise<ListRead> {
  const out: ListRead = { api: endpoint.api, artifacts: [], rows: 0, total: 0, pages: 0, notModified: 0, skipped: {}, problems: [], memos: new Map() }
  let after: number | undefined
  for (;;) {
    const { url, limit } = endpoint.api === 'v1' ? pageUrl(endpoint.listUrl, after) : { url: endpoint.listUrl, limit: Infinity }
    const memoKey = `${options.memoScope}\0${url}`
    const memo = await options.state.page(memoKey)
    const validators: Validators | undefined = memo === undefined ? undefined : { etag: memo.etag, lastModified: memo.lastModified }
    const res = await fetchBounded(url, { maxBytes: MAX_LIST_BYTES, allowHttp: options.allowHttp, validators, onProgress: options.onBytes })
    out.pages++
    if (out.pages > MAX_PAGES) throw new RbqError('DOWNLOAD_FAILED', `${endpoint.listUrl}: more than ${MAX_PAGES} pages`)
    let rows: number
    let lastId: number | undefined
    if (res.status === 200) {
      const list = parseRebuilderdList(decodeUtf8(res.bytes, url), endpoint.api === 'v1' ? `page ${out.pages}` : 'list')
      if (list.api !== endpoint.api) throw new RbqError('SCHEMA_INVALID', `${url}: expected a rebuilderd ${endpoint.api} list, got ${list.api}`)
      merge(out, list)
      out.total = Math.max(out.total, list.total)
      rows = list.rows
      lastId = list.lastId
      if (res.validators.etag !== undefined || res.validators.lastModified !== undefined) out.memos.set(memoKey, { ...res.validators, lastId, rows })
    } else if (res.status === 304 && memo !== undefined) {
      out.notModified++
      rows = memo.rows
      lastId = memo.lastId
    } else {
      throw new RbqError('DOWNLOAD_FAILED', `${url}: HTTP ${res.status} to a request we did not make conditional`)
    }
    options.progress?.(`page ${out.pages}: ${res.status === 304 ? 'not modified' : `${rows} rows`}`)
    if (endpoint.api === 'v0' || rows < limit || lastId === undefined) break
    if (after !== undefined && lastId <= after) throw new RbqError('SCHEMA_INVALID', `${url}: the server ignored after=${after} (row ids did not advance); not a rebuilderd v1 list`)
    after = lastId
  }
  return out
}

/** Fetches the instance's published keys and keeps the ones whose key id the user pinned. */
export async function fetchPinnedKeys(endpoint: Endpoint, keyIds: readonly string[], allowHttp: boolean): Promise<{ pinned: RebuilderdKey[]; published: RebuilderdKey[] }> {
  const url = publicKeysUrl(endpoint)
  const res = await fetchBounded(url, { maxBytes: 256 * 1024, allowHttp })
  if (res.status !== 200) throw new RbqError('DOWNLOAD_FAILED', `${url}: HTTP ${res.status}`)
  const published = parsePublicKeysResponse(decodeUtf8(res.bytes, url), url)
  const wanted = keyIds.map((k) => k.toLowerCase())
  const missing = wanted.filter((id) => !published.some((k) => k.keyids.includes(id)))
  if (missing.length > 0) {
    throw new RbqError(
      'KEYID_MISMATCH',
      `${url} does not publish the pinned key ${missing.join(', ')} (it publishes ${published.map((k) => k.keyid).join(', ') || 'none'}): refusing to verify with anything else`
    )
  }
  return { pinned: published.filter((k) => k.keyids.some((id) => wanted.includes(id))), published }
}

/** Fetches attestations once per URL (v0 rows of one build share one), a few at a time. */
export class AttestationFetcher {
  private readonly cache = new Map<string, Promise<Uint8Array | undefined>>()
  constructor(private readonly allowHttp: boolean) {}

  get(url: string): Promise<Uint8Array | undefined> {
    let p = this.cache.get(url)
    if (p === undefined) {
      p = fetchBounded(url, { maxBytes: MAX_ATTESTATION_BYTES, allowHttp: this.allowHttp, notFoundOk: true }).then((r) => (r.status === 200 ? r.bytes : undefined))
      this.cache.set(url, p)
    }
    return p
  }
}
