/**
 * Outgoing HTTP(S) through the proxy the machine is set up with. Node 20's fetch reads no proxy
 * settings, so downloads pass `dispatcher: await proxyDispatcher(url)` (an undici ProxyAgent).
 *
 * Where the proxy comes from, first match per scheme:
 *   1. the environment: http_proxy / HTTP_PROXY, https_proxy / HTTPS_PROXY, no_proxy / NO_PROXY
 *      (curl's and wget's variables; the lowercase form wins, as in curl);
 *   2. apt's configuration, read once with `apt-config dump` (so $APT_CONFIG and
 *      /etc/apt/apt.conf.d count): Acquire::http::Proxy and Acquire::https::Proxy. "DIRECT"
 *      and "false" mean no proxy; apt's
 *      per-host forms (Acquire::http::Proxy::<host>) and Acquire::http::Proxy-Auto-Detect are
 *      not read.
 * An https:// target uses the https proxy, or the http one when only that is set (apt's rule);
 * NO_PROXY as curl reads it (bypassesProxy). http:// targets are proxied as absolute-form requests, https:// ones through a
 * CONNECT tunnel (the proxy never sees the content); digests are checked against the signed
 * index either way (download.ts).
 */
import { execFile } from 'node:child_process'
import { ProxyAgent, type Dispatcher } from 'undici'

export interface ProxySettings {
  /** Proxy URL for http:// targets, or undefined for direct connections. */
  readonly http?: string
  readonly https?: string
  /** NO_PROXY list (see bypassesProxy). */
  readonly noProxy?: string
}

/** apt's proxy settings from `apt-config dump` output. */
export function aptProxies(dump: string): { http?: string; https?: string } {
  const value = (key: string) => {
    const m = new RegExp(`^${key} "([^"]*)";$`, 'm').exec(dump)
    const v = m?.[1]?.trim()
    return v === undefined || v === '' || v === 'DIRECT' || v === 'false' ? undefined : v
  }
  const http = value('Acquire::http::Proxy')
  const https = value('Acquire::https::Proxy')
  return { ...(http === undefined ? {} : { http }), ...(https === undefined ? {} : { https }) }
}

/** The settings in effect: the environment first, then apt's (`aptDump` is `apt-config dump`'s output). */
export function proxySettings(env: NodeJS.ProcessEnv, aptDump: string | undefined): ProxySettings {
  const fromEnv = (name: string) => {
    const v = env[name.toLowerCase()] ?? env[name.toUpperCase()]
    return v === undefined || v.trim() === '' ? undefined : v.trim()
  }
  const apt = aptDump === undefined ? {} : aptProxies(aptDump)
  const http = fromEnv('http_proxy') ?? apt.http
  const https = fromEnv('https_proxy') ?? apt.https
  const noProxy = fromEnv('no_proxy')
  return { ...(http === undefined ? {} : { http }), ...(https === undefined ? {} : { https }), ...(noProxy === undefined ? {} : { noProxy }) }
}

/** `apt-config dump`, or undefined where apt is not installed or fails. */
export function readAptConfig(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('apt-config', ['dump'], { env, timeout: 10_000, maxBuffer: 8 * 1024 * 1024 }, (err, stdout) => resolve(err === null ? stdout : undefined))
  })
}

/**
 * NO_PROXY as curl reads it: entries split by commas or spaces; `*` alone bypasses the proxy for
 * every host; `example.org` (or `.example.org`, `*.example.org`) matches that domain and its
 * subdomains; `host:port` only that port; IP addresses match exactly (no CIDR ranges).
 * Loopback (localhost, 127.0.0.0/8, ::1) is never proxied, as in Go's ProxyFromEnvironment.
 */
export function bypassesProxy(noProxy: string | undefined, url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase()
  if (isLoopback(host)) return true
  if (noProxy === undefined) return false
  const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port)
  for (const raw of noProxy.split(/[\s,]+/)) {
    if (raw === '') continue
    if (raw === '*') return true
    // host, host:port, [v6], [v6]:port, or a bare IPv6 address (several colons, no port)
    const entry = raw.toLowerCase()
    const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry) ?? (entry.split(':').length === 2 ? /^([^:]+):(\d+)$/.exec(entry) : null) ?? [entry, entry]
    if (m[2] !== undefined && Number(m[2]) !== port) continue
    const domain = m[1]!.replace(/^\*?\./, '')
    if (domain !== '' && (host === domain || host.endsWith(`.${domain}`))) return true
  }
  return false
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

let cached: { key: string; settings: Promise<ProxySettings> } | undefined
const agents = new Map<string, ProxyAgent>()

/**
 * The dispatcher for a download from `url`: undefined (fetch's default, a direct connection)
 * when no proxy applies, else an agent for the proxy. apt-config runs once per process (again
 * only if the proxy environment changes); one agent per proxy keeps its connections alive.
 */
export async function proxyDispatcher(url: string, env: NodeJS.ProcessEnv = process.env): Promise<Dispatcher | undefined> {
  const key = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY', 'APT_CONFIG'].map((k) => env[k] ?? '').join('\0')
  if (cached?.key !== key) cached = { key, settings: readAptConfig(env).then((dump) => proxySettings(env, dump)) }
  const settings = await cached.settings
  const target = new URL(url)
  const proxy = target.protocol === 'https:' ? settings.https ?? settings.http : target.protocol === 'http:' ? settings.http : undefined
  if (proxy === undefined || bypassesProxy(settings.noProxy, target)) return undefined
  let agent = agents.get(proxy)
  if (agent === undefined) {
    // proxyTunnel false: http:// targets go as plain proxy requests (GET http://host/path), as
    // apt and curl send them (apt-cacher-ng and Squid's default rules refuse CONNECT to port 80);
    // https:// targets always go through a CONNECT tunnel.
    agent = new ProxyAgent({ uri: proxy, proxyTunnel: false })
    agents.set(proxy, agent)
  }
  return agent
}
