/**
 * The node's verdicts — computed from LevelDB through TrustState and VerdictService, the path
 * the API's verdict routes take — equal ConsensusState's (the in-memory engine the offline
 * `rbq verdict` uses) on the same frames, for random policies, keys, delegations (scoped,
 * revoked, expired, narrowed by newer versions), attestations of every outcome, equivocations
 * and strangers' noise. Half the frames are stored before TrustState starts and half after, so
 * its event-driven state (store events, not reloads) is what answers. Real Ed25519 frames, a
 * real LevelDB store and policy file per run.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ConsensusState, equivocationBetween, findEquivocations, formatPolicy, reachableKeys, type Policy } from '../../node/consensus/index.js'
import { toWireVerdict, VerdictService } from '../../node/consensus/verdict-service.js'
import { Store } from '../../node/db/store.js'
import { PolicyFile, policyPath } from '../../node/trust/policy-file.js'
import { TrustState } from '../../node/trust/trust-state.js'
import type { AttestationFrame, DelegationFrame, VerifiedFrame } from '../../protocol/index.js'
import { attest, DEB, delegate, H, key, LIB_PKG, NOW, PAST, PKG, policy, shuffled, X, Y } from '../unit/node/consensus/fixtures.js'
import { makeTempDir } from '../utils/tmp.js'

const DIGESTS = [H, X, Y] as const
const PACKAGES = [PKG, LIB_PKG] as const
const roots = Array.from({ length: 4 }, (_, i) => key(`store-verdicts-root-${i}`))
const delegated = Array.from({ length: 4 }, (_, i) => key(`store-verdicts-delegated-${i}`))
const strangers = Array.from({ length: 2 }, (_, i) => key(`store-verdicts-stranger-${i}`))
const reporter = key('store-verdicts-reporter')

// --- the pool: signed once, subsets picked per run ------------------------------------------
const attestationPool: AttestationFrame[] = []
for (const k of [...roots, ...delegated]) {
  // Two seqs × three digests: picking two of one seq is an equivocation.
  for (const seq of [1, 2]) for (const sha256 of DIGESTS) attestationPool.push(attest(k, { seq, sha256 }))
  attestationPool.push(attest(k, { seq: 3, outcome: 'failed' }))
  attestationPool.push(attest(k, { seq: 4, pkg: LIB_PKG, sha256: X }))
  attestationPool.push(attest(k, { seq: 5, sha256: X, outcome: 'mismatch', upstream: H, diff: { tags: ['build-id'], summary: 'drift' } }))
  attestationPool.push(attest(k, { seq: 6, sha256: Y, outcome: 'mismatch', upstream: H, environment: 'faithful' }))
  attestationPool.push(attest(k, { seq: 7, sha256: Y, outcome: 'built' }))
  attestationPool.push(attest(k, { seq: 8, sha256: X, outcome: 'mismatch', upstream: H, upstreamOnly: true }))
}
/** A consistent claim of H per key, so that agreement (and "reproduced") is common. */
const agreeingPool: AttestationFrame[] = [...roots, ...delegated].map((k) => attest(k, { seq: 9, sha256: H }))
const delegationPool: DelegationFrame[] = []
roots.forEach((r, i) => {
  const d = (n: number) => delegated[(i + n) % delegated.length]!
  delegationPool.push(delegate(r, d(0)))
  delegationPool.push(delegate(r, d(1), { version: 1, maxDepth: 0 }))
  delegationPool.push(delegate(r, d(1), { version: 2, revoked: i % 2 === 0 }))
  delegationPool.push(delegate(r, d(2), { expires: i % 2 === 0 ? PAST : undefined, scope: ['pkg:deb/debian/hello*'] }))
  delegationPool.push(delegate(d(0), d(3), { scope: i === 0 ? ['pkg:npm/*'] : ['*'] }))
})
const strangerPool: VerifiedFrame[] = strangers.flatMap((s, i) => [
  ...DIGESTS.map((sha256, seq) => attest(s, { seq: seq + 1, sha256 })),
  delegate(s, delegated[i]!),
  delegate(s, roots[0]!)
])

/** Picks from a pool by index, so a counterexample prints as numbers rather than frames. */
const pick = <T>(pool: readonly T[], max?: number) =>
  fc.subarray(pool.map((_, i) => i), max === undefined ? {} : { maxLength: max })
const picked = <T>(pool: readonly T[], indexes: readonly number[]) => indexes.map((i) => pool[i]!)

const scenarioArb = fc.record({
  policy: fc.record({
    threshold: fc.integer({ min: 1, max: 3 }),
    count: fc.constantFrom('party' as const, 'key' as const),
    maxDissent: fc.integer({ min: 0, max: 1 }),
    maxDepth: fc.integer({ min: 0, max: 3 }),
    rootCount: fc.integer({ min: 1, max: 4 })
  }),
  agreeing: pick(agreeingPool),
  attestations: pick(attestationPool, 24),
  delegations: pick(delegationPool),
  noise: pick(strangerPool, 6),
  /** How many of the shuffled frames are stored before TrustState starts. */
  before: fc.nat(),
  seed: fc.nat()
})

const makePolicy = (p: { threshold: number; count: 'party' | 'key'; maxDissent: number; maxDepth: number; rootCount: number }): Policy =>
  policy({ ...p, threshold: Math.min(p.threshold, p.rootCount), roots: roots.slice(0, p.rootCount).map((k, i) => ({ name: `p${i}`, key: k })) })

const QUERIES = PACKAGES.flatMap((pkg) => DIGESTS.map((sha256) => ({ package: pkg, artifact: DEB, sha256 })))

describe('verdicts from LevelDB equal ConsensusState on the same frames', () => {
  it('for random policies, delegations, attestations, equivocations and strangers', async () => {
    const { dir, cleanup } = await makeTempDir('rbq-store-verdicts-')
    let run = 0
    const seen = new Set<string>()
    try {
      await fc.assert(
        fc.asyncProperty(scenarioArb, async (sc) => {
          const p = makePolicy(sc.policy)
          // The node stores a proof for each key it sees equivocate (the ingest pipeline does); the
          // in-memory state detects the same keys itself and gets the same proofs.
          const attestations = [...picked(agreeingPool, sc.agreeing), ...picked(attestationPool, sc.attestations)]
          const proofs = findEquivocations(attestations).map((e) => equivocationBetween(e.a, e.b, reporter)!.proof!)
          const frames = shuffled<VerifiedFrame>([...attestations, ...picked(delegationPool, sc.delegations), ...picked(strangerPool, sc.noise), ...proofs], sc.seed)

          const state = new ConsensusState({ policy: p, now: () => NOW })
          state.addAll(frames)
          const expected = state.verdicts(QUERIES)
          for (const v of expected) seen.add(v.status)

          const runDir = join(dir, String(run++))
          const store = await Store.open(join(runDir, 'db'))
          const trust = new TrustState({ store, policy: new PolicyFile(policyPath(runDir)), now: () => NOW })
          try {
            await writeFile(policyPath(runDir), formatPolicy(p))
            const cut = sc.before % (frames.length + 1)
            await store.putFrames(frames.slice(0, cut))
            await trust.start()
            for (const f of frames.slice(cut)) await store.putFrames([f]) // one event each, as gossip brings them
            const service = new VerdictService({ store, trust })

            const fromStore = await service.answer(QUERIES)
            expect(fromStore.map((r) => r.verdicts)).toEqual(expected.map((v) => [toWireVerdict(v)]))
            expect(fromStore.map((r) => r.status)).toEqual(expected.map((v) => v.status))
            // A policy sent with the request reads the same stored trust frames.
            const withText = await service.answer(QUERIES, formatPolicy(p))
            expect(withText.map((r) => r.verdicts[0]?.evidenceHash)).toEqual(expected.map((v) => v.evidenceHash))
            // The quota's trusted keys are the keys the in-memory graph reaches.
            expect([...trust.trustedKeys()].sort()).toEqual([...reachableKeys(state.trust)].sort())
            expect([...trust.equivocators()].sort()).toEqual(state.equivocators())
          } finally {
            trust.stop()
            await store.close()
          }
        }),
        { numRuns: 40 }
      )
    } finally {
      await cleanup()
    }
    // The scenarios reach the verdicts that matter (equality over "insufficient" alone would prove little).
    for (const status of ['reproduced', 'insufficient', 'unknown']) expect(seen).toContain(status)
    expect(['mismatch', 'conflict', 'unreproducible'].some((s) => seen.has(s))).toBe(true)
  }, 60_000)
})
