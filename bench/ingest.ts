/**
 * Ingest of valid frames through the full pipeline (dedupe, decode in the worker pool, quota,
 * LevelDB write) against the raw node:crypto Ed25519 verify of the same frames in the same run.
 *
 *   npm run build && node dist/bench/ingest.js [frames=20000] [keys=500] [--quick] [--json FILE]
 *
 * Rows (issue 13):
 *   pipeline-pool     frames/s through the pipeline, all cores    goal ≥ 0.8 × raw-verify-all
 *   checks-cpu        CPU per frame of every check besides the signature (parseFrame +
 *                     openFrame: UTF-8, depth, canonical form, schema, key rule, base64,
 *                     statement schema and semantics)            goal ≤ 0.25 × raw-verify-cpu
 * and, for context, decodeFrame on one thread, the pipeline decoding on the main thread, and the
 * latency of one frame at a time.
 */
import '../common/polyfills.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeFrame, generateSigningKey, openFrame, parseFrame } from '../protocol/index.js'
import { Store } from '../node/db/store.js'
import { IngestPipeline } from '../node/ingest/ingest-pipeline.js'
import { StatementSigner } from '../identity/statement-signer.js'
import { BenchReport, benchFlags, numberArg } from './report.js'
import { CORES, benchFrameBytes, measure, rawInputs, rawVerifyAllCores, rawVerifyOneThread, type Measurement } from './verify-lib.js'

const flags = benchFlags('ingest')
const FRAMES = numberArg(flags, 'frames', 0, 20_000, 2_000)
const KEYS = numberArg(flags, 'keys', 1, 500, 100)
const SUBMIT_CHUNK = 512 // a sync response carries at most SYNC_MAX_BATCH_FRAMES = 512
const WARMUP_SHARE = 0.1

function makeFrames(): Uint8Array[] {
  const keys = Array.from({ length: KEYS }, () => generateSigningKey())
  return Array.from({ length: FRAMES }, (_, i) => benchFrameBytes(keys[i % KEYS]!, Math.floor(i / KEYS) + 1, i))
}

function decodeOneThread(frames: Uint8Array[]): Promise<Measurement> {
  return measure(frames.length, () => {
    for (const bytes of frames) decodeFrame(bytes)
  })
}

/** Every check but the signature, on one thread. The frames' purls are all different: the first pass over them parses every purl. */
function checksOneThread(frames: Uint8Array[]): Promise<Measurement> {
  return measure(frames.length, () => {
    for (const bytes of frames) openFrame(parseFrame(bytes))
  })
}

async function withPipeline<T>(workers: number, fn: (pipeline: IngestPipeline, store: Store) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'rbq-bench-ingest-'))
  const store = await Store.open(dir)
  const pipeline = new IngestPipeline({ store }, { signer: new StatementSigner(generateSigningKey(), join(dir, 'signing.key.seq')), workers, maxQueuedFrames: FRAMES, maxQueuedBytes: 1 << 30 })
  try {
    await pipeline.start()
    return await fn(pipeline, store)
  } finally {
    await pipeline.stop()
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
}

/**
 * Frames submitted in sync-sized chunks all at once; timed until the last one is stored. The
 * first WARMUP_SHARE of the frames only warms the workers up (JIT, caches), as in a running node.
 */
async function pipelineRun(frames: Uint8Array[], workers: number): Promise<Measurement & { workers: number; mainBusy: number }> {
  return withPipeline(workers, async (pipeline, store) => {
    const submitAll = (list: Uint8Array[]) => {
      const chunks: Promise<unknown>[] = []
      for (let i = 0; i < list.length; i += SUBMIT_CHUNK) chunks.push(pipeline.submitMany(list.slice(i, i + SUBMIT_CHUNK), 'sync'))
      return Promise.all(chunks)
    }
    const warm = Math.floor(frames.length * WARMUP_SHARE)
    await submitAll(frames.slice(0, warm))
    const elu = performance.eventLoopUtilization()
    const m = await measure(frames.length - warm, () => submitAll(frames.slice(warm)))
    const mainBusy = performance.eventLoopUtilization(elu).utilization
    const stored = await store.count('attestation')
    if (stored !== frames.length) throw new Error(`pipeline stored ${stored} of ${frames.length} frames`)
    return { ...m, workers: pipeline.workers, mainBusy }
  })
}

/** One frame at a time, each awaited (a quiet gossip topic): mean latency in ms. */
async function oneAtATimeLatency(frames: Uint8Array[], workers: number): Promise<number> {
  return withPipeline(workers, async (pipeline) => {
    const start = performance.now()
    for (const bytes of frames) {
      const result = await pipeline.submit(bytes, 'gossip')
      if (result.status !== 'stored') throw new Error(`latency run: ${result.status}`)
    }
    return (performance.now() - start) / frames.length
  })
}

async function main(): Promise<void> {
  const start = performance.now()
  const frames = makeFrames()
  const [load1] = loadavg()
  console.log(`ingest bench: ${FRAMES} attestations (${frames[0]?.length ?? 0} bytes) from ${KEYS} keys, ${CORES} cores, signed in ${((performance.now() - start) / 1000).toFixed(1)} s, load average ${load1?.toFixed(2)}`)
  // The one-thread rows run once on the first frames to warm up (JIT, key caches), then are
  // measured on the others, so no purl or frame is seen twice.
  const split = Math.min(1000, Math.floor(frames.length / 5))
  const [warm, timed] = [frames.slice(0, split), frames.slice(split)]
  await rawVerifyOneThread(rawInputs(warm))
  await checksOneThread(warm)
  const inputs = rawInputs(timed)
  const raw1 = await rawVerifyOneThread(inputs)
  const rawAll = await rawVerifyAllCores(rawInputs(frames), KEYS)
  const checks = await checksOneThread(timed)
  // Again: every purl is now in the accepted-purl cache, as for the 2nd…kth attestation of one package.
  const checksCached = await checksOneThread(timed)
  const decode1 = await decodeOneThread(timed)
  const pooled = await pipelineRun(frames, CORES)
  const inline = await pipelineRun(frames, 0)
  const sample = frames.slice(0, Math.min(500, frames.length))
  const latencyPool = await oneAtATimeLatency(sample, CORES)
  const latencyInline = await oneAtATimeLatency(sample, 0)

  const report = new BenchReport('ingest', flags, { frames: FRAMES, keys: KEYS, frameBytes: frames[0]?.length, cores: CORES, load1 })
  report.add({ id: 'raw-verify-1t', what: 'raw node:crypto verify, 1 thread', value: raw1.rate, unit: 'frames/s' })
  report.add({ id: 'raw-verify-all', what: `raw verify, ${CORES} worker threads`, value: rawAll.rate, unit: 'frames/s', baseline: 'raw-verify-1t' })
  report.add({ id: 'raw-verify-cpu', what: 'CPU of one raw verify', value: raw1.cpuUsPerFrame, unit: 'µs' })
  const c = report.add({ id: 'checks-cpu', what: 'CPU of every check but the signature (parseFrame + openFrame)', value: checks.cpuUsPerFrame, unit: 'µs', baseline: 'raw-verify-cpu', goal: '≤ 0.25×' })
  c.met = (c.ratio ?? Infinity) <= 0.25
  const cc = report.add({ id: 'checks-cpu-cached', what: '… the same frames again (purl parsed before: cached)', value: checksCached.cpuUsPerFrame, unit: 'µs', baseline: 'raw-verify-cpu', goal: '≤ 0.25×' })
  cc.met = (cc.ratio ?? Infinity) <= 0.25
  report.add({ id: 'decode-cpu', what: 'CPU of decodeFrame (all checks and the signature), 1 thread', value: decode1.cpuUsPerFrame, unit: 'µs', baseline: 'raw-verify-cpu' })
  const p = report.add({
    id: 'pipeline-pool',
    what: `pipeline, ${pooled.workers} decode workers (dedupe, decode, quota, LevelDB)`,
    value: pooled.rate,
    unit: 'frames/s',
    detail: { 'µs CPU/frame': pooled.cpuUsPerFrame, 'main busy %': pooled.mainBusy * 100 },
    baseline: 'raw-verify-all',
    goal: '≥ 0.8×'
  })
  p.met = (p.ratio ?? 0) >= 0.8
  report.add({ id: 'pipeline-inline', what: 'pipeline, decoding on the main thread', value: inline.rate, unit: 'frames/s', detail: { 'µs CPU/frame': inline.cpuUsPerFrame }, baseline: 'raw-verify-all' })
  report.add({ id: 'latency-pool', what: 'one frame at a time through the pool', value: latencyPool, unit: 'ms' })
  report.add({ id: 'latency-inline', what: 'one frame at a time, decoded inline', value: latencyInline, unit: 'ms' })
  report.finish()
}

main().catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
