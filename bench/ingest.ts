/**
 * Ingest rate of valid frames through the full pipeline (dedupe, decode in the worker pool,
 * quota, LevelDB write) against the raw node:crypto Ed25519 verify rate of the same frames,
 * on one thread and on all cores. Goal (issue 4): pipeline ≥ 0.8× raw verify with all cores.
 *
 *   npm run build && node dist/bench/ingest.js [frames=20000] [keys=500]
 *
 * Also printed: protocol decodeFrame on one thread (the CPU floor of the checks a frame must
 * pass), the pipeline with decoding on the main thread, and the latency of one frame at a time.
 */
import '../node/polyfills.js'
import { createPublicKey, verify, type KeyObject } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import {
  buildRebuildStatement,
  decodeFrame,
  generateSigningKey,
  parseFrame,
  signAttestation,
  signedMessage,
  type SigningKey
} from '../protocol/index.js'
import { Store } from '../node/db/store.js'
import { IngestPipeline } from '../node/ingest/pipeline.js'

const FRAMES = Number(process.argv[2] ?? 20_000)
const KEYS = Number(process.argv[3] ?? 500)
const CORES = availableParallelism()
const SUBMIT_CHUNK = 512 // a sync response carries at most SYNC_MAX_BATCH_FRAMES = 512
const WARMUP_SHARE = 0.1

interface RawInput {
  key: Uint8Array
  message: Uint8Array
  signature: Uint8Array
}

function hex(n: number): string {
  return n.toString(16).padStart(64, '0')
}

function makeFrames(): Uint8Array[] {
  const keys: SigningKey[] = Array.from({ length: KEYS }, () => generateSigningKey())
  const frames: Uint8Array[] = []
  for (let i = 0; i < FRAMES; i++) {
    const key = keys[i % KEYS] as SigningKey
    const name = `pkg${i}_1.0-1_amd64.deb`
    const statement = buildRebuildStatement({
      package: `pkg:deb/debian/pkg${i}@1.0-1?arch=source`,
      subject: [{ name, sha256: hex(i) }],
      outcome: 'reproduced',
      upstream: [{ name, sha256: hex(i) }],
      inputs: { sha256: hex(i + 1), materials: [{ uri: `https://deb.debian.org/debian/pool/main/p/pkg${i}/pkg${i}_1.0-1.dsc`, sha256: hex(i + 2) }] },
      builder: { id: key.publicKey.keyid, seq: Math.floor(i / KEYS) + 1, backend: 'debian', software: 'rebuild-quorum/bench' },
      startedOn: new Date(1_700_000_000_000),
      finishedOn: new Date(1_700_000_060_000)
    })
    frames.push(signAttestation(key, statement).bytes)
  }
  return frames
}

function rawInputs(frames: Uint8Array[]): RawInput[] {
  return frames.map((bytes) => {
    const parsed = parseFrame(bytes)
    return { key: parsed.signer.raw, message: signedMessage(parsed), signature: parsed.signature }
  })
}

/** Wall-clock rate and CPU time of all threads of the process (workers included) per frame. */
interface Measurement {
  rate: number
  cpuUsPerFrame: number
}

async function measure(frames: number, run: () => unknown): Promise<Measurement> {
  const cpu = process.cpuUsage()
  const start = performance.now()
  await run()
  const seconds = (performance.now() - start) / 1000
  const used = process.cpuUsage(cpu)
  return { rate: frames / seconds, cpuUsPerFrame: (used.user + used.system) / frames }
}

/** Raw verify: node:crypto with a KeyObject cache (JWK import), nothing else. */
function rawVerifyOneThread(inputs: RawInput[]): Promise<Measurement> {
  return measure(inputs.length, () => {
    const cache = new Map<string, KeyObject>()
    let ok = 0
    for (const { key, message, signature } of inputs) {
      const x = Buffer.from(key).toString('base64url')
      let ko = cache.get(x)
      if (ko === undefined) {
        ko = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' })
        cache.set(x, ko)
      }
      if (verify(null, message, ko, signature)) ok++
    }
    if (ok !== inputs.length) throw new Error(`raw verify: ${inputs.length - ok} signatures failed`)
  })
}

/** The same loop in one worker per core; inputs are copied to the workers before timing. */
const RAW_WORKER = `
const { parentPort } = require('node:worker_threads')
const { createPublicKey, verify } = require('node:crypto')
let inputs = []
parentPort.on('message', (m) => {
  if (m.inputs) { inputs = m.inputs; parentPort.postMessage('loaded'); return }
  const cache = new Map()
  let ok = 0
  for (const { key, message, signature } of inputs) {
    const x = Buffer.from(key).toString('base64url')
    let ko = cache.get(x)
    if (ko === undefined) { ko = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' }); cache.set(x, ko) }
    if (verify(null, message, ko, signature)) ok++
  }
  parentPort.postMessage(ok)
})`

async function rawVerifyAllCores(inputs: RawInput[]): Promise<Measurement> {
  const workers = Array.from({ length: CORES }, () => new Worker(RAW_WORKER, { eval: true }))
  const next = (w: Worker) => new Promise<unknown>((resolve, reject) => w.once('message', resolve).once('error', reject))
  try {
    // Frames of one key go to one worker, as a sharded verifier would do.
    const shares: RawInput[][] = workers.map(() => [])
    inputs.forEach((input, i) => (shares[(i % KEYS) % CORES] as RawInput[]).push(input))
    await Promise.all(workers.map((w, i) => (w.postMessage({ inputs: shares[i] }), next(w))))
    return await measure(inputs.length, async () => {
      const counts = (await Promise.all(workers.map((w) => (w.postMessage('go'), next(w))))) as number[]
      const ok = counts.reduce((a, b) => a + b, 0)
      if (ok !== inputs.length) throw new Error(`raw verify (workers): ${inputs.length - ok} signatures failed`)
    })
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
}

function decodeOneThread(frames: Uint8Array[]): Promise<Measurement> {
  return measure(frames.length, () => {
    for (const bytes of frames) decodeFrame(bytes)
  })
}

async function withPipeline<T>(workers: number, fn: (pipeline: IngestPipeline, store: Store) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'rbq-bench-ingest-'))
  const store = await Store.open(dir)
  const pipeline = new IngestPipeline({ store }, { reporterKey: generateSigningKey(), workers, maxQueuedFrames: FRAMES, maxQueuedBytes: 1 << 30 })
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

const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(7)
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`
const pct = (x: number) => `${Math.round(x * 100)}%`
const row = (name: string, m: Measurement, note = '') =>
  console.log(`  ${name.padEnd(34)} ${fmt(m.rate)} frames/s  ${m.cpuUsPerFrame.toFixed(0).padStart(5)} µs CPU/frame  ${note}`)

async function main(): Promise<void> {
  const [load1] = loadavg()
  console.log(`ingest bench: ${FRAMES} attestations from ${KEYS} keys, ${CORES} cores, Node ${process.version}, load average ${load1?.toFixed(2)}`)
  const start = performance.now()
  const frames = makeFrames()
  console.log(`  signed ${frames.length} frames in ${((performance.now() - start) / 1000).toFixed(1)} s (${frames[0]?.length ?? 0} bytes each)`)
  const inputs = rawInputs(frames)

  const raw1 = await rawVerifyOneThread(inputs)
  const rawAll = await rawVerifyAllCores(inputs)
  const decode1 = await decodeOneThread(frames)
  const pooled = await pipelineRun(frames, CORES)
  const inline = await pipelineRun(frames, 0)
  const sample = frames.slice(0, Math.min(500, frames.length))
  const latencyPool = await oneAtATimeLatency(sample, CORES)
  const latencyInline = await oneAtATimeLatency(sample, 0)

  console.log('')
  row('raw verify, 1 thread', raw1)
  row(`raw verify, ${CORES} threads`, rawAll, `${ratio(rawAll.rate, raw1.rate)} of 1 thread`)
  row('protocol decodeFrame, 1 thread', decode1, `the checks every frame must pass: ${ratio(decode1.cpuUsPerFrame, raw1.cpuUsPerFrame)} the CPU of a raw verify`)
  row(`pipeline, ${pooled.workers} decode workers`, pooled, `${ratio(pooled.rate, rawAll.rate)} of raw verify on all cores (goal ≥ 0.80×); main thread busy ${pct(pooled.mainBusy)}`)
  row('pipeline, decoding on main thread', inline, `${ratio(inline.rate, rawAll.rate)} of raw verify on all cores; main thread busy ${pct(inline.mainBusy)}`)
  const bound = (CORES * 1e6) / pooled.cpuUsPerFrame
  console.log(`  CPU-bound ceiling of the pipeline on ${CORES} idle cores: ${fmt(bound)} frames/s = ${ratio(bound, (CORES * 1e6) / raw1.cpuUsPerFrame)} of raw verify on ${CORES} idle cores`)
  console.log(`  one frame at a time (latency): pool ${latencyPool.toFixed(3)} ms, inline ${latencyInline.toFixed(3)} ms per frame`)
}

main().catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
