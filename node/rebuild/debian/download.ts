/**
 * HTTP downloads whose digest is known in advance from a signed index. A file is only ever
 * renamed into place after its SHA-256 and size matched; a cached file is re-checked on use.
 */
import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, rename, rm, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import { RbqError } from '../../../protocol/errors.js'
import { sha256File } from '../../../common/files.js'
import { proxyDispatcher } from '../../../common/http-proxy.js'

export interface Expected {
  sha256: string
  size: number
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}

async function get(url: string, signal?: AbortSignal): Promise<Response> {
  let res: Response
  try {
    // Through the machine's HTTP(S) proxy, if one is set (common/http-proxy.ts).
    res = await fetch(url, { signal, dispatcher: await proxyDispatcher(url) })
  } catch (e) {
    if (signal?.aborted === true) throw e
    throw new RbqError('DOWNLOAD_FAILED', `cannot fetch ${url}: ${(e as Error).message}`, { cause: e })
  }
  if (!res.ok || res.body === null) {
    await res.body?.cancel()
    const what = res.status === 404 ? 'missing from the archive (HTTP 404)' : `HTTP ${res.status}`
    throw new RbqError('DOWNLOAD_FAILED', `cannot fetch ${url}: ${what}`)
  }
  return res
}

/** Small files (InRelease): the whole body. */
export async function fetchBytes(url: string, signal?: AbortSignal): Promise<Buffer> {
  const res = await get(url, signal)
  try {
    return Buffer.from(await res.arrayBuffer())
  } catch (e) {
    if (signal?.aborted === true) throw e
    throw new RbqError('DOWNLOAD_FAILED', `cannot fetch ${url}: ${(e as Error).message}`, { cause: e })
  }
}

/**
 * Ensures `dest` holds the file with the expected digest, downloading it from `url` if absent.
 * A digest mismatch (fresh download or cached copy) deletes the file and throws CHECKSUM_MISMATCH:
 * nothing built on it may be attested. HTTP and network failures throw DOWNLOAD_FAILED (transient).
 */
export async function downloadVerified(url: string, dest: string, expected: Expected, signal?: AbortSignal): Promise<void> {
  if (await exists(dest)) {
    const got = await sha256File(dest)
    if (got.sha256 === expected.sha256 && got.size === expected.size) return
    await rm(dest, { force: true })
    throw mismatch(`cached ${dest}`, expected, got)
  }
  await mkdir(dirname(dest), { recursive: true })
  const tmp = `${dest}.part-${process.pid}`
  const res = await get(url, signal)
  const hash = createHash('sha256')
  let size = 0
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length
      if (size > expected.size) {
        cb(mismatch(url, expected, { sha256: '(too long)', size }))
        return
      }
      hash.update(chunk)
      cb(null, chunk)
    }
  })
  try {
    const body = Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>)
    await pipeline(body, meter, createWriteStream(tmp), { signal })
  } catch (e) {
    await rm(tmp, { force: true })
    if (e instanceof RbqError || signal?.aborted === true) throw e
    throw new RbqError('DOWNLOAD_FAILED', `cannot fetch ${url}: ${(e as Error).message}`, { cause: e })
  }
  const got = { sha256: hash.digest('hex'), size }
  if (got.sha256 !== expected.sha256 || got.size !== expected.size) {
    await rm(tmp, { force: true })
    throw mismatch(url, expected, got)
  }
  await rename(tmp, dest)
}

function mismatch(what: string, expected: Expected, got: { sha256: string; size: number }): RbqError {
  return new RbqError(
    'CHECKSUM_MISMATCH',
    `${what}: sha256 ${got.sha256} (${got.size} bytes) differs from the signed index: ${expected.sha256} (${expected.size} bytes)`
  )
}
