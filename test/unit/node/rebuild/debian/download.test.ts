import { createHash } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isRbqError } from '../../../../../protocol/errors.js'
import { downloadVerified, fetchBytes } from '../../../../../node/rebuild/debian/download.js'
import { sha256File } from '../../../../../common/files.js'
import { makeTempDir } from '../../../../utils/tmp.js'

const BODY = Buffer.from('Format: 3.0 (native)\nSource: hello\n')
const GOOD = { sha256: createHash('sha256').update(BODY).digest('hex'), size: BODY.length }

describe('downloads checked against a signed digest (loopback server)', () => {
  let server: Server
  let base: string
  let tmp: { dir: string; cleanup: () => Promise<void> }

  beforeAll(async () => {
    tmp = await makeTempDir('rbq-download-')
    server = createServer((req, res) => {
      if (req.url === '/file') res.writeHead(200).end(BODY)
      else if (req.url === '/tampered') res.writeHead(200).end(Buffer.from(BODY.toString().replace('hello', 'hell0')))
      else if (req.url === '/long') res.writeHead(200).end(Buffer.concat([BODY, Buffer.alloc(1 << 20)]))
      else res.writeHead(404).end()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve))
    await tmp.cleanup()
  })

  async function attempt(url: string, dest: string): Promise<unknown> {
    return downloadVerified(url, dest, GOOD).then(() => undefined, (e: unknown) => e)
  }

  it('stores a file whose digest matches', async () => {
    const dest = join(tmp.dir, 'ok', 'hello.dsc')
    expect(await attempt(`${base}/file`, dest)).toBeUndefined()
    expect(await sha256File(dest)).toEqual(GOOD)
    expect(await attempt('http://127.0.0.1:1/unused-because-cached', dest)).toBeUndefined() // cache hit, re-checked
  })

  it('refuses a body with another digest (same size), keeping nothing', async () => {
    const dest = join(tmp.dir, 'bad', 'hello.dsc')
    const err = await attempt(`${base}/tampered`, dest)
    expect(isRbqError(err, 'CHECKSUM_MISMATCH'), String(err)).toBe(true)
    expect(await readdir(join(tmp.dir, 'bad'))).toEqual([])
  })

  it('stops reading a body longer than announced', async () => {
    const err = await attempt(`${base}/long`, join(tmp.dir, 'long', 'x'))
    expect(isRbqError(err, 'CHECKSUM_MISMATCH'), String(err)).toBe(true)
    expect(await readdir(join(tmp.dir, 'long'))).toEqual([])
  })

  it('refuses and removes a corrupted cached copy, so a retry downloads it again', async () => {
    const dest = join(tmp.dir, 'cache', 'hello.dsc')
    await attempt(`${base}/file`, dest)
    await writeFile(dest, 'corrupted')
    expect(isRbqError(await attempt(`${base}/file`, dest), 'CHECKSUM_MISMATCH')).toBe(true)
    expect(await attempt(`${base}/file`, dest)).toBeUndefined()
    expect(await readFile(dest)).toEqual(BODY)
  })

  it('HTTP 404 and unreachable hosts are DOWNLOAD_FAILED (transient)', async () => {
    const e404 = await attempt(`${base}/missing.tar.xz`, join(tmp.dir, 'm', 'x'))
    expect(isRbqError(e404, 'DOWNLOAD_FAILED')).toBe(true)
    expect(String((e404 as Error).message)).toContain('404')
    expect(isRbqError(await attempt('http://127.0.0.1:1/x', join(tmp.dir, 'm', 'y')), 'DOWNLOAD_FAILED')).toBe(true)
    expect(isRbqError(await fetchBytes(`${base}/nope`).catch((e: unknown) => e), 'DOWNLOAD_FAILED')).toBe(true)
  })

  it('an abort propagates as the abort, not as a download failure', async () => {
    const ac = new AbortController()
    ac.abort()
    const err = await downloadVerified(`${base}/file`, join(tmp.dir, 'abort', 'x'), GOOD, ac.signal).catch((e: unknown) => e)
    expect(isRbqError(err)).toBe(false)
    expect((err as Error).name).toBe('AbortError')
  })
})
