/**
 * Reads a rebuilderd list from a file or an http(s) URL with a size limit, so a wrong URL or a
 * hostile server cannot make the import read without bound.
 */
import { promises as fs } from 'node:fs'
import { RbqError } from '../../protocol/index.js'

/** A full Debian suite in v0 form is ~20 MB; 128 MiB leaves room and bounds memory. */
export const MAX_LIST_BYTES = 128 * 1024 * 1024
const FETCH_TIMEOUT_MS = 300_000

export function isUrl(source: string): boolean {
  return /^https?:\/\//i.test(source)
}

export async function readListSource(
  source: string,
  options: { maxBytes?: number; signal?: AbortSignal; onProgress?: (bytes: number) => void } = {}
): Promise<string> {
  const max = options.maxBytes ?? MAX_LIST_BYTES
  return isUrl(source) ? fetchList(source, max, options) : readListFile(source, max)
}

async function readListFile(path: string, max: number): Promise<string> {
  try {
    const st = await fs.stat(path)
    if (!st.isFile()) throw new RbqError('FILE_UNREADABLE', `${path} is not a regular file`)
    if (st.size > max) throw new RbqError('INPUT_TOO_LARGE', `${path} is ${st.size} bytes, over the ${max}-byte limit for a rebuilderd list`)
    const bytes = await fs.readFile(path)
    if (bytes.length > max) throw new RbqError('INPUT_TOO_LARGE', `${path} grew over the ${max}-byte limit while being read`)
    return decode(bytes, path)
  } catch (e) {
    if (e instanceof RbqError) throw e
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new RbqError('FILE_NOT_FOUND', `${path} does not exist`, { cause: e })
    throw new RbqError('FILE_UNREADABLE', `${path}: ${(e as Error).message}`, { cause: e })
  }
}

function decode(bytes: Uint8Array, source: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw new RbqError('JSON_MALFORMED', `${source}: not valid UTF-8`)
  }
}

async function fetchList(url: string, max: number, options: { signal?: AbortSignal; onProgress?: (bytes: number) => void }): Promise<string> {
  const timeout = AbortSignal.timeout(FETCH_TIMEOUT_MS)
  const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout])
  let res: Response
  try {
    res = await fetch(url, { signal, headers: { accept: 'application/json' }, redirect: 'follow' })
  } catch (e) {
    throw new RbqError('DOWNLOAD_FAILED', `${url}: ${(e as Error).message}`, { cause: e })
  }
  if (!res.ok) throw new RbqError('DOWNLOAD_FAILED', `${url}: HTTP ${res.status} ${res.statusText}`)
  const declared = Number(res.headers.get('content-length') ?? NaN)
  if (declared > max) throw new RbqError('INPUT_TOO_LARGE', `${url} is ${declared} bytes, over the ${max}-byte limit for a rebuilderd list`)
  if (res.body === null) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      size += chunk.length
      if (size > max) throw new RbqError('INPUT_TOO_LARGE', `${url} sent more than the ${max}-byte limit for a rebuilderd list`)
      chunks.push(chunk)
      options.onProgress?.(size)
    }
  } catch (e) {
    if (e instanceof RbqError) throw e
    throw new RbqError('DOWNLOAD_FAILED', `${url}: ${(e as Error).message}`, { cause: e })
  }
  return decode(Buffer.concat(chunks), url)
}
