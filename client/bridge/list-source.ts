/**
 * Reads rebuilderd documents (lists, attestations, keys) from a file or an http(s) URL with a
 * size limit, so a wrong URL or a hostile server cannot make the import read without bound.
 *
 * - `http://` is refused unless the caller allows it (`--allow-http`): a list read in clear text
 *   can be rewritten by anyone on the path. Redirects are followed by hand (at most 5), each
 *   target checked the same way, so https cannot be downgraded by a redirect.
 * - Conditional requests: the caller passes the ETag / Last-Modified it saw last time; a `304
 *   Not Modified` answer comes back as `{ status: 304 }` with no body (rebuilderd's v0 list sets
 *   Last-Modified and answers If-Modified-Since; a caching proxy in front may add ETags).
 */
import { promises as fs } from 'node:fs'
import { RbqError } from '../../protocol/index.js'
import { proxyDispatcher } from '../../common/http-proxy.js'

/** A full Debian suite in v0 form is ~20 MB; 128 MiB leaves room and bounds memory. */
export const MAX_LIST_BYTES = 128 * 1024 * 1024
/** An in-toto link of one artifact is ~1 KiB; 1 MiB bounds a hostile one. */
export const MAX_ATTESTATION_BYTES = 1024 * 1024
const FETCH_TIMEOUT_MS = 300_000
const MAX_REDIRECTS = 5

export function isUrl(source: string): boolean {
  return /^https?:\/\//i.test(source)
}

/** Refuses anything but https (and http when allowed), naming the URL and the way out. */
export function checkUrlAllowed(url: string, allowHttp: boolean): URL {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new RbqError('USAGE', `${url}: not a valid URL`)
  }
  if (u.protocol === 'https:') return u
  if (u.protocol === 'http:') {
    if (allowHttp) return u
    throw new RbqError('USAGE', `${url}: plain http:// is unauthenticated (anyone on the path can rewrite it); use https://, or pass --allow-http to accept that`)
  }
  throw new RbqError('USAGE', `${url}: only https:// (or http:// with --allow-http) is read`)
}

export interface Validators {
  etag?: string
  lastModified?: string
}

export type FetchResult = { status: 200; bytes: Uint8Array; validators: Validators } | { status: 304 } | { status: 404 }

export interface FetchOptions {
  maxBytes: number
  allowHttp: boolean
  accept?: string
  /** Send If-None-Match / If-Modified-Since. */
  validators?: Validators
  /** Answer 404 as `{ status: 404 }` instead of an error. */
  notFoundOk?: boolean
  signal?: AbortSignal
  onProgress?: (bytes: number) => void
}

export async function fetchBounded(url: string, options: FetchOptions): Promise<FetchResult> {
  const timeout = AbortSignal.timeout(FETCH_TIMEOUT_MS)
  const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout])
  const headers: Record<string, string> = { accept: options.accept ?? 'application/json' }
  if (options.validators?.etag !== undefined) headers['if-none-match'] = options.validators.etag
  if (options.validators?.lastModified !== undefined) headers['if-modified-since'] = options.validators.lastModified
  let target = checkUrlAllowed(url, options.allowHttp).href
  let res: Response
  for (let hops = 0; ; hops++) {
    try {
      res = await fetch(target, { signal, headers, redirect: 'manual', dispatcher: await proxyDispatcher(target) })
    } catch (e) {
      throw new RbqError('DOWNLOAD_FAILED', `${target}: ${(e as Error).message}`, { cause: e })
    }
    const location = res.headers.get('location')
    if (res.status < 300 || res.status >= 400 || res.status === 304 || location === null) break
    await res.body?.cancel()
    if (hops >= MAX_REDIRECTS) throw new RbqError('DOWNLOAD_FAILED', `${url}: more than ${MAX_REDIRECTS} redirects`)
    target = checkUrlAllowed(new URL(location, target).href, options.allowHttp).href
  }
  if (res.status === 304) {
    await res.body?.cancel()
    return { status: 304 }
  }
  if (res.status === 404 && options.notFoundOk === true) {
    await res.body?.cancel()
    return { status: 404 }
  }
  if (!res.ok) {
    await res.body?.cancel()
    throw new RbqError('DOWNLOAD_FAILED', `${target}: HTTP ${res.status} ${res.statusText}`)
  }
  const max = options.maxBytes
  const declared = Number(res.headers.get('content-length') ?? NaN)
  if (declared > max) {
    await res.body?.cancel()
    throw new RbqError('INPUT_TOO_LARGE', `${target} is ${declared} bytes, over the ${max}-byte limit`)
  }
  const validators: Validators = {}
  const etag = res.headers.get('etag')
  const lastModified = res.headers.get('last-modified')
  if (etag !== null && etag.length <= 256) validators.etag = etag
  if (lastModified !== null && lastModified.length <= 64) validators.lastModified = lastModified
  if (res.body === null) return { status: 200, bytes: new Uint8Array(), validators }
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      size += chunk.length
      if (size > max) throw new RbqError('INPUT_TOO_LARGE', `${target} sent more than the ${max}-byte limit`)
      chunks.push(chunk)
      options.onProgress?.(size)
    }
  } catch (e) {
    if (e instanceof RbqError) throw e
    throw new RbqError('DOWNLOAD_FAILED', `${target}: ${(e as Error).message}`, { cause: e })
  }
  return { status: 200, bytes: Buffer.concat(chunks), validators }
}

export async function readListFile(path: string, max = MAX_LIST_BYTES): Promise<string> {
  try {
    const st = await fs.stat(path)
    if (!st.isFile()) throw new RbqError('FILE_UNREADABLE', `${path} is not a regular file`)
    if (st.size > max) throw new RbqError('INPUT_TOO_LARGE', `${path} is ${st.size} bytes, over the ${max}-byte limit for a rebuilderd list`)
    const bytes = await fs.readFile(path)
    if (bytes.length > max) throw new RbqError('INPUT_TOO_LARGE', `${path} grew over the ${max}-byte limit while being read`)
    return decodeUtf8(bytes, path)
  } catch (e) {
    if (e instanceof RbqError) throw e
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new RbqError('FILE_NOT_FOUND', `${path} does not exist`, { cause: e })
    throw new RbqError('FILE_UNREADABLE', `${path}: ${(e as Error).message}`, { cause: e })
  }
}

export function decodeUtf8(bytes: Uint8Array, source: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw new RbqError('JSON_MALFORMED', `${source}: not valid UTF-8`)
  }
}
