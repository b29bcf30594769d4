/**
 * Verdict latency over the HTTP API against the in-process engine, in one run on one store:
 *
 *   npm run build && node dist/bench/api-verdict.js [artifacts=10000] [singles=2000] [--quick] [--json FILE]
 *
 * Setup: a LevelDB store holding 3 attestations (3 trusted roots, threshold 2) for each of
 * `artifacts` artifacts (one package each) plus 30 delegations; an ApiServer over it on
 * 127.0.0.1. Measured, each at three levels:
 *   engine   node/consensus ConsensusState with every frame in memory (pure computation)
 *   service  node/api VerdictService: LevelDB indexes + decoded-frame cache + engine, no HTTP
 *   http     the typed client over loopback HTTP (fastify, JSON both ways, keep-alive)
 * - one verdict at a time (GET /v1/verdict): p50 / p99 over `singles` random artifacts;
 * - a batch of all artifacts in one call (POST /v1/verdicts, 10k by default), full and brief
 *   evidence: first call (cold caches: the service's decoded frames are dropped first) and best of 3.
 * Baselines of the same run: one raw Ed25519 verify, and the engine alone. Goals (issue 13): one
 * verdict over HTTP p99 ≤ 2 ms; the 10k batch ≤ 1 s (brief: what the apt gate and rbq health ask).
 * --quick: 2,000 artifacts, 300 singles.
 */
import '../common/polyfills.js'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ApiClient } from '../client/api-client.js'
import { policyPath } from '../node/trust/policy-file.js'
import { ApiServer } from '../node/api/api-server.js'
import { ConsensusState, formatPolicy, type Policy } from '../node/consensus/index.js'
import { Store } from '../node/db/store.js'
import {
  buildDelegationStatement,
  buildRebuildStatement,
  generateSigningKey,
  sha256Hex,
  signAttestation,
  signDelegation,
  type SigningKey,
  type VerifiedFrame
} from '../protocol/index.js'
import type { VerdictQuery } from '../protocol/api.js'
import { generateKeyPairSync, sign, verify } from 'node:crypto'
import { BenchReport, benchFlags, numberArg, percentile } from './report.js'

const flags = benchFlags('api-verdict')
const ARTIFACTS = numberArg(flags, 'artifacts', 0, 10_000, 2000)
const SINGLES = numberArg(flags, 'singles', 1, 2000, 300)

const pkgOf = (i: number) => `pkg:deb/debian/bench${i}@1.0-1?arch=source`
const debOf = (i: number) => `bench${i}_1.0-1_amd64.deb`
const digestOf = (i: number) => sha256Hex(`bench artifact ${i}`)

function attestation(key: SigningKey, seq: number, i: number): VerifiedFrame {
  const sha256 = digestOf(i)
  const t = new Date('2026-05-01T00:00:00Z')
  return signAttestation(
    key,
    buildRebuildStatement({
      package: pkgOf(i),
      subject: [{ name: debOf(i), sha256 }],
      outcome: 'reproduced',
      upstream: [{ name: debOf(i), sha256 }],
      inputs: { sha256: sha256Hex(`inputs ${i}`), materials: [] },
      builder: { id: key.publicKey.keyid, seq, backend: 'debian', software: 'rebuild-quorum/bench' },
      startedOn: t,
      finishedOn: t
    })
  )
}

async function timeEach(n: number, fn: (i: number) => Promise<unknown> | unknown): Promise<{ p50: number; p99: number }> {
  const times: number[] = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await fn(i)
    times.push(performance.now() - t)
  }
  times.sort((a, b) => a - b)
  return { p50: percentile(times, 50), p99: percentile(times, 99) }
}

/** Three runs; `before` (untimed) runs before the first, e.g. to drop caches. */
async function timeBatch(fn: () => Promise<unknown> | unknown, before?: () => void): Promise<{ first: number; best: number }> {
  const runs: number[] = []
  for (let r = 0; r < 3; r++) {
    if (r === 0) before?.()
    const t = performance.now()
    await fn()
    runs.push(performance.now() - t)
  }
  return { first: runs[0]!, best: Math.min(...runs) }
}


async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'rbq-bench-api-'))
  const roots = [generateSigningKey(), generateSigningKey(), generateSigningKey()]
  const policy: Policy = {
    threshold: 2,
    count: 'party',
    maxDissent: 0,
    maxDepth: 3,
    roots: roots.map((k, i) => ({ name: `root-${i}`, key: k.publicKey, scope: ['pkg:deb/debian/*'] }))
  }
  await writeFile(policyPath(dir), formatPolicy(policy))

  process.stdout.write(`signing ${3 * ARTIFACTS} attestations and 30 delegations…\n`)
  const frames: VerifiedFrame[] = []
  for (let i = 0; i < ARTIFACTS; i++) for (const k of roots) frames.push(attestation(k, i + 1, i))
  const expires = new Date(Date.now() + 365 * 86_400_000)
  for (let d = 0; d < 30; d++) {
    const from = roots[d % 3]!
    const to = generateSigningKey()
    frames.push(
      signDelegation(from, buildDelegationStatement({ delegator: from.publicKey.keyid, delegate: { keyid: to.publicKey.keyid, publicKey: to.publicKey.text }, name: `buildd-${d}`, scope: ['pkg:deb/debian/*'], maxDepth: 0, version: 1, expires, revoked: false }))
    )
  }
  const store = await Store.open(join(dir, 'db'))
  for (let i = 0; i < frames.length; i += 1000) await store.putFrames(frames.slice(i, i + 1000))

  const server = new ApiServer({ store }, { dataDir: dir, port: 0, writeUrlFile: false })
  await server.start()
  const client = new ApiClient({ url: server.url, timeoutMs: 600_000 })
  const engine = new ConsensusState({ policy })
  engine.addAll(frames)

  const queries: VerdictQuery[] = Array.from({ length: ARTIFACTS }, (_, i) => ({ sha256: digestOf(i), package: pkgOf(i), artifact: debOf(i) }))
  const engineQueries = queries.map((q) => ({ sha256: q.sha256, package: q.package!, artifact: q.artifact! }))
  const pick = (i: number) => (i * 7919) % ARTIFACTS

  try {
    // Correctness first: the three levels agree, and everything is reproduced.
    const [viaHttp] = await client.verdicts([queries[0]!])
    if (viaHttp?.status !== 'reproduced' || viaHttp.verdicts[0]?.evidenceHash !== engine.verdict(engineQueries[0]!).evidenceHash) {
      throw new Error('HTTP and in-process verdicts differ')
    }
    const [viaBrief] = await client.verdicts([queries[0]!], { evidence: 'brief' })
    if (viaBrief?.verdicts[0]?.evidenceHash !== viaHttp.verdicts[0]!.evidenceHash) throw new Error('brief and full answers differ')

    // Baseline: one raw Ed25519 verify (what the node pays per frame it receives).
    const { privateKey, publicKey } = generateKeyPairSync('ed25519')
    const message = Buffer.alloc(600, 7)
    const signature = sign(null, message, privateKey)
    const verifyTimes = await timeEach(5000, () => verify(null, message, publicKey, signature))

    const bytesOf = (v: unknown) => Buffer.byteLength(JSON.stringify({ results: v }))
    let fullBytes = 0
    let briefBytes = 0
    const cold = () => server.verdicts.dropCaches()
    const batchHttp = await timeBatch(async () => (fullBytes = bytesOf(await client.verdicts(queries))), cold)
    const batchBrief = await timeBatch(async () => (briefBytes = bytesOf(await client.verdicts(queries, { evidence: 'brief' }))), cold)
    const batchService = await timeBatch(() => server.verdicts.answer(queries), cold)
    const batchEngine = await timeBatch(() => engine.verdicts(engineQueries))

    const singleEngine = await timeEach(SINGLES, (i) => engine.verdict(engineQueries[pick(i)]!))
    const singleService = await timeEach(SINGLES, (i) => server.verdicts.answer([queries[pick(i)]!]))
    const singleHttp = await timeEach(SINGLES, (i) => client.verdict(queries[pick(i)]!))
    const singleBrief = await timeEach(SINGLES, (i) => client.verdict(queries[pick(i)]!, { evidence: 'brief' }))
    const bySha = await timeEach(Math.min(SINGLES, 500), (i) => client.verdict({ sha256: queries[pick(i)]!.sha256 }))

    const report = new BenchReport('api-verdict', flags, { artifacts: ARTIFACTS, singles: SINGLES, frames: frames.length })
    report.add({ id: 'verify', what: 'baseline: node:crypto Ed25519 verify, 600-byte message (p50)', value: verifyTimes.p50 * 1000, unit: 'µs' })
    report.add({ id: 'single-engine', what: `one verdict, engine in memory (p50; ${SINGLES} questions)`, value: singleEngine.p50, unit: 'ms', detail: { p99: singleEngine.p99 }, baseline: 'verify' })
    const sv = (r: { p50: number; p99: number }) => ({ p50: r.p50, p99: r.p99 })
    report.add({ id: 'single-service', what: 'one verdict, service over LevelDB, no HTTP (p99)', value: singleService.p99, unit: 'ms', detail: sv(singleService), baseline: 'single-engine' })
    report.add({ id: 'single-http', what: 'one verdict, HTTP GET /v1/verdict, full evidence (p99)', value: singleHttp.p99, unit: 'ms', detail: sv(singleHttp), baseline: 'single-engine', goal: 'p99 ≤ 2 ms', met: singleHttp.p99 <= 2 })
    report.add({ id: 'single-http-brief', what: 'one verdict, HTTP, evidence=brief (p99)', value: singleBrief.p99, unit: 'ms', detail: sv(singleBrief), baseline: 'single-engine', goal: 'p99 ≤ 2 ms', met: singleBrief.p99 <= 2 })
    report.add({ id: 'single-http-digest', what: 'one verdict, HTTP, digest only (pairs via the sha256 index) (p99)', value: bySha.p99, unit: 'ms', detail: sv(bySha), baseline: 'single-engine' })
    const n = ARTIFACTS
    const batchGoal = (ms: number) => ({ goal: `≤ 1 s for 10,000`, met: n >= 10_000 ? ms <= 1000 : ms * (10_000 / n) <= 1000 })
    report.add({ id: 'batch-engine', what: `batch of ${n}, engine in memory (best of 3)`, value: batchEngine.best, unit: 'ms', detail: { first: batchEngine.first }, baseline: 'verify' })
    report.add({ id: 'batch-service', what: `batch of ${n}, service over LevelDB, cold caches (first)`, value: batchService.first, unit: 'ms', detail: { best: batchService.best }, baseline: 'batch-engine' })
    report.add({ id: 'batch-http-brief', what: `batch of ${n}, HTTP POST /v1/verdicts, evidence=brief, cold caches (${(briefBytes / 1048576).toFixed(1)} MiB)`, value: batchBrief.first, unit: 'ms', detail: { best: batchBrief.best, 'verdicts/s': Math.round(n / (batchBrief.best / 1000)) }, baseline: 'batch-engine', ...batchGoal(batchBrief.first) })
    report.add({ id: 'batch-http-full', what: `batch of ${n}, HTTP, full evidence, cold caches (${(fullBytes / 1048576).toFixed(1)} MiB)`, value: batchHttp.first, unit: 'ms', detail: { best: batchHttp.best }, baseline: 'batch-engine', ...batchGoal(batchHttp.first) })
    report.finish()
  } finally {
    await server.stop()
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
