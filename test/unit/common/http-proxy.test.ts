/**
 * Downloads go through the machine's proxy: HTTP_PROXY (absolute-form GET), HTTPS_PROXY (CONNECT
 * tunnel, TLS end to end), and apt's Acquire::http::Proxy read with the real apt-config. The
 * proxy is a tiny counting one on 127.0.0.1; the targets are `.invalid` names only it can reach.
 */
import { execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { createServer as createHttpServer, request, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { aptProxies, bypassesProxy, proxySettings, readAptConfig } from '../../../common/http-proxy.js'
import { downloadVerified } from '../../../node/rebuild/debian/download.js'
import { makeTempDir } from '../../utils/tmp.js'

const BODY = Buffer.from('a package file, served only to whoever goes through the proxy\n')
const EXPECTED = { sha256: createHash('sha256').update(BODY).digest('hex'), size: BODY.length }
const DOWNLOAD_JS = fileURLToPath(new URL('../../../dist/node/rebuild/debian/download.js', import.meta.url))
const PROXY_VARS = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY', 'APT_CONFIG']

let dir: string
let cleanup: () => Promise<void>
let origin: Server
let tlsOrigin: Server
let proxy: Server
let proxyUrl: string
const seen = { get: [] as string[], connect: [] as string[] }
const tunnels = new Set<Socket>()

const portOf = (s: Server) => (s.address() as AddressInfo).port
const listen = (s: Server) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
const close = (s: Server | undefined) => new Promise<void>((resolve) => (s === undefined ? resolve() : (s.closeAllConnections(), s.close(() => resolve()))))

/** Runs `fn` with only the given proxy variables set (the test's own environment may have some). */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(PROXY_VARS.map((k) => [k, process.env[k]]))
  for (const k of PROXY_VARS) delete process.env[k]
  Object.assign(process.env, vars)
  try {
    return await fn()
  } finally {
    for (const k of PROXY_VARS) delete process.env[k]
    for (const [k, v] of Object.entries(saved)) if (v !== undefined) process.env[k] = v
  }
}

beforeAll(async () => {
  ;({ dir, cleanup } = await makeTempDir('rbq-proxy-'))
  const serve = (_req: unknown, res: import('node:http').ServerResponse) => res.end(BODY)
  origin = createHttpServer(serve)
  // A certificate for the .invalid name, trusted by the child process only (NODE_EXTRA_CA_CERTS).
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=archive.invalid',
    '-addext', 'subjectAltName=DNS:archive.invalid', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
  tlsOrigin = createHttpsServer({ key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) }, serve)
  proxy = createHttpServer((req, res) => {
    seen.get.push(`${req.method} ${req.url}`)
    const target = new URL(req.url!)
    const up = request({ host: '127.0.0.1', port: portOf(origin), path: target.pathname, method: req.method }, (r) => {
      res.writeHead(r.statusCode!, r.headers)
      r.pipe(res)
    })
    req.pipe(up)
  })
  proxy.on('connect', (req, socket: Socket, head: Buffer) => {
    seen.connect.push(`${req.method} ${req.url}`)
    const up = connect(portOf(tlsOrigin), '127.0.0.1', () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      up.write(head)
      up.pipe(socket).pipe(up)
    })
    for (const s of [socket, up]) {
      tunnels.add(s)
      s.on('error', () => s.destroy())
      s.on('close', () => tunnels.delete(s))
    }
  })
  await Promise.all([listen(origin), listen(tlsOrigin), listen(proxy)])
  proxyUrl = `http://127.0.0.1:${portOf(proxy)}`
})

afterAll(async () => {
  for (const s of tunnels) s.destroy()
  await Promise.all([close(origin), close(tlsOrigin), close(proxy)])
  await cleanup?.()
})

describe('proxy settings', () => {
  it('the environment first (lowercase wins), then apt; DIRECT means none', () => {
    const dump = 'Acquire::http::Proxy "http://apt-proxy:3142";\nAcquire::http::Proxy::deb.debian.org "DIRECT";\nAcquire::https::Proxy "DIRECT";\n'
    expect(aptProxies(dump)).toEqual({ http: 'http://apt-proxy:3142' })
    expect(proxySettings({}, dump)).toEqual({ http: 'http://apt-proxy:3142' })
    expect(proxySettings({ HTTP_PROXY: 'http://upper:1', http_proxy: 'http://lower:1', NO_PROXY: 'internal' }, dump)).toEqual({ http: 'http://lower:1', noProxy: 'internal' })
    expect(proxySettings({ HTTPS_PROXY: 'http://s:1' }, undefined)).toEqual({ https: 'http://s:1' })
    expect(proxySettings({ http_proxy: ' ' }, undefined)).toEqual({})
  })

  it('NO_PROXY as curl reads it: domains with their subdomains, ports, *', () => {
    const u = (s: string) => new URL(s)
    expect(bypassesProxy('example.org', u('http://deb.example.org/x'))).toBe(true)
    expect(bypassesProxy('.example.org', u('http://example.org/x'))).toBe(true)
    expect(bypassesProxy('*.example.org', u('https://a.b.example.org/x'))).toBe(true)
    expect(bypassesProxy('example.org', u('http://notexample.org/x'))).toBe(false)
    expect(bypassesProxy('mirror:8080, other', u('http://mirror:8080/x'))).toBe(true)
    expect(bypassesProxy('mirror:8080', u('http://mirror/x'))).toBe(false)
    expect(bypassesProxy('localhost,127.0.0.1,::1', u('http://[::1]:3000/x'))).toBe(true)
    expect(bypassesProxy('*', u('https://deb.debian.org/'))).toBe(true)
    expect(bypassesProxy(undefined, u('https://deb.debian.org/'))).toBe(false)
    // Loopback never goes through a proxy.
    for (const local of ['http://localhost:8080/', 'http://127.0.0.1/', 'http://127.1.2.3/', 'http://[::1]/']) expect(bypassesProxy(undefined, u(local))).toBe(true)
  })

  it('reads apt\'s proxy through the real apt-config ($APT_CONFIG)', async () => {
    const conf = join(dir, 'apt.conf')
    await writeFile(conf, 'Acquire::http::Proxy "http://127.0.0.1:3142/";\n')
    const dump = await readAptConfig({ ...process.env, APT_CONFIG: conf })
    expect(dump).toBeDefined()
    expect(aptProxies(dump!)).toEqual({ http: 'http://127.0.0.1:3142/' })
  })
})

describe('downloads through the proxy', () => {
  it('HTTP_PROXY: one absolute-form GET through the proxy, the file verified', async () => {
    const before = seen.get.length
    const dest = join(dir, 'env.deb')
    await withEnv({ HTTP_PROXY: proxyUrl }, () => downloadVerified('http://archive.invalid/pool/env.deb', dest, EXPECTED))
    expect(await readFile(dest)).toEqual(BODY)
    expect(seen.get.slice(before)).toEqual(['GET http://archive.invalid/pool/env.deb'])
  })

  it('apt\'s Acquire::http::Proxy when the environment sets none; NO_PROXY still applies', async () => {
    const conf = join(dir, 'apt-proxy.conf')
    await writeFile(conf, `Acquire::http::Proxy "${proxyUrl}";\n`)
    const before = seen.get.length
    await withEnv({ APT_CONFIG: conf }, () => downloadVerified('http://archive.invalid/pool/apt.deb', join(dir, 'apt.deb'), EXPECTED))
    expect(seen.get.slice(before)).toEqual(['GET http://archive.invalid/pool/apt.deb'])
    // NO_PROXY names the host: a direct connection, which cannot resolve the .invalid name.
    await expect(withEnv({ APT_CONFIG: conf, NO_PROXY: 'archive.invalid' }, () => downloadVerified('http://archive.invalid/pool/no.deb', join(dir, 'no.deb'), EXPECTED))).rejects.toThrow(/DOWNLOAD_FAILED|cannot fetch/)
    expect(seen.get.slice(before)).toHaveLength(1)
  })

  it.skipIf(!existsSync(DOWNLOAD_JS))('HTTPS_PROXY: a CONNECT tunnel, TLS verified end to end (rbq as a process)', async () => {
    const before = seen.connect.length
    const dest = join(dir, 'tls.deb')
    const script = `import { downloadVerified } from ${JSON.stringify(DOWNLOAD_JS)}; await downloadVerified('https://archive.invalid/pool/tls.deb', ${JSON.stringify(dest)}, ${JSON.stringify(EXPECTED)})`
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !PROXY_VARS.includes(k))), HTTPS_PROXY: proxyUrl, NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') }
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env, stdio: ['ignore', 'ignore', 'pipe'] })
      let err = ''
      child.stderr.on('data', (d: Buffer) => (err += d.toString()))
      child.on('close', (c) => resolve({ code: c, stderr: err }))
    })
    expect(code, stderr).toBe(0)
    expect(await readFile(dest)).toEqual(BODY)
    expect(seen.connect.slice(before)).toEqual(['CONNECT archive.invalid:443'])
  })
})
