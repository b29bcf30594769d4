/**
 * Catch-up rate through /rbq/sync/1.0.0: a fresh node syncs N frames (default 100k) from a peer
 * whose store was pre-filled through the Store API. Both nodes run in this process on loopback;
 * the catching-up node verifies every frame in its worker pool (one worker per core).
 *
 *   npm run build && node dist/bench/catchup.js [frames=100000] [keys=100] [--quick] [--json FILE]
 *
 * Rows, from the same run:
 *   catchup           frames/s landed by the fresh node        goal ≥ 0.8 × raw-verify-all
 *   raw-verify-all    raw node:crypto verify of the same frames on all cores (verify-lib.ts)
 *   direct-ingest     the same frames submitted straight into a fresh node's pipeline (no
 *                     network): what sync itself costs on top of verifying and storing
 *   raw-read          reading them back the way the responder does (by key and seq, pages of 512)
 *   catchup-rss-max   peak RSS of this process (both nodes) during catch-up
 */
import '../common/polyfills.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateSigningKey, type SigningKey, type VerifiedFrame } from '../protocol/index.js'
import { Store } from '../node/db/store.js'
import { SYNC_MAX_BATCH_FRAMES } from '../protocol/sync.js'
import { benchAttestation, connect, startBenchNode, waitUntil } from './network-lib.js'
import { BenchReport, benchFlags, numberArg } from './report.js'
import { CORES, rawInputs, rawVerifyAllCores } from './verify-lib.js'

const flags = benchFlags('catchup')
const FRAMES = numberArg(flags, 'frames', 0, 100_000, 5_000)
const KEYS = numberArg(flags, 'keys', 1, 100, 20)

async function prefill(dbDir: string, keys: SigningKey[]): Promise<void> {
  const store = await Store.open(dbDir)
  try {
    let batch: VerifiedFrame[] = []
    for (let i = 0; i < FRAMES; i++) {
      batch.push(benchAttestation(keys[i % KEYS] as SigningKey, Math.floor(i / KEYS) + 1, i))
      if (batch.length === 1000) {
        await store.putFrames(batch)
        batch = []
      }
    }
    await store.putFrames(batch)
  } finally {
    await store.close()
  }
}

/** Reads every frame back by key and seq range, in responder-sized pages. */
async function rawRead(dbDir: string, keys: SigningKey[]): Promise<{ rate: number; frames: Uint8Array[] }> {
  const store = await Store.open(dbDir)
  try {
    const perKey = Math.ceil(FRAMES / KEYS)
    const frames: Uint8Array[] = []
    const start = performance.now()
    for (const key of keys) {
      for (let from = 1; from <= perKey; from += SYNC_MAX_BATCH_FRAMES) {
        frames.push(...(await store.attestationsInRange(key.publicKey.keyid, from, from + SYNC_MAX_BATCH_FRAMES - 1, SYNC_MAX_BATCH_FRAMES)))
      }
    }
    const seconds = (performance.now() - start) / 1000
    if (frames.length !== FRAMES) throw new Error(`read ${frames.length} of ${FRAMES} frames`)
    return { rate: FRAMES / seconds, frames }
  } finally {
    await store.close()
  }
}

/** The same frames straight into a fresh node's pipeline, a sync batch at a time. */
async function directIngestRate(frames: Uint8Array[]): Promise<number> {
  const node = await startBenchNode()
  try {
    const start = performance.now()
    for (let i = 0; i < frames.length; i += SYNC_MAX_BATCH_FRAMES) {
      const results = await node.node.pipeline.submitMany(frames.slice(i, i + SYNC_MAX_BATCH_FRAMES), 'sync')
      if (results.some((r) => r.status !== 'stored')) throw new Error('direct ingest: a frame was not stored')
    }
    return frames.length / ((performance.now() - start) / 1000)
  } finally {
    await node.stop()
  }
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'rbq-catchup-'))
  const report = new BenchReport('catchup', flags, { frames: FRAMES, keys: KEYS, cores: CORES })
  try {
    const keys = Array.from({ length: KEYS }, () => generateSigningKey())
    const sourceDir = join(root, 'source')
    let t = performance.now()
    await prefill(join(sourceDir, 'db'), keys)
    console.log(`prefilled ${FRAMES} frames (${KEYS} keys) in ${((performance.now() - t) / 1000).toFixed(1)} s`)
    const read = await rawRead(join(sourceDir, 'db'), keys)
    const rawAll = await rawVerifyAllCores(rawInputs(read.frames), KEYS)
    const ingestRate = await directIngestRate(read.frames)

    const source = await startBenchNode({}, sourceDir)
    const fresh = await startBenchNode()
    let rssMax = 0
    const sampler = setInterval(() => (rssMax = Math.max(rssMax, process.memoryUsage.rss())), 100)
    try {
      t = performance.now()
      await connect(fresh.node, source.node)
      await waitUntil(async () => (await fresh.node.store.count()) >= FRAMES, 1_800_000, 'catch-up')
      const seconds = (performance.now() - t) / 1000
      report.add({ id: 'raw-verify-all', what: `raw verify of the same frames, ${CORES} worker threads`, value: rawAll.rate, unit: 'frames/s' })
      const c = report.add({
        id: 'catchup',
        what: `catch-up through ${'/rbq/sync/1.0.0'}, landed (verify workers: ${fresh.node.pipeline.workers})`,
        value: FRAMES / seconds,
        unit: 'frames/s',
        detail: { seconds },
        baseline: 'raw-verify-all',
        goal: '≥ 0.8×'
      })
      c.met = (c.ratio ?? 0) >= 0.8
      report.add({ id: 'direct-ingest', what: 'the same frames into a fresh pipeline, no network', value: ingestRate, unit: 'frames/s', baseline: 'raw-verify-all' })
      report.add({ id: 'raw-read', what: `store read by key and seq, pages of ${SYNC_MAX_BATCH_FRAMES}`, value: read.rate, unit: 'frames/s' })
      report.add({ id: 'catchup-rss-max', what: 'peak RSS of this process (both nodes) during catch-up', value: Math.max(rssMax, process.memoryUsage.rss()) / 2 ** 20, unit: 'MiB' })
    } finally {
      clearInterval(sampler)
      await fresh.stop()
      await source.stop()
    }
  } finally {
    await rm(root, { recursive: true, force: true })
  }
  report.finish()
}

await main()
