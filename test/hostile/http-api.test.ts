/**
 * The HTTP API of a real node under hostile clients, over real loopback sockets (issue 14 item 3
 * and the HTTP parts of item 4): slow-body and slow-header sockets, foreign Host and Origin
 * headers, big batch verdicts in parallel with single verdicts, the same invalid frame sent
 * concurrently, and every refusal in the documented `{ error: { code, message } }` shape.
 *
 * The node is a real `rbq node start` process, as a user's apt hook or browser meets it: the
 * clients here (parsing 10k-item answers, holding thousands of sockets) do not share its event
 * loop, so the latencies printed are the node's, not this process's.
 *
 * Quick form in `npm test`; `npm run hostile` (RBQ_HOSTILE=long) uses bigger counts. Latencies are
 * printed, never asserted (no timing thresholds in tests).
 */
import { readFile, writeFile } from 'node:fs/promises'
import { connect as tcpConnect, type Socket } from 'node:net'
import { join } from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openFilesLimit } from '../../node/api/limits.js'
import { formatPolicy } from '../../node/consensus/index.js'
import { policyPath } from '../../node/trust/policy-file.js'
import { sha256Hex } from '../../protocol/index.js'
import { attest, DEB, key, PKG, policy } from '../unit/node/consensus/fixtures.js'
import { RBQ_BIN } from '../utils/cli.js'
import { waitFor } from '../utils/network.js'
import { nodeProcessConfig, residentBytes, spawnNodeProcess, userEnv, type NodeProcess } from '../utils/node-process.js'
import { makeTempDir } from '../utils/tmp.js'

const LONG = process.env.RBQ_HOSTILE === 'long'
/** The client end of every socket lives in this process: stay within its open-files limit. */
const SLOW_SOCKETS = Math.min(LONG ? 6000 : 2000, (openFilesLimit() ?? 65_536) - 512)
const PARALLEL_BATCHES = LONG ? 6 : 2
const BATCH_ITEMS = 10_000
const PACKAGES = LONG ? 400 : 100

const ALICE = key('hostile http alice')
const pkgOf = (i: number) => `pkg:deb/debian/hostile${i}@1.0-1?arch=source`
const digestOf = (i: number) => sha256Hex(`hostile artifact ${i}`)

const tmp = await makeTempDir('rbq-hostile-http-')
let running: NodeProcess | undefined
let port = 0
let base = ''
let token = ''

const CONFIG = nodeProcessConfig({
  ingest: ['workers = 1'],
  api: ['allowed_hosts = ["rbq.test"]', 'headers_timeout_seconds = 1', 'request_timeout_seconds = 4', 'max_batches = 2', `max_queued_batches = ${PARALLEL_BATCHES}`]
})

beforeAll(async () => {
  await writeFile(join(tmp.dir, 'config.toml'), CONFIG)
  await writeFile(policyPath(tmp.dir), formatPolicy(policy({ threshold: 1, roots: [{ name: 'alice', key: ALICE }] })))
  running = spawnNodeProcess(process.execPath, [RBQ_BIN, 'node', 'start', '--data', tmp.dir], { env: userEnv({}), cwd: tmp.dir })
  await running.waitForLog('node started')
  base = (await readFile(join(tmp.dir, 'api.url'), 'utf8')).trim()
  port = Number(new URL(base).port)
  token = (await readFile(join(tmp.dir, 'api.token'), 'utf8')).trim()
  // Statements about PACKAGES packages, so batch verdicts have real work to do.
  const frames = Array.from({ length: PACKAGES }, (_, i) => attest(ALICE, { seq: i + 1, pkg: pkgOf(i), sha256: digestOf(i) }))
  const body = frames.map((f) => Buffer.from(f.bytes).toString('utf8')).join('\n')
  const res = await fetch(`${base}/v1/attestations`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' }, body })
  expect(res.status).toBe(200)
  const { results } = (await res.json()) as { results: { status: string }[] }
  expect(results.every((r) => r.status === 'stored')).toBe(true)
}, 60_000)

afterAll(async () => {
  await running?.stop()
  await tmp.cleanup()
})

// --- raw HTTP over node:net -------------------------------------------------------------------

interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/** Sends `request` as is and reads the answer until the server closes or the body is complete. */
function raw(request: string | Buffer, timeoutMs = 10_000): Promise<RawResponse | undefined> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no answer within ${timeoutMs} ms`))
    }, timeoutMs)
    const done = () => {
      clearTimeout(timer)
      resolve(parseResponse(Buffer.concat(chunks)))
    }
    socket.on('data', (c) => {
      chunks.push(c)
      const parsed = parseResponse(Buffer.concat(chunks))
      if (parsed !== undefined && parsed.headers['content-length'] !== undefined && Buffer.byteLength(parsed.body) >= Number(parsed.headers['content-length'])) {
        socket.destroy()
        done()
      }
    })
    socket.on('error', () => undefined)
    socket.on('close', done)
    socket.write(request)
  })
}

function parseResponse(bytes: Buffer): RawResponse | undefined {
  const text = bytes.toString('utf8')
  const end = text.indexOf('\r\n\r\n')
  if (end < 0) return undefined
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n')
  const headers: Record<string, string> = {}
  for (const l of lines) {
    const i = l.indexOf(':')
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
  }
  let body = text.slice(end + 4)
  if (headers['transfer-encoding'] === 'chunked') {
    let out = ''
    for (let at = 0; ; ) {
      const nl = body.indexOf('\r\n', at)
      if (nl < 0) break
      const size = parseInt(body.slice(at, nl), 16)
      if (!(size > 0)) break
      out += body.slice(nl + 2, nl + 2 + size)
      at = nl + 2 + size + 2
    }
    body = out
  }
  return { status: Number(statusLine!.split(' ')[1]), headers, body }
}

const get = (path: string, headers: Record<string, string> = {}) =>
  raw(`GET ${path} HTTP/1.1\r\n${Object.entries({ host: `127.0.0.1:${port}`, connection: 'close', ...headers }).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`)

function post(path: string, body: string | Buffer, headers: Record<string, string> = {}) {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body
  const all = { host: `127.0.0.1:${port}`, connection: 'close', 'content-type': 'application/json', 'content-length': String(bytes.length), ...headers }
  return raw(Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`), bytes]))
}

/** The documented error body, with its code. */
function expectError(res: RawResponse | undefined, status: number, code: string): { code: string; message: string; field?: string } {
  expect(res?.status, res?.body).toBe(status)
  expect(res!.headers['content-type']).toMatch(/^application\/json/)
  const body = JSON.parse(res!.body) as { error: { code: string; message: string; field?: string } }
  expect(Object.keys(body)).toEqual(['error'])
  expect(body.error.code).toBe(code)
  expect(typeof body.error.message).toBe('string')
  return body.error
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN
const ms = (n: number) => `${n.toFixed(1)} ms`

// --- tests ----------------------------------------------------------------------------------------

describe('HTTP API under hostile clients', () => {
  it(`${SLOW_SOCKETS} slow-body sockets: a normal request is still answered; the slow bodies are cut (408, or closed at the connection cap)`, async () => {
    const sockets: Socket[] = []
    const outcomes: Promise<'408' | 'closed'>[] = []
    for (let i = 0; i < SLOW_SOCKETS; i++) {
      const s = tcpConnect(port, '127.0.0.1')
      sockets.push(s)
      outcomes.push(
        new Promise((resolve) => {
          let text = ''
          s.on('data', (c) => (text += c.toString()))
          s.on('error', () => undefined)
          s.on('close', () => resolve(text.startsWith('HTTP/1.1 408') && text.includes('"REQUEST_TIMEOUT"') ? '408' : 'closed'))
        })
      )
      s.write(`POST /v1/verdicts HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{"arti`)
      // Let the server accept in bursts rather than one giant backlog.
      if (i % 200 === 199) await new Promise((r) => setImmediate(r))
    }
    const started = performance.now()
    const res = await fetch(`${base}/v1/status`)
    const answeredMs = performance.now() - started
    expect(res.status).toBe(200)
    const results = await Promise.all(outcomes)
    const cut = results.filter((r) => r === '408').length
    console.log(`[hostile] ${SLOW_SOCKETS} slow-body sockets: /v1/status answered in ${ms(answeredMs)}; ${cut} cut with 408, ${SLOW_SOCKETS - cut} closed at the connection cap`)
    // Every slow socket was let go by the server (none is held forever).
    expect(results.length).toBe(SLOW_SOCKETS)
    expect(cut).toBeGreaterThan(0)
    for (const s of sockets) s.destroy()
    expect((await fetch(`${base}/v1/status`)).status).toBe(200)
  })

  it('slow headers are cut with 408 in the error shape', async () => {
    const res = await new Promise<string>((resolve) => {
      const s = tcpConnect(port, '127.0.0.1')
      let text = ''
      s.on('data', (c) => (text += c.toString()))
      s.on('error', () => undefined)
      s.on('close', () => resolve(text))
      s.write(`GET /v1/status HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n`)
    })
    expectError(parseResponse(Buffer.from(res)), 408, 'REQUEST_TIMEOUT')
  })

  it('a foreign Host is refused (421), loopback names on the API port and configured names are answered', async () => {
    for (const host of ['evil.example', `evil.example:${port}`, `127.0.0.1:${port + 1}`, `localhost.evil.example:${port}`, '']) {
      const e = expectError(await get('/v1/status', { host }), 421, 'HOST_NOT_ALLOWED')
      expect(e.field).toBe('host')
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`, 'rbq.test', `rbq.test:${port}`]) {
      expect((await get('/v1/status', { host }))?.status, host).toBe(200)
    }
    // Before the token check: a rebinding page learns nothing, not even that a token is needed.
    expectError(await post('/v1/attestations', '{}', { host: `evil.example:${port}` }), 421, 'HOST_NOT_ALLOWED')
  })

  it('browser requests from another origin are refused (403); the API\'s own origin is not', async () => {
    const batch = JSON.stringify({ artifacts: [{ sha256: digestOf(0) }] })
    expectError(await post('/v1/verdicts', batch, { origin: 'http://evil.example' }), 403, 'ORIGIN_NOT_ALLOWED')
    expectError(await post('/v1/verdicts', batch, { origin: 'null' }), 403, 'ORIGIN_NOT_ALLOWED')
    expectError(await post('/v1/rebuilds', '{"purl":"pkg:deb/debian/hello"}', { origin: `http://localhost:${port + 1}`, authorization: `Bearer ${token}` }), 403, 'ORIGIN_NOT_ALLOWED')
    expect((await post('/v1/verdicts', batch, { origin: `http://127.0.0.1:${port}` }))?.status).toBe(200)
  })

  it(`${PARALLEL_BATCHES} batches of ${BATCH_ITEMS} verdicts in parallel: single verdicts keep being answered`, async () => {
    const items = Array.from({ length: BATCH_ITEMS }, (_, i) =>
      i % 3 === 0 ? { sha256: digestOf(i % PACKAGES) } : { sha256: digestOf(i % PACKAGES), package: pkgOf(i % PACKAGES), artifact: DEB }
    )
    const body = JSON.stringify({ artifacts: items })
    const pid = running!.child.pid!
    const rssBefore = await residentBytes(pid)
    let rssPeak = rssBefore
    const sampler = setInterval(() => void residentBytes(pid).then((r) => (rssPeak = Math.max(rssPeak, r)), () => undefined), 250)
    const loopDelay = monitorEventLoopDelay({ resolution: 5 })
    loopDelay.enable()
    let batchesDone = 0
    let batchBytes = 0
    const batchMs: number[] = []
    const batches = Array.from({ length: PARALLEL_BATCHES }, async () => {
      const started = performance.now()
      const res = await fetch(`${base}/v1/verdicts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      const text = await res.text()
      batchBytes = text.length
      batchMs.push(performance.now() - started)
      batchesDone++
      return { status: res.status, text }
    })
    const singles: number[] = []
    const statuses: number[] = []
    const q = new URLSearchParams({ sha256: digestOf(1), package: pkgOf(1), artifact: DEB })
    // Single verdicts one after another for as long as the batches run (at least 20).
    while (batchesDone < PARALLEL_BATCHES || singles.length < 20) {
      const started = performance.now()
      const res = await fetch(`${base}/v1/verdict?${q}`)
      await res.arrayBuffer()
      singles.push(performance.now() - started)
      statuses.push(res.status)
    }
    const answered = await Promise.all(batches)
    loopDelay.disable()
    clearInterval(sampler)
    for (const b of answered) {
      expect(b.status).toBe(200)
      const json = JSON.parse(b.text) as { results: { status: string }[] }
      expect(json.results).toHaveLength(BATCH_ITEMS)
      expect(json.results[1]!.status).toBe('reproduced')
    }
    expect(statuses.every((s) => s === 200)).toBe(true)
    const sorted = [...singles].sort((a, b) => a - b)
    console.log(
      `[hostile] ${PARALLEL_BATCHES}×${BATCH_ITEMS}-item batches in parallel (${Math.max(...batchMs).toFixed(0)} ms for the slowest, ${(batchBytes / 2 ** 20).toFixed(1)} MiB answer each): ` +
        `${singles.length} single verdicts, p50 ${ms(quantile(sorted, 0.5))}, p99 ${ms(quantile(sorted, 0.99))}, max ${ms(sorted[sorted.length - 1]!)}; ` +
        `this client's event-loop delay p99 ${ms(loopDelay.percentile(99) / 1e6)}, max ${ms(loopDelay.max / 1e6)}; ` +
        `node RSS ${Math.round(rssBefore / 2 ** 20)} MiB before, ${Math.round(rssPeak / 2 ** 20)} MiB peak`
    )
  })

  it('batches beyond the running and queued limit are refused with 503 QUEUE_FULL and Retry-After', async () => {
    const body = JSON.stringify({ artifacts: Array.from({ length: 1000 }, (_, i) => ({ sha256: digestOf(i % PACKAGES) })) })
    const n = 2 + PARALLEL_BATCHES + 4
    const answers = await Promise.all(Array.from({ length: n }, () => post('/v1/verdicts', body)))
    const refused = answers.filter((a) => a?.status === 503)
    expect(refused.length).toBeGreaterThan(0)
    for (const r of refused) {
      expectError(r, 503, 'QUEUE_FULL')
      expect(r!.headers['retry-after']).toBe('1')
    }
    expect(answers.filter((a) => a?.status === 200).length).toBe(n - refused.length)
    console.log(`[hostile] ${n} batches at once: ${n - refused.length} answered, ${refused.length} refused with 503 + Retry-After`)
  })

  it('the same invalid frame sent concurrently is rejected every time, never answered `duplicate`', async () => {
    const text = Buffer.from(attest(ALICE, { seq: 9999, pkg: PKG }).bytes).toString('utf8')
    const at = text.indexOf('"sig":"') + 7
    const bad = text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1)
    const answers = await Promise.all(Array.from({ length: 8 }, () => post('/v1/attestations', bad, { authorization: `Bearer ${token}` })))
    for (const a of answers) expectError(a, 400, 'SIGNATURE_INVALID')
    // As JSON lines, several copies in one upload: each line rejected.
    const lines = await post('/v1/attestations', [bad, bad, bad].join('\n'), { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' })
    const { results } = JSON.parse(lines!.body) as { results: { status: string; error?: { code: string } }[] }
    expect(results.map((r) => `${r.status} ${r.error?.code}`)).toEqual(Array(3).fill('rejected SIGNATURE_INVALID'))
  })

  it("fastify's and node's own refusals use the documented error body", async () => {
    expectError(await get('/v1/nothing-here'), 404, 'NOT_FOUND')
    expectError(await get(`/v1/attestations/${'a'.repeat(200)}`), 414, 'URI_TOO_LONG')
    expectError(await get(`/v1/status?${'x'.repeat(9000)}`), 414, 'URI_TOO_LONG')
    expectError(await get('/v1/attestations/%zz'), 400, 'SCHEMA_INVALID')
    expectError(await get('/v1/status', { 'x-big': 'y'.repeat(20_000) }), 431, 'HEADERS_TOO_LARGE')
    expectError(await raw('BLAH BLAH BLAH\r\n\r\n'), 400, 'HTTP_MALFORMED')
    expectError(await raw(`GET /v1/status HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\ncontent-length: x\r\n\r\n`), 400, 'HTTP_MALFORMED')
    expectError(await post('/v1/trust/explain', JSON.stringify({ key: 'a'.repeat(300_000) })), 413, 'INPUT_TOO_LARGE')
    expectError(await post('/v1/verdicts', 'hello', { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE')
    expectError(await post('/v1/verdicts', '{"artifacts": [', {}), 400, 'JSON_MALFORMED')
  })

  it('invalid UTF-8 inside JSON strings is refused', async () => {
    const body = Buffer.concat([Buffer.from('{"artifacts":[{"sha256":"'), Buffer.from([0xff, 0xfe]), Buffer.from(`${'0'.repeat(62)}"}]}`)])
    const e = expectError(await post('/v1/verdicts', body), 400, 'JSON_MALFORMED')
    expect(e.message).toMatch(/UTF-8/)
    const overlong = Buffer.concat([Buffer.from('{"key":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')])
    expectError(await post('/v1/trust/explain', overlong), 400, 'JSON_MALFORMED')
  })

  it('loose numbers in query strings are refused, naming the parameter', async () => {
    const pkg = encodeURIComponent(pkgOf(0))
    for (const limit of ['1e9', '1.5', 'true', '0x10', ' 7', '1e2', '']) {
      const e = expectError(await get(`/v1/attestations?package=${pkg}&limit=${encodeURIComponent(limit)}`), 400, 'SCHEMA_INVALID')
      expect(e.field).toBe('limit')
    }
    expect((await get(`/v1/attestations?package=${pkg}&limit=5`))?.status).toBe(200)
  })

  it('counts what it refused in /metrics', async () => {
    const metrics = await waitFor(async () => {
      const text = await (await fetch(`${base}/metrics`)).text()
      return /rbq_api_refused_total\{reason="host"\} [1-9]/.test(text) ? text : false
    })
    expect(metrics).toMatch(/rbq_api_refused_total\{reason="body_rate"\} [1-9]/)
    expect(metrics).toMatch(/rbq_api_connections \d+/)
  })
})
