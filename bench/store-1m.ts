/**
 * Store size and node memory at 1M stored frames (issue 13; not part of `npm test`: minutes).
 *
 *   npm run build && node dist/bench/store-1m.js [frames=1000000] [keys=1000] [extra=20000] [--quick] [--json FILE]
 *
 * 1. Fills a node's store with `frames` signed attestations through the Store API (signed here,
 *    not re-verified: the bench signed them) and measures the LevelDB directory on disk:
 *      store-per-frame   bytes on disk per frame        goal ≤ 1.5 × frame-bytes (the mean frame)
 * 2. Starts a real node on that store in a child process and samples its RSS (/proc; also its
 *    anonymous part, without LevelDB's memory-mapped table files):
 *      rss-idle          peak RSS over a few seconds after start, nothing to do   goal ≤ 250 MB
 *      rss-catchup       peak RSS while it catches up `extra` new frames through /rbq/sync/1.0.0
 *                        from a peer (this process), which meanwhile also syncs from it
 *                                                                                  goal ≤ 250 MB
 */
import '../common/polyfills.js'
import { fork } from 'node:child_process'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { multiaddr } from '@multiformats/multiaddr'
import { generateSigningKey, openStoredFrame, type SigningKey, type VerifiedFrame } from '../protocol/index.js'
import { Store } from '../node/db/store.js'
import { startBenchNode, waitUntil } from './network-lib.js'
import { BenchReport, benchFlags, numberArg } from './report.js'
import { benchFrameBytes } from './verify-lib.js'

const flags = benchFlags('store-1m')
const FRAMES = numberArg(flags, 'frames', 0, 1_000_000, 20_000)
const KEYS = numberArg(flags, 'keys', 1, 1000, 100)
const EXTRA = numberArg(flags, 'extra', 2, 20_000, 2_000)
const MB = 1e6

type ChildMessage = { type: 'ready'; address: string } | { type: 'count'; frames: number }

/**
 * The bench's keys are trusted by no policy, so the stranger budget (default 200k frames) would
 * evict most of the store on the first write: both nodes get a budget that holds every frame,
 * as a node whose policy trusts these keys would keep them.
 */
const HOLD_EVERYTHING = { ingest: { max_stranger_frames: 100_000_000, max_stranger_bytes: 1e12, max_frames_per_key: 100_000_000, max_bytes_per_key: 1e12 } }

/** Child mode: a node on the given data dir, reporting its address and, when asked, its frame count. */
async function serve(dataDir: string): Promise<void> {
  const node = await startBenchNode(HOLD_EVERYTHING, dataDir)
  const send = (m: ChildMessage) => process.send?.(m)
  process.on('message', (m: string) => {
    if (m === 'count') void node.node.store.count().then((frames) => send({ type: 'count', frames }))
    if (m === 'stop') void node.stop().then(() => process.exit(0))
  })
  send({ type: 'ready', address: node.node.addresses[0] as string })
}

/** Stores `count` frames numbered from `first` (seqs continue per key) in batches of 1000; returns their bytes. */
async function fill(dbDir: string, keys: SigningKey[], first: number, count: number): Promise<number> {
  const store = await Store.open(dbDir)
  let bytes = 0
  try {
    let batch: VerifiedFrame[] = []
    const started = performance.now()
    for (let n = first; n < first + count; n++) {
      const frame = openStoredFrame(benchFrameBytes(keys[n % keys.length]!, Math.floor(n / keys.length) + 1, n))
      bytes += frame.bytes.length
      batch.push(frame)
      if (batch.length === 1000) {
        await store.putFrames(batch)
        batch = []
        if ((n + 1 - first) % 100_000 === 0) console.log(`  ${n + 1 - first} frames stored (${((performance.now() - started) / 1000).toFixed(0)} s)`)
      }
    }
    await store.putFrames(batch)
  } finally {
    await store.close()
  }
  return bytes
}

function diskBytes(dir: string): number {
  let total = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    total += entry.isDirectory() ? diskBytes(path) : statSync(path).blocks * 512
  }
  return total
}

/**
 * Resident memory of a process (/proc/<pid>/status, bytes): all of it (VmRSS, the goal's
 * figure), and its anonymous part (heaps, buffers). The rest is file pages, mostly LevelDB's
 * memory-mapped table files read while serving: shared with the page cache, and reclaimable.
 */
interface Rss {
  total: number
  anon: number
}

function rssOf(pid: number): Rss {
  const fields = new Map(readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').map((l) => [l.split(':')[0], Number(l.split(/\s+/)[1]) * 1024] as const))
  return { total: fields.get('VmRSS') ?? NaN, anon: fields.get('RssAnon') ?? NaN }
}

const maxRss = (a: Rss, b: Rss): Rss => ({ total: Math.max(a.total, b.total), anon: Math.max(a.anon, b.anon) })

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'rbq-store-1m-'))
  const report = new BenchReport('store-1m', flags, { frames: FRAMES, keys: KEYS, extra: EXTRA })
  try {
    const nodeDir = join(root, 'node')
    const keys = Array.from({ length: KEYS }, () => generateSigningKey())
    let t = performance.now()
    const frameBytes = await fill(join(nodeDir, 'db'), keys, 0, FRAMES)
    console.log(`stored ${FRAMES} frames in ${((performance.now() - t) / 1000).toFixed(0)} s`)
    const disk = diskBytes(join(nodeDir, 'db'))
    report.add({ id: 'frame-bytes', what: 'mean canonical frame size', value: frameBytes / FRAMES, unit: 'B' })
    const size = report.add({
      id: 'store-per-frame',
      what: `LevelDB directory on disk per frame, ${FRAMES} frames`,
      value: disk / FRAMES,
      unit: 'B',
      detail: { 'total MB': disk / MB },
      baseline: 'frame-bytes',
      goal: '≤ 1.5×'
    })
    size.met = (size.ratio ?? Infinity) <= 1.5

    // The peer: EXTRA frames of other keys, which the node under test lacks.
    const peerDir = join(root, 'peer')
    const peerKeys = Array.from({ length: Math.max(1, Math.floor(KEYS / 10)) }, () => generateSigningKey())
    await fill(join(peerDir, 'db'), peerKeys, 0, EXTRA)

    const child = fork(fileURLToPath(import.meta.url), ['--serve', nodeDir, '--no-json'], { stdio: 'inherit' })
    const messages: ChildMessage[] = []
    child.on('message', (m: ChildMessage) => messages.push(m))
    const next = async <T extends ChildMessage['type']>(type: T): Promise<Extract<ChildMessage, { type: T }>> => {
      await waitUntil(() => messages.some((m) => m.type === type), 600_000, `child ${type}`)
      const i = messages.findIndex((m) => m.type === type)
      return messages.splice(i, 1)[0] as Extract<ChildMessage, { type: T }>
    }
    try {
      t = performance.now()
      const { address } = await next('ready')
      console.log(`node on ${FRAMES} frames started in ${((performance.now() - t) / 1000).toFixed(1)} s`)
      const pid = child.pid as number
      let idle: Rss = { total: 0, anon: 0 }
      const idleUntil = performance.now() + (flags.quick ? 3_000 : 10_000)
      while (performance.now() < idleUntil) {
        idle = maxRss(idle, rssOf(pid))
        await new Promise((r) => setTimeout(r, 200))
      }
      const r1 = report.add({ id: 'rss-idle', what: `node RSS, idle, ${FRAMES} frames stored`, value: idle.total / MB, unit: 'MB', detail: { 'anonymous MB': idle.anon / MB }, goal: '≤ 250 MB' })
      r1.met = r1.value <= 250

      const peer = await startBenchNode(HOLD_EVERYTHING, peerDir)
      let during: Rss = { total: 0, anon: 0 }
      const sampler = setInterval(() => (during = maxRss(during, rssOf(pid))), 100)
      try {
        t = performance.now()
        await peer.node.libp2p.dial(multiaddr(address))
        await waitUntil(
          async () => {
            child.send('count')
            return (await next('count')).frames >= FRAMES + EXTRA
          },
          3_600_000,
          'catch-up of the extra frames'
        )
        const seconds = (performance.now() - t) / 1000
        const r2 = report.add({
          id: 'rss-catchup',
          what: `node RSS while catching up ${EXTRA} frames (and serving the peer)`,
          value: during.total / MB,
          unit: 'MB',
          detail: { 'anonymous MB': during.anon / MB, seconds },
          goal: '≤ 250 MB'
        })
        r2.met = r2.value <= 250
      } finally {
        clearInterval(sampler)
        await peer.stop()
      }
    } finally {
      child.send('stop')
      await new Promise((resolve) => child.once('exit', resolve))
    }
  } finally {
    await rm(root, { recursive: true, force: true })
  }
  report.finish()
}

const serveDir = flags.options.get('serve')
if (serveDir !== undefined) await serve(serveDir)
else await main()
