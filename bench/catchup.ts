/**
 * Catch-up rate through /rbq/sync/1.0.0: a fresh node syncs N frames (default 100k) from a peer
 * whose store was pre-filled through the Store API. Both nodes run in this process on loopback;
 * the catching-up node verifies every frame in its worker pool (one worker per core).
 *
 *   npm run build && node dist/bench/catchup.js [frames=100000] [keys=100]
 *
 * Printed with, from the same run:
 *   - the raw store-read rate of the same frames (reading them back the way the responder does,
 *     by key and seq in pages of 512), and the ratio catch-up / raw read;
 *   - the rate of the same frames submitted straight into a fresh node's ingest pipeline (no
 *     network), and the ratio catch-up / direct ingest: what sync itself costs on top of
 *     verifying and storing.
 */
import '../node/polyfills.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateSigningKey, type SigningKey, type VerifiedFrame } from '../protocol/index.js'
import { Store } from '../node/db/store.js'
import { SYNC_MAX_BATCH_FRAMES } from '../protocol/sync.js'
import { benchAttestation, connect, startBenchNode, waitUntil } from './network-lib.js'

const FRAMES = Number(process.argv[2] ?? 100_000)
const KEYS = Number(process.argv[3] ?? 100)

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
  try {
    const keys = Array.from({ length: KEYS }, () => generateSigningKey())
    const sourceDir = join(root, 'source')
    let t = performance.now()
    await prefill(join(sourceDir, 'db'), keys)
    console.log(`prefilled ${FRAMES} frames (${KEYS} keys) in ${((performance.now() - t) / 1000).toFixed(1)} s`)
    const read = await rawRead(join(sourceDir, 'db'), keys)
    const ingestRate = await directIngestRate(read.frames)

    const source = await startBenchNode({}, sourceDir)
    const fresh = await startBenchNode()
    try {
      t = performance.now()
      await connect(fresh.node, source.node)
      await waitUntil(async () => (await fresh.node.store.count()) >= FRAMES, 600_000, 'catch-up')
      const seconds = (performance.now() - t) / 1000
      const rate = FRAMES / seconds
      console.log(`catch-up: ${FRAMES} frames in ${seconds.toFixed(1)} s = ${Math.round(rate)} frames/s (verify workers: ${fresh.node.pipeline.workers})`)
      console.log(`raw store read (same frames, pages of ${SYNC_MAX_BATCH_FRAMES}): ${Math.round(read.rate)} frames/s; ratio catch-up / raw read: ${(rate / read.rate).toFixed(3)}`)
      console.log(`direct ingest (same frames, no network): ${Math.round(ingestRate)} frames/s; ratio catch-up / direct ingest: ${(rate / ingestRate).toFixed(2)}`)
    } finally {
      await fresh.stop()
      await source.stop()
    }
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

await main()
