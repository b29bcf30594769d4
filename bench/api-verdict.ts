/**
 * Verdict latency over the HTTP API against the in-process engine, in one run on one store:
 *
 *   npm run build && node dist/bench/api-verdict.js [artifacts=10000] [singles=2000]
 *
 * Setup: a LevelDB store holding 3 attestations (3 trusted roots, threshold 2) for each of
 * `artifacts` artifacts (one package each) plus 30 delegations; an ApiServer over it on
 * 127.0.0.1. Measured, each at three levels:
 *   engine   node/consensus ConsensusState with every frame in memory (pure computation)
 *   service  node/api VerdictService: LevelDB indexes + decoded-frame cache + engine, no HTTP
 *   http     the typed client over loopback HTTP (fastify, JSON both ways, keep-alive)
 * - one verdict at a time (GET /v1/verdict): p50 / p99 over `singles` random artifacts;
 * - a batch of all artifacts in one call (POST /v1/verdicts, 10k by default): first (cold
 *   caches) and best of 3.
 * Ratios are http / engine and http / service.
 */
import '../node/polyfills.js'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ApiClient } from '../node/api/client.js'
import { policyPath } from '../node/trust/policy-file.js'
import { ApiServer } from '../node/api/server.js'
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

const ARTIFACTS = Number(process.argv[2] ?? 10_000)
const SINGLES = Number(process.argv[3] ?? 2000)

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

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
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

async function timeBatch(fn: () => Promise<unknown> | unknown): Promise<{ first: number; best: number }> {
  const runs: number[] = []
  for (let r = 0; r < 3; r++) {
    const t = performance.now()
    await fn()
    runs.push(performance.now() - t)
  }
  return { first: runs[0]!, best: Math.min(...runs) }
}

const ms = (x: number) => `${x < 10 ? x.toFixed(3) : x.toFixed(1)} ms`
const ratio = (a: number, b: number) => `${(a / b).toFixed(1)}×`

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
  const client = new ApiClient({ url: server.url })
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

    let answered: unknown
    const batchHttp = await timeBatch(async () => (answered = await client.verdicts(queries)))
    const responseBytes = Buffer.byteLength(JSON.stringify({ results: answered }))
    const batchService = await timeBatch(() => server.verdicts.answer(queries))
    const batchEngine = await timeBatch(() => engine.verdicts(engineQueries))

    const singleEngine = await timeEach(SINGLES, (i) => engine.verdict(engineQueries[pick(i)]!))
    const singleService = await timeEach(SINGLES, (i) => server.verdicts.answer([queries[pick(i)]!]))
    const singleHttp = await timeEach(SINGLES, (i) => client.verdict(queries[pick(i)]!))
    const bySha = await timeEach(Math.min(SINGLES, 500), (i) => client.verdict({ sha256: queries[pick(i)]!.sha256 }))

    const out = [
      `api-verdict: ${ARTIFACTS} artifacts, ${frames.length} frames in LevelDB, 3 roots (threshold 2), node ${process.version}`,
      '',
      `one verdict (p50 / p99 over ${SINGLES}):`,
      `  engine (in memory)     ${ms(singleEngine.p50)} / ${ms(singleEngine.p99)}`,
      `  service (LevelDB)      ${ms(singleService.p50)} / ${ms(singleService.p99)}`,
      `  HTTP GET /v1/verdict   ${ms(singleHttp.p50)} / ${ms(singleHttp.p99)}   = ${ratio(singleHttp.p50, singleEngine.p50)} engine, ${ratio(singleHttp.p50, singleService.p50)} service (p50)`,
      `  HTTP, digest only      ${ms(bySha.p50)} / ${ms(bySha.p99)}   (pairs found through the sha256 index)`,
      '',
      `batch of ${ARTIFACTS} (first call / best of 3):`,
      `  engine (in memory)     ${ms(batchEngine.first)} / ${ms(batchEngine.best)}`,
      `  service (LevelDB)      ${ms(batchService.first)} / ${ms(batchService.best)}`,
      `  HTTP POST /v1/verdicts ${ms(batchHttp.first)} / ${ms(batchHttp.best)}   = ${ratio(batchHttp.best, batchEngine.best)} engine, ${ratio(batchHttp.best, batchService.best)} service (best)`,
      `  per artifact over HTTP ${ms(batchHttp.best / ARTIFACTS)} (${Math.round(ARTIFACTS / (batchHttp.best / 1000))} verdicts/s); answer ${(responseBytes / 1048576).toFixed(1)} MiB of JSON (evidence included)`,
      ''
    ]
    process.stdout.write(out.join('\n'))
  } finally {
    await server.stop()
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
