/**
 * Node configuration: a TOML file (smol-toml) where every option has an embedded default.
 * Unknown keys and wrong values are CONFIG_INVALID errors naming the field, so a typo never
 * silently falls back to a default. DEFAULT_CONFIG_TOML documents every option (README).
 *
 * File (one file is read, never merged): `--config FILE` > `$RBQ_CONFIG` > the system config
 * file (systemConfigFile: /etc/rbq/config.toml as root or under systemd's ConfigurationDirectory=,
 * else $XDG_CONFIG_HOME/rbq/config.toml) when it exists > `<data dir>/config.toml` when it exists
 * (data dirs made before /etc/rbq keep working) > none (defaults). A data-dir config.toml passed
 * over is reported (`ignoredConfigFiles`), so it never silently stops counting.
 * Data dir precedence: `--data DIR` > `data_dir` in the file > defaultDataDir() (common/data-dir.ts).
 * Relative paths in the file are relative to the file's directory.
 */
import { isIP } from 'node:net'
import { access } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { parse as parseToml, TomlError } from 'smol-toml'
import { DEFAULT_API_HOST, DEFAULT_API_PORT } from '../protocol/api.js'
import { RbqError } from '../protocol/index.js'
import { SYNC_MAX_BATCH_FRAMES } from '../protocol/sync.js'
import { expandPath, TableReader } from './config-reader.js'
import { readFileBounded } from '../common/files.js'
import { DEFAULT_QUOTA_LIMITS, DEFAULT_STRANGER_BUDGET } from './ingest/quota.js'
import { DEFAULT_API_LIMITS_TOML, readApiLimits, type ApiLimits } from './api/limits.js'
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../common/logger.js'
import { DEFAULT_ADDRESS_BAN_EXEMPT } from './p2p/peer-penalties.js'
import { defaultDataDir, systemConfigFile } from '../common/data-dir.js'
import { DEFAULT_REBUILD_CONFIG_TOML, readRebuildConfig, type RebuildConfig } from './rebuild/rebuild-config.js'

/**
 * Default p2p listen address. A node must be reachable for the network to exist, so it listens
 * on every IPv4 interface; what it exposes there is only libp2p behind Noise, speaking
 * identify, ping, gossipsub and sync, all bounded and validated (no API, nothing unsigned is
 * ever stored). The HTTP API is a separate listener on 127.0.0.1. Set
 * `listen = ["/ip4/127.0.0.1/tcp/4777"]` for an outbound-only node.
 */
export const DEFAULT_P2P_LISTEN = '/ip4/0.0.0.0/tcp/4777'

export interface P2PConfig {
  /** Multiaddrs to listen on. */
  listen: string[]
  /** Multiaddrs to announce instead of the listen addresses (e.g. behind NAT); empty = listen addresses. */
  announce: string[]
  /** Peers dialled on start and kept connected: multiaddrs ending in /p2p/<peer id>. */
  bootstrap: string[]
  /** LAN discovery by multicast DNS. */
  mdns: boolean
  /** Connection limit (libp2p connection manager). */
  maxConnections: number
  /** Distinct peer ids banned (sync violations) from one IP that ban the IP itself; 0 = never. */
  addressBanAfter: number
  /** IPs never banned by address (default loopback, where every local node shares one IP). */
  addressBanExempt: string[]
}

export interface SyncConfig {
  /** Seconds between catch-up rounds with every connected peer (a round also runs on connect). */
  intervalSeconds: number
  /** Frames asked for per request; at most the protocol limit. */
  batchFrames: number
  /** Seconds one request may take before its stream is aborted. */
  timeoutSeconds: number
  /** Peers synchronised with at the same time. */
  maxConcurrentPeers: number
}

export interface IngestConfig {
  /** Signature-checking worker threads; undefined = one per CPU core, 0 = on the main thread. */
  workers: number | undefined
  /** Storage quota per untrusted signing key: frames. */
  maxFramesPerKey: number
  /** Storage quota per untrusted signing key: canonical frame bytes. */
  maxBytesPerKey: number
  /** Total budget for frames of keys no policy trusts, all together (oldest evicted first). */
  maxStrangerFrames: number
  /** Their canonical bytes. */
  maxStrangerBytes: number
}

/** [api]: the local HTTP API (node/api/). */
export interface ApiConfig {
  /** Serve the API (default true). */
  enabled: boolean
  /** Listen address (default 127.0.0.1: reads need no token, so keep it on loopback). */
  host: string
  /** Unset: 4778, or any free port when 4778 is taken (clients find it through <data>/api.url). */
  port: number | undefined
  /** Trust policy file (default <data dir>/policy.toml). */
  policy: string | undefined
  /** Timeouts, connection cap, body rate, batch concurrency, allowed hosts (node/api/limits.ts). */
  limits: ApiLimits
}

export interface NodeConfig {
  /** Data directory: LevelDB store, keys, seq counter (0700). */
  dataDir: string
  /** The file this config was read from; undefined for the built-in defaults. */
  configFile?: string
  /** Config files that exist but were passed over for `configFile` (a data dir's, under /etc/rbq's). */
  ignoredConfigFiles?: string[]
  log: { level: LogLevel; format: LogFormat }
  p2p: P2PConfig
  sync: SyncConfig
  ingest: IngestConfig
  api: ApiConfig
  rebuild: RebuildConfig
}

/**
 * Every option with its default, as a config file. Parsing this text gives the defaults
 * (test/unit/node/node-config.test.ts checks it), so the README can quote it verbatim.
 */
export const DEFAULT_CONFIG_TOML = `# rbq node configuration. Every option is shown with its default.
# Read from \`rbq node start --config FILE\`, else $RBQ_CONFIG, else /etc/rbq/config.toml (as root;
# $XDG_CONFIG_HOME/rbq/config.toml otherwise), else <data_dir>/config.toml, whichever exists first.

# Data directory (LevelDB store, signing.key, peer.key, signing.key.seq).
# Default: $RBQ_DATA_DIR, else /var/lib/rbq when run as root, else $XDG_DATA_HOME/rbq or ~/.local/share/rbq.
# data_dir = "/var/lib/rbq"

[log]
# fatal | error | warn | info | debug | trace | silent. Logs go to stderr.
level = "info"
# "auto": readable lines on a terminal, JSON lines otherwise (journald, files); "json" | "text".
format = "auto"

[p2p]
# Listen on every IPv4 interface so peers can reach this node; only libp2p (Noise-encrypted,
# validated protocols) is exposed. Use ["/ip4/127.0.0.1/tcp/4777"] for an outbound-only node.
listen = ["${DEFAULT_P2P_LISTEN}"]
# Addresses to announce instead (e.g. your public address behind NAT). Empty: the listen addresses.
announce = []
# Peers to dial on start and keep connected, e.g. "/ip4/203.0.113.7/tcp/4777/p2p/12D3KooW...".
bootstrap = []
# Discover peers on the local network by multicast DNS.
mdns = false
max_connections = 100
# Ban an IP (refuse and close its connections for 30 min) once this many distinct peer ids from
# it were banned for sync violations: one bad peer behind a shared NAT does not cost its
# neighbours, an attacker rotating peer ids does not come back. 0: never ban addresses.
address_ban_after = 2
# IPs never banned by address (every node on this host shares loopback).
address_ban_exempt = ${JSON.stringify(DEFAULT_ADDRESS_BAN_EXEMPT)}

[sync]
# Catch-up with each connected peer on connect and then every interval.
interval_seconds = 60
# Frames per request (1..${SYNC_MAX_BATCH_FRAMES}).
batch_frames = ${SYNC_MAX_BATCH_FRAMES}
timeout_seconds = 30
max_concurrent_peers = 4

[ingest]
# Signature-checking worker threads. Default: one per CPU core; 0 checks on the main thread.
# workers = 2
# Storage quota per signing key that your policy does not trust (frames, bytes).
max_frames_per_key = ${DEFAULT_QUOTA_LIMITS.maxFramesPerKey}
max_bytes_per_key = ${DEFAULT_QUOTA_LIMITS.maxBytesPerKey}
# Total kept from all keys your policy does not trust together (frames, bytes); beyond it their
# oldest frames are evicted. Trusted keys' frames and equivocation proofs are never evicted.
max_stranger_frames = ${DEFAULT_STRANGER_BUDGET.maxStrangerFrames}
max_stranger_bytes = ${DEFAULT_STRANGER_BUDGET.maxStrangerBytes}

[api]
# The local HTTP API (rbq verbs, the apt hook, scripts). Reads need no token, so keep it on
# loopback; write routes need the token in <data_dir>/api.token.
enabled = true
listen = "${DEFAULT_API_HOST}"
# Default ${DEFAULT_API_PORT}, or any free port when that one is taken (rbq finds the node through
# <data_dir>/api.url). A port set here is used or the node does not start.
# port = ${DEFAULT_API_PORT}
# The trust policy verdicts are computed with. Default: <data_dir>/policy.toml (rbq init writes it).
# policy = "/etc/rbq/policy.toml"
${DEFAULT_API_LIMITS_TOML}

${DEFAULT_REBUILD_CONFIG_TOML}`

function parseMultiaddr(text: string, field: string): ReturnType<typeof multiaddr> {
  try {
    return multiaddr(text)
  } catch (e) {
    throw new RbqError('CONFIG_INVALID', `config ${field}: not a multiaddr: "${text}" (${(e as Error).message})`, { field, cause: e })
  }
}

function checkIp(text: string, field: string): void {
  if (isIP(text) === 0) throw new RbqError('CONFIG_INVALID', `config ${field}: expected an IP address like "192.0.2.7" or "::1", got "${text}"`, { field })
}

function checkMultiaddr(text: string, field: string): void {
  parseMultiaddr(text, field)
}

/** The node's only transport is TCP: it listens on `/ip4|ip6/<address>/tcp/<port>`. */
function checkListenAddr(text: string, field: string): void {
  const names = parseMultiaddr(text, field)
    .getComponents()
    .map((c) => c.name)
  if (names.length !== 2 || (names[0] !== 'ip4' && names[0] !== 'ip6') || names[1] !== 'tcp') {
    throw new RbqError('CONFIG_INVALID', `config ${field}: expected a TCP listen address like "/ip4/0.0.0.0/tcp/4777", got "${text}"`, { field })
  }
}

/**
 * A bootstrap address is dialled over TCP and names the peer: `…/tcp/<port>/p2p/<peer id>`,
 * with a peer id libp2p can decode (a placeholder such as "12D3KooW…" is refused here rather
 * than crashing the network start).
 */
function checkPeerAddr(text: string, field: string): void {
  const components = parseMultiaddr(text, field).getComponents()
  const peer = components.findLast((c) => c.name === 'p2p')
  if (peer?.value === undefined) {
    throw new RbqError('CONFIG_INVALID', `config ${field}: a bootstrap address must end in /p2p/<peer id>: "${text}"`, { field })
  }
  if (!components.some((c) => c.name === 'tcp')) {
    throw new RbqError('CONFIG_INVALID', `config ${field}: a bootstrap address must be reachable over TCP (…/tcp/<port>/p2p/<peer id>): "${text}"`, { field })
  }
  try {
    peerIdFromString(peer.value)
  } catch (e) {
    throw new RbqError(
      'CONFIG_INVALID',
      `config ${field}: "${peer.value}" is not a peer id (${(e as Error).message}); use the full /p2p/… address a running node prints in \`rbq status\``,
      { field, cause: e }
    )
  }
}

export interface ConfigSource {
  /** Parsed TOML (a table); `{}` gives the defaults. */
  toml?: Record<string, unknown>
  /** Directory that relative paths in the file are relative to. */
  baseDir?: string
  /** `--data DIR`: wins over `data_dir`. */
  dataDir?: string
  env?: NodeJS.ProcessEnv
}

/** Validates a parsed TOML table into a NodeConfig (every missing option takes its default). */
export function configFromToml(source: ConfigSource = {}): NodeConfig {
  const root = new TableReader(source.toml ?? {}, '')
  const baseDir = source.baseDir ?? process.cwd()
  const fileDataDir = root.string('data_dir', undefined)
  const dataDir = source.dataDir ?? (fileDataDir === undefined ? defaultDataDir(source.env) : expandPath(fileDataDir, baseDir))

  const log = root.section('log')
  const logConfig = { level: log.oneOf('level', LOG_LEVELS, 'info'), format: log.oneOf('format', LOG_FORMATS, 'auto') }
  log.done()

  const p2p = root.section('p2p')
  const p2pConfig: P2PConfig = {
    listen: p2p.strings('listen', [DEFAULT_P2P_LISTEN], checkListenAddr),
    announce: p2p.strings('announce', [], checkMultiaddr),
    bootstrap: p2p.strings('bootstrap', [], checkPeerAddr),
    mdns: p2p.bool('mdns', false),
    maxConnections: p2p.int('max_connections', 100, 1, 10_000),
    addressBanAfter: p2p.int('address_ban_after', 2, 0, 100),
    addressBanExempt: p2p.strings('address_ban_exempt', [...DEFAULT_ADDRESS_BAN_EXEMPT], checkIp)
  }
  p2p.done()

  const sync = root.section('sync')
  const syncConfig: SyncConfig = {
    intervalSeconds: sync.int('interval_seconds', 60, 1, 86_400),
    batchFrames: sync.int('batch_frames', SYNC_MAX_BATCH_FRAMES, 1, SYNC_MAX_BATCH_FRAMES),
    timeoutSeconds: sync.int('timeout_seconds', 30, 1, 3600),
    maxConcurrentPeers: sync.int('max_concurrent_peers', 4, 1, 64)
  }
  sync.done()

  const ingest = root.section('ingest')
  const ingestConfig: IngestConfig = {
    workers: ingest.optionalInt('workers', 0, 256),
    maxFramesPerKey: ingest.int('max_frames_per_key', DEFAULT_QUOTA_LIMITS.maxFramesPerKey, 1, Number.MAX_SAFE_INTEGER),
    maxBytesPerKey: ingest.int('max_bytes_per_key', DEFAULT_QUOTA_LIMITS.maxBytesPerKey, 1, Number.MAX_SAFE_INTEGER),
    maxStrangerFrames: ingest.int('max_stranger_frames', DEFAULT_STRANGER_BUDGET.maxStrangerFrames, 0, Number.MAX_SAFE_INTEGER),
    maxStrangerBytes: ingest.int('max_stranger_bytes', DEFAULT_STRANGER_BUDGET.maxStrangerBytes, 0, Number.MAX_SAFE_INTEGER)
  }
  ingest.done()

  const api = root.section('api')
  const apiPolicy = api.string('policy', undefined)
  const apiConfig: ApiConfig = {
    enabled: api.bool('enabled', true),
    host: api.string('listen', DEFAULT_API_HOST),
    port: api.optionalInt('port', 0, 65_535),
    policy: apiPolicy === undefined ? undefined : expandPath(apiPolicy, baseDir),
    limits: readApiLimits(api)
  }
  if (isIP(apiConfig.host) === 0 && apiConfig.host !== 'localhost') {
    throw new RbqError('CONFIG_INVALID', `config api.listen: expected an IP address such as ${DEFAULT_API_HOST}, got "${apiConfig.host}"`, { field: 'api.listen' })
  }
  api.done()

  const rebuildConfig = readRebuildConfig(root.section('rebuild'), baseDir)

  root.done()
  return { dataDir: resolve(dataDir), log: logConfig, p2p: p2pConfig, sync: syncConfig, ingest: ingestConfig, api: apiConfig, rebuild: rebuildConfig }
}

/** Parses TOML text; syntax errors become CONFIG_INVALID with the line and column. */
export function parseConfigText(text: string, source: Omit<ConfigSource, 'toml'> & { name?: string } = {}): NodeConfig {
  let toml: Record<string, unknown>
  try {
    toml = parseToml(text) as Record<string, unknown>
  } catch (e) {
    if (e instanceof TomlError) {
      throw new RbqError('CONFIG_INVALID', `config ${source.name ?? ''}: TOML syntax error at line ${e.line}, column ${e.column}: ${e.message.split('\n')[0]}`, { cause: e })
    }
    throw e
  }
  return configFromToml({ ...source, toml })
}

/** A config file is small; anything bigger is a mistake. */
const MAX_CONFIG_BYTES = 256 * 1024

/** Name of the config file a node reads from its data dir when no `--config` is given. */
export const DATA_DIR_CONFIG_FILE = 'config.toml'

/**
 * Finds and loads the config file (precedence in the module comment), else the embedded
 * defaults. `file` is `--config`, `dataDir` is `--data` (it stays the data dir).
 */
export async function loadConfig(options: { file?: string; dataDir?: string; env?: NodeJS.ProcessEnv } = {}): Promise<NodeConfig> {
  const envOption = options.env ? { env: options.env } : {}
  const env = options.env ?? process.env
  let dataDir = options.dataDir === undefined ? undefined : resolve(options.dataDir)
  let path = options.file ?? (env.RBQ_CONFIG ? env.RBQ_CONFIG : undefined)
  path = path === undefined ? undefined : resolve(path)
  const dataDirFile = join(dataDir ?? resolve(defaultDataDir(options.env)), DATA_DIR_CONFIG_FILE)
  if (path === undefined) {
    const system = systemConfigFile(env)
    if (await fileExists(system)) path = system
    else if (await fileExists(dataDirFile)) {
      path = dataDirFile
      dataDir ??= dirname(dataDirFile)
    } else return configFromToml({ dataDir: dataDir ?? dirname(dataDirFile), ...envOption })
  }
  const ignored = options.file === undefined && path !== dataDirFile && (await fileExists(dataDirFile)) ? { ignoredConfigFiles: [dataDirFile] } : {}
  const bytes = await readFileBounded(path, MAX_CONFIG_BYTES, 'config file')
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw new RbqError('CONFIG_INVALID', `config ${path}: not valid UTF-8`)
  }
  try {
    return { ...parseConfigText(text, { name: path, baseDir: dirname(path), ...(dataDir === undefined ? {} : { dataDir }), ...envOption }), configFile: path, ...ignored }
  } catch (e) {
    // Name the file too: which config was read is not obvious (--config, data dir, defaults).
    if (e instanceof RbqError && e.field !== undefined) throw new RbqError(e.code, `${path}: ${e.message}`, { field: e.field, cause: e })
    throw e
  }
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}
