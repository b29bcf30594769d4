import { mkdir, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { isRbqError, type RbqError } from '../../../protocol/index.js'
import { configFromToml, DEFAULT_CONFIG_TOML, DEFAULT_P2P_LISTEN, loadConfig, parseConfigText } from '../../../node/node-config.js'
import { makeTempDir } from '../../utils/tmp.js'

const env = { RBQ_DATA_DIR: '/srv/rbq' }

function configError(fn: () => unknown): RbqError {
  try {
    fn()
  } catch (e) {
    if (isRbqError(e, 'CONFIG_INVALID')) return e
    throw e
  }
  throw new Error('expected CONFIG_INVALID')
}

describe('config', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c()
  })

  it('has a default for every option', () => {
    const config = configFromToml({ env })
    // Sections of other subsystems (api, …) are tested with them.
    expect(config).toMatchObject({
      dataDir: '/srv/rbq',
      log: { level: 'info' },
      p2p: { listen: [DEFAULT_P2P_LISTEN], announce: [], bootstrap: [], mdns: false, maxConnections: 100, addressBanAfter: 2, addressBanExempt: ['127.0.0.1', '::1'] },
      sync: { intervalSeconds: 60, batchFrames: 512, timeoutSeconds: 30, maxConcurrentPeers: 4 },
      ingest: { workers: undefined, maxFramesPerKey: 100_000, maxBytesPerKey: 256 * 1024 * 1024 },
      api: { enabled: true, host: '127.0.0.1', port: undefined, policy: undefined }
    })
  })

  it('documents exactly the defaults (DEFAULT_CONFIG_TOML parses to them)', () => {
    expect(parseConfigText(DEFAULT_CONFIG_TOML, { env })).toEqual(configFromToml({ env }))
  })

  it('reads every option', () => {
    const config = parseConfigText(
      `data_dir = "/data"
[log]
level = "debug"
[p2p]
listen = ["/ip4/127.0.0.1/tcp/5000", "/ip6/::1/tcp/5000"]
announce = ["/dns4/rbq.example.org/tcp/5000"]
bootstrap = ["/ip4/203.0.113.7/tcp/4777/p2p/12D3KooWBaVYEWBWeE9EBHpBSGWnUqBxqcwhAUxTsxVAxedSkGf5"]
mdns = true
max_connections = 20
address_ban_after = 3
address_ban_exempt = ["192.0.2.7", "2001:db8::1"]
[sync]
interval_seconds = 5
batch_frames = 64
timeout_seconds = 3
max_concurrent_peers = 1
[ingest]
workers = 0
max_frames_per_key = 10
max_bytes_per_key = 1000
`,
      { env }
    )
    expect(config.dataDir).toBe('/data')
    expect(config.log.level).toBe('debug')
    expect(config.p2p).toEqual({
      listen: ['/ip4/127.0.0.1/tcp/5000', '/ip6/::1/tcp/5000'],
      announce: ['/dns4/rbq.example.org/tcp/5000'],
      bootstrap: ['/ip4/203.0.113.7/tcp/4777/p2p/12D3KooWBaVYEWBWeE9EBHpBSGWnUqBxqcwhAUxTsxVAxedSkGf5'],
      mdns: true,
      maxConnections: 20,
      addressBanAfter: 3,
      addressBanExempt: ['192.0.2.7', '2001:db8::1']
    })
    expect(config.sync).toEqual({ intervalSeconds: 5, batchFrames: 64, timeoutSeconds: 3, maxConcurrentPeers: 1 })
    expect(config.ingest).toEqual({ workers: 0, maxFramesPerKey: 10, maxBytesPerKey: 1000, maxStrangerFrames: 200_000, maxStrangerBytes: 300 * 1024 * 1024 })
  })

  it('names the field of every mistake', () => {
    const cases: [string, string][] = [
      ['[p2p]\nlisten = "/ip4/0.0.0.0/tcp/1"', 'p2p.listen'],
      ['[p2p]\nlisten = ["not a multiaddr"]', 'p2p.listen[0]'],
      ['[p2p]\nbootstrap = ["/ip4/203.0.113.7/tcp/4777"]', 'p2p.bootstrap[0]'],
      // the README's placeholder: a truncated peer id once crashed libp2p's start (issue 15)
      ['[p2p]\nbootstrap = ["/ip4/203.0.113.7/tcp/4777/p2p/12D3KooW…"]', 'p2p.bootstrap[0]'],
      ['[p2p]\nbootstrap = ["/ip4/203.0.113.7/tcp/4777/p2p/QmNotAPeerId"]', 'p2p.bootstrap[0]'],
      ['[p2p]\nbootstrap = ["/ip4/203.0.113.7/udp/4777/p2p/12D3KooWBaVYEWBWeE9EBHpBSGWnUqBxqcwhAUxTsxVAxedSkGf5"]', 'p2p.bootstrap[0]'],
      ['[p2p]\nlisten = ["/ip4/127.0.0.1/tcp/1", "/ip4/0.0.0.0/udp/4777"]', 'p2p.listen[1]'],
      ['[p2p]\nannounce = ["/nonsense"]', 'p2p.announce[0]'],
      ['[p2p]\nmdns = "yes"', 'p2p.mdns'],
      ['[p2p]\nlisen = []', 'p2p.lisen'],
      ['[p2p]\naddress_ban_exempt = ["localhost"]', 'p2p.address_ban_exempt[0]'],
      ['[p2p]\naddress_ban_after = -1', 'p2p.address_ban_after'],
      ['[sync]\nbatch_frames = 513', 'sync.batch_frames'],
      ['[sync]\ninterval_seconds = 1.5', 'sync.interval_seconds'],
      ['[log]\nlevel = "loud"', 'log.level'],
      ['sync = 3', 'sync'],
      ['[rebuilds]\nshare = 1', 'rebuilds'],
      ['data_dir = ""', 'data_dir']
    ]
    for (const [text, field] of cases) {
      const e = configError(() => parseConfigText(text, { env }))
      expect([text, e.field]).toEqual([text, field])
      expect(e.message).toContain(field)
    }
  })

  it('reports TOML syntax errors with their line', () => {
    const e = configError(() => parseConfigText('[p2p]\nlisten = [', { env, name: 'x.toml' }))
    expect(e.message).toMatch(/x\.toml: TOML syntax error at line \d+/)
  })

  it('resolves data_dir against the file, expands ~, and lets --data win', async () => {
    const { dir, cleanup } = await makeTempDir()
    cleanups.push(cleanup)
    await mkdir(join(dir, 'etc'))
    const file = join(dir, 'etc', 'rbq.toml')
    await writeFile(file, 'data_dir = "../state"\n')
    expect((await loadConfig({ file, env })).dataDir).toBe(join(dir, 'state'))
    expect((await loadConfig({ file, dataDir: join(dir, 'cli'), env })).dataDir).toBe(join(dir, 'cli'))
    expect(parseConfigText('data_dir = "~/rbq"', { env }).dataDir).toBe(join(homedir(), 'rbq'))
    expect((await loadConfig({ env })).dataDir).toBe('/srv/rbq')
  })

  it('without --config, reads config.toml from the data dir, which stays the data dir', async () => {
    const { dir, cleanup } = await makeTempDir()
    cleanups.push(cleanup)
    expect((await loadConfig({ dataDir: dir, env })).log.level).toBe('info')
    await writeFile(join(dir, 'config.toml'), 'data_dir = "/elsewhere"\n[log]\nlevel = "warn"\n')
    const config = await loadConfig({ dataDir: dir, env })
    expect([config.dataDir, config.log.level]).toEqual([dir, 'warn'])
    expect((await loadConfig({ env: { RBQ_DATA_DIR: dir } })).log.level).toBe('warn')
  })

  it('a missing config file is a typed error', async () => {
    await expect(loadConfig({ file: '/nonexistent/rbq.toml', env })).rejects.toSatisfy((e) => isRbqError(e, 'FILE_NOT_FOUND'))
  })
})
