/**
 * Verdict engine figures (issue 3), each also as a ratio to a baseline measured in the same run:
 * one raw node:crypto Ed25519 verify (what the node already pays per frame it receives).
 *
 *   npm run build && node dist/bench/verdict.js [--quick] [--json FILE]
 *
 * Goal (issue 13): one verdict, 100 attestations, 1M statements: p99 ≤ 1 ms. --quick: an index
 * of 100k statements and fewer samples. Rows and ratios also go to bench-results/verdict.json.
 *
 *   verdict   one artifact with 100 trusted attestations (10 parties × 10 delegated keys), looked
 *             up in an index of 1M statements. To build the 1M index cheaply, the 100 signed
 *             frames are re-used as filler under 999,900 other package|artifact keys: the engine
 *             only ever reads the entry of the artifact asked about, as the node's LevelDB index
 *             does, so the filler's content does not matter — its size is what is measured.
 *   batch     10,000 artifacts (1,000 packages × 10 artifacts, 4 parties with one statement per
 *             package each, a statement naming its 10 artifacts): 4,000 signed frames.
 *   walk      trust graph over 1,000 delegations (5 roots → 100 organisations → 900 builders):
 *             build (edge selection) + the first package walk, and a warm (cached) lookup.
 */
import { generateKeyPairSync, sign, verify } from 'node:crypto'
import {
  buildDelegationStatement,
  buildRebuildStatement,
  generateSigningKey,
  sha256Hex,
  signAttestation,
  signDelegation,
  type AttestationFrame,
  type DelegationFrame,
  type SigningKey
} from '../protocol/index.js'
import { buildTrustGraph, computeVerdicts, type ArtifactQuery, type Policy } from '../node/consensus/index.js'
import { BenchReport, benchFlags, percentile } from './report.js'

const flags = benchFlags('verdict')
const QUICK = flags.quick
const INDEX_SIZE = QUICK ? 100_000 : 1_000_000
const report = new BenchReport('verdict', flags, { indexSize: INDEX_SIZE })

const NOW = Date.now()
const EXPIRES = new Date(NOW + 365 * 24 * 3600 * 1000)
const STARTED = new Date('2026-05-01T00:00:00Z')

function timeIt(runs: number, fn: () => void): number[] {
  const samples: number[] = []
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint()
    fn()
    samples.push(Number(process.hrtime.bigint() - t0) / 1000) // µs
  }
  return samples.sort((a, b) => a - b)
}
const pct = percentile

function delegation(from: SigningKey, to: SigningKey, name: string): DelegationFrame {
  return signDelegation(
    from,
    buildDelegationStatement({
      delegator: from.publicKey.keyid,
      delegate: { keyid: to.publicKey.keyid, publicKey: to.publicKey.text },
      name,
      scope: ['pkg:deb/debian/*'],
      maxDepth: 1,
      version: 1,
      expires: EXPIRES,
      revoked: false
    })
  )
}

function attestation(key: SigningKey, pkg: string, subject: { name: string; sha256: string }[], seq: number): AttestationFrame {
  return signAttestation(
    key,
    buildRebuildStatement({
      package: pkg,
      subject,
      outcome: 'reproduced',
      upstream: subject,
      inputs: { sha256: sha256Hex(`inputs ${pkg}`), materials: [] },
      builder: { id: key.publicKey.keyid, seq, backend: 'debian', software: 'rebuild-quorum/bench' },
      startedOn: STARTED,
      finishedOn: STARTED
    })
  )
}

function policyOf(roots: SigningKey[], threshold: number): Policy {
  return { threshold, count: 'party', maxDissent: 0, maxDepth: 3, roots: roots.map((k, i) => ({ name: `party-${i}`, key: k.publicKey, scope: ['*'] })) }
}

// --- baseline: one raw Ed25519 verify ------------------------------------------------------
const { privateKey, publicKey } = generateKeyPairSync('ed25519')
const message = Buffer.alloc(600, 7) // about one attestation payload + PAE header
const signature = sign(null, message, privateKey)
timeIt(2000, () => verify(null, message, publicKey, signature))
const verifySamples = timeIt(QUICK ? 5000 : 20_000, () => verify(null, message, publicKey, signature))
report.add({ id: 'verify', what: 'baseline: node:crypto Ed25519 verify, 600-byte message (p50)', value: pct(verifySamples, 50), unit: 'µs' })

// --- 1: one artifact, 100 attestations, 1M-statement index --------------------------------
{
  const PKG = 'pkg:deb/debian/hello@2.10-3?arch=source'
  const DEB = 'hello_2.10-3_amd64.deb'
  const H = sha256Hex('hello deb')
  const roots = Array.from({ length: 10 }, () => generateSigningKey())
  const builders = roots.flatMap(() => Array.from({ length: 10 }, () => generateSigningKey()))
  const delegations = builders.map((b, i) => delegation(roots[Math.floor(i / 10)]!, b, `buildd-${i}`))
  const target = builders.map((b) => attestation(b, PKG, [{ name: DEB, sha256: H }], 1))
  const index = new Map<string, readonly AttestationFrame[]>()
  const t0 = performance.now()
  for (let i = 0; i < INDEX_SIZE - target.length; i++) index.set(`pkg:deb/debian/p${i}@1.0?arch=source\nf${i}.deb`, [target[i % target.length]!])
  index.set(`${PKG}\n${DEB}`, target)
  const filled = performance.now() - t0
  const source = (q: { package: string; artifact: string }) => index.get(`${q.package}\n${q.artifact}`) ?? []
  const policy = policyOf(roots, 5)
  const query: ArtifactQuery = { package: PKG, artifact: DEB, sha256: H }
  const cold = timeIt(QUICK ? 20 : 50, () => computeVerdicts(buildTrustGraph({ policy, delegations, now: NOW }), source, [query]))
  const trust = buildTrustGraph({ policy, delegations, now: NOW })
  const check = computeVerdicts(trust, source, [query])[0]!
  if (check.status !== 'reproduced' || check.evidence.claims.length !== 100) throw new Error(`bench setup wrong: ${check.status}`)
  timeIt(200, () => computeVerdicts(trust, source, [query]))
  const warm = timeIt(QUICK ? 500 : 2000, () => computeVerdicts(trust, source, [query]))
  let statements = 0
  for (const list of index.values()) statements += list.length
  const p99 = pct(warm, 99)
  report.add({
    id: 'verdict',
    what: `1 artifact, 100 attestations, index of ${statements.toLocaleString('en')} statements (filled in ${filled.toFixed(0)} ms): p99`,
    value: p99,
    unit: 'µs',
    detail: { p50: pct(warm, 50), max: warm[warm.length - 1]! },
    baseline: 'verify',
    goal: 'p99 ≤ 1 ms',
    met: p99 <= 1000
  })
  report.add({ id: 'verdict-cold', what: '  same, trust graph rebuilt each time (cold walk): p50', value: pct(cold, 50), unit: 'µs', baseline: 'verify' })
}

// --- 2: batch of 10k artifacts --------------------------------------------------------------
{
  const roots = Array.from({ length: 4 }, () => generateSigningKey())
  const queries: ArtifactQuery[] = []
  const index = new Map<string, AttestationFrame[]>()
  for (let p = 0; p < 1000; p++) {
    const pkg = `pkg:deb/debian/pkg${p}@1.0-1?arch=source`
    const subject = Array.from({ length: 10 }, (_, a) => ({ name: `pkg${p}-${a}_1.0-1_amd64.deb`, sha256: sha256Hex(`${p}/${a}`) }))
    const frames = roots.map((r) => attestation(r, pkg, subject, p + 1))
    for (const s of subject) {
      index.set(`${pkg}\n${s.name}`, frames)
      queries.push({ package: pkg, artifact: s.name, sha256: s.sha256 })
    }
  }
  const source = (q: { package: string; artifact: string }) => index.get(`${q.package}\n${q.artifact}`) ?? []
  const policy = policyOf(roots, 3)
  const once = computeVerdicts(buildTrustGraph({ policy, now: NOW }), source, queries)
  if (once.some((v) => v.status !== 'reproduced')) throw new Error('bench setup wrong: batch')
  const coldSamples = timeIt(3, () => computeVerdicts(buildTrustGraph({ policy, now: NOW }), source, queries))
  const trust = buildTrustGraph({ policy, now: NOW })
  computeVerdicts(trust, source, queries)
  const warmSamples = timeIt(3, () => computeVerdicts(trust, source, queries))
  const warm = pct(warmSamples, 50)
  const cold = pct(coldSamples, 50)
  report.add({ id: 'batch', what: '10,000 artifacts (1,000 packages, 4 statements each), per artifact', value: warm / 10_000, unit: 'µs', detail: { 'total ms': warm / 1000 }, baseline: 'verify' })
  report.add({ id: 'batch-cold', what: '  same, new trust graph (1,000 package walks), per artifact', value: cold / 10_000, unit: 'µs', detail: { 'total ms': cold / 1000 }, baseline: 'verify' })
}

// --- 3: delegation walk over 1,000 delegations ----------------------------------------------
{
  const roots = Array.from({ length: 5 }, () => generateSigningKey())
  const orgs = Array.from({ length: 100 }, () => generateSigningKey())
  const delegations: DelegationFrame[] = orgs.map((o, i) => delegation(roots[i % 5]!, o, `org-${i}`))
  for (let i = 0; delegations.length < 1000; i++) delegations.push(delegation(orgs[i % 100]!, generateSigningKey(), `buildd-${i}`))
  const policy = policyOf(roots, 3)
  const purl = 'pkg:deb/debian/hello@2.10-3?arch=source'
  const size = buildTrustGraph({ policy, delegations, now: NOW }).buildersFor(purl).builders.size
  if (size !== 5 + 1000) throw new Error(`bench setup wrong: ${size} builders`)
  timeIt(20, () => buildTrustGraph({ policy, delegations, now: NOW }).buildersFor(purl))
  const cold = timeIt(QUICK ? 50 : 200, () => buildTrustGraph({ policy, delegations, now: NOW }).buildersFor(purl))
  const trust = buildTrustGraph({ policy, delegations, now: NOW })
  trust.buildersFor(purl)
  const warm = timeIt(QUICK ? 2000 : 10_000, () => trust.buildersFor(purl))
  report.add({ id: 'walk', what: '1,000 delegations → 1,005 builders: build graph + first walk (p50)', value: pct(cold, 50), unit: 'µs', detail: { p99: pct(cold, 99) }, baseline: 'verify' })
  report.add({ id: 'walk-warm', what: '  same package again (cached builder set) (p50)', value: pct(warm, 50), unit: 'µs', baseline: 'verify' })
}

report.finish()
