/**
 * The baseline the frame benches compare against: the raw node:crypto Ed25519 verify of the
 * same frames (a KeyObject cache, nothing else), on one thread and on one worker per core, and
 * signed test frames made quickly (signed, not decoded: the bench's receiver checks them).
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import {
  buildRebuildStatement,
  canonicalBytes,
  encodeFrame,
  parseFrame,
  PAYLOAD_TYPE_IN_TOTO,
  signEnvelope,
  signedMessage,
  type SigningKey
} from '../protocol/index.js'

export const CORES = availableParallelism()

export interface RawInput {
  key: Uint8Array
  message: Uint8Array
  signature: Uint8Array
}

/** Wall-clock rate and CPU time of all threads of the process (workers included) per frame. */
export interface Measurement {
  rate: number
  cpuUsPerFrame: number
}

export async function measure(frames: number, run: () => unknown): Promise<Measurement> {
  const cpu = process.cpuUsage()
  const start = performance.now()
  await run()
  const seconds = (performance.now() - start) / 1000
  const used = process.cpuUsage(cpu)
  return { rate: frames / seconds, cpuUsPerFrame: (used.user + used.system) / frames }
}

const hex = (n: number) => n.toString(16).padStart(64, '0')

/**
 * The canonical bytes of a signed attestation of a made-up package: one artifact, and one
 * material unless `material` is false (the network benches send the shorter frame).
 */
export function benchFrameBytes(key: SigningKey, seq: number, n: number, { material = true } = {}): Uint8Array {
  const name = `pkg${n}_1.0-1_amd64.deb`
  const statement = buildRebuildStatement({
    package: `pkg:deb/debian/pkg${n}@1.0-1?arch=source`,
    subject: [{ name, sha256: hex(n) }],
    outcome: 'reproduced',
    upstream: [{ name, sha256: hex(n) }],
    inputs: { sha256: hex(n + 1), materials: material ? [{ uri: `https://deb.debian.org/debian/pool/main/p/pkg${n}/pkg${n}_1.0-1.dsc`, sha256: hex(n + 2) }] : [] },
    builder: { id: key.publicKey.keyid, seq, backend: 'debian', software: 'rebuild-quorum/bench' },
    startedOn: new Date(1_700_000_000_000),
    finishedOn: new Date(1_700_000_060_000)
  })
  return encodeFrame({ v: 1, publicKey: key.publicKey.text, envelope: signEnvelope(key, PAYLOAD_TYPE_IN_TOTO, canonicalBytes(statement)) })
}

export function rawInputs(frames: readonly Uint8Array[]): RawInput[] {
  return frames.map((bytes) => {
    const parsed = parseFrame(bytes)
    return { key: parsed.signer.raw, message: signedMessage(parsed), signature: parsed.signature }
  })
}

/** Raw verify on this thread. */
export function rawVerifyOneThread(inputs: readonly RawInput[]): Promise<Measurement> {
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

/** `keys`: frames of one key go to one worker, as a sharded verifier would do. */
export async function rawVerifyAllCores(inputs: readonly RawInput[], keys: number): Promise<Measurement> {
  const workers = Array.from({ length: CORES }, () => new Worker(RAW_WORKER, { eval: true }))
  const next = (w: Worker) => new Promise<unknown>((resolve, reject) => w.once('message', resolve).once('error', reject))
  try {
    const shares: RawInput[][] = workers.map(() => [])
    inputs.forEach((input, i) => (shares[(i % keys) % CORES] as RawInput[]).push(input))
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
