/**
 * Properties of the trust and verdict engine (issue 3), over real Ed25519 frames: a pool of
 * statements is signed once per file and fast-check picks subsets, orders and policies.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { buildTrustGraph, computeVerdict, ConsensusState, evidenceJson, type Policy } from '../../node/consensus/index.js'
import { canonicalJson, type AttestationFrame, type DelegationFrame, type SigningKey, type VerifiedFrame } from '../../protocol/index.js'
import { attest, DEB, delegate, H, key, LIB_PKG, NOW, PAST, PKG, policy, shuffled, X, Y } from '../unit/node/consensus/fixtures.js'

const DIGESTS = [H, X, Y] as const
const roots = Array.from({ length: 5 }, (_, i) => key(`prop-root-${i}`))
const delegated = Array.from({ length: 5 }, (_, i) => key(`prop-delegated-${i}`))
const untrusted = Array.from({ length: 3 }, (_, i) => key(`prop-untrusted-${i}`))
const id = (k: SigningKey) => k.publicKey.keyid

// --- the pool ------------------------------------------------------------------------------
/** Every trusted-capable key: 3 seqs × 3 digests (so same-seq pairs are equivocations), a failure, and another package. */
const attestationPool: AttestationFrame[] = []
for (const k of [...roots, ...delegated]) {
  for (const seq of [1, 2, 3]) for (const sha256 of DIGESTS) attestationPool.push(attest(k, { seq, sha256 }))
  attestationPool.push(attest(k, { seq: 4, outcome: 'failed' }))
  attestationPool.push(attest(k, { seq: 5, pkg: LIB_PKG }))
}
/** A later, consistent claim of H per key, so that agreement (and "reproduced") is common. */
const agreeingPool: AttestationFrame[] = [...roots, ...delegated].map((k) => attest(k, { seq: 6, sha256: H }))
/** Delegations root_i → delegated_j and delegated → delegated, with newer versions that revoke, expire or narrow. */
const delegationPool: DelegationFrame[] = []
roots.forEach((r, i) => {
  delegationPool.push(delegate(r, delegated[i]!, { version: 1 }))
  delegationPool.push(delegate(r, delegated[(i + 1) % 5]!, { version: 1, maxDepth: 0 }))
  delegationPool.push(delegate(r, delegated[(i + 1) % 5]!, { version: 2, revoked: i % 2 === 0 }))
  delegationPool.push(delegate(r, delegated[(i + 2) % 5]!, { version: 1, expires: i % 2 === 0 ? PAST : undefined, scope: ['pkg:deb/debian/*'] }))
  delegationPool.push(delegate(delegated[i]!, delegated[(i + 3) % 5]!, { version: 1, scope: i === 0 ? ['pkg:npm/*'] : ['*'] }))
})
/** Frames by keys nobody trusts: attestations of every kind, and delegations to trusted keys and each other. */
const untrustedPool: VerifiedFrame[] = []
for (const u of untrusted) {
  for (const seq of [1, 2]) for (const sha256 of DIGESTS) untrustedPool.push(attest(u, { seq, sha256 }))
  untrustedPool.push(attest(u, { seq: 3, outcome: 'failed' }))
  untrustedPool.push(delegate(u, delegated[0]!), delegate(u, untrusted[(untrusted.indexOf(u) + 1) % 3]!), delegate(u, roots[0]!))
}

const policyArb = fc.record({
  threshold: fc.integer({ min: 1, max: 4 }),
  count: fc.constantFrom('party' as const, 'key' as const),
  maxDissent: fc.integer({ min: 0, max: 1 }),
  maxDepth: fc.integer({ min: 0, max: 3 }),
  rootCount: fc.integer({ min: 1, max: 5 })
})
const makePolicy = (p: { threshold: number; count: 'party' | 'key'; maxDissent: number; maxDepth: number; rootCount: number }): Policy =>
  policy({ ...p, roots: roots.slice(0, p.rootCount).map((k, i) => ({ name: `p${i}`, key: k })) })

const scenarioArb = fc.record({
  policy: policyArb,
  attestations: fc
    .tuple(fc.subarray(agreeingPool), fc.subarray(attestationPool, { maxLength: 20 }))
    .map(([agreeing, any]) => [...agreeing, ...any]),
  delegations: fc.subarray(delegationPool),
  sha256: fc.constantFrom(...DIGESTS),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 })
})

const query = (sha256: string) => ({ package: PKG, artifact: DEB, sha256 })

function stateVerdict(p: Policy, frames: readonly VerifiedFrame[], sha256: string) {
  const s = new ConsensusState({ policy: p, now: () => NOW })
  s.addAll(frames)
  return { state: s, verdict: s.verdict(query(sha256)) }
}

describe('consensus properties', () => {
  it('order independence: any permutation gives the same verdict and evidence hash', () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        const p = makePolicy(sc.policy)
        const frames: VerifiedFrame[] = [...sc.attestations, ...sc.delegations]
        const a = stateVerdict(p, frames, sc.sha256).verdict
        const b = stateVerdict(p, shuffled(frames, sc.seed), sc.sha256).verdict
        expect(b.status).toBe(a.status)
        expect(b.evidenceHash).toBe(a.evidenceHash)
        const { evidenceHash: _, ...hashed } = a
        expect(evidenceJson(hashed)).toBe(canonicalJson(hashed))
        // the pure engine over plain arrays agrees with itself under permutation too
        const trust = buildTrustGraph({ policy: p, delegations: shuffled(sc.delegations, sc.seed + 1), now: NOW })
        const pure1 = computeVerdict(trust, sc.attestations, query(sc.sha256))
        const pure2 = computeVerdict(buildTrustGraph({ policy: p, delegations: sc.delegations, now: NOW }), shuffled(sc.attestations, sc.seed), query(sc.sha256))
        expect(pure2.evidenceHash).toBe(pure1.evidenceHash)
      }),
      { numRuns: 100 }
    )
  })

  it('untrusted keys never change a verdict', () => {
    fc.assert(
      fc.property(scenarioArb, fc.subarray(untrustedPool, { minLength: 1 }), (sc, noise) => {
        const p = makePolicy(sc.policy)
        const base: VerifiedFrame[] = [...sc.attestations, ...sc.delegations]
        const clean = stateVerdict(p, base, sc.sha256).verdict
        const noisy = stateVerdict(p, shuffled([...base, ...noise], sc.seed), sc.sha256).verdict
        expect(noisy.evidenceHash).toBe(clean.evidenceHash)
        expect(noisy.status).toBe(clean.status)
      }),
      { numRuns: 100 }
    )
  })

  it('monotonic in trust: removing a root never adds support, and removing a non-dissenting root never makes "reproduced"', () => {
    fc.assert(
      fc.property(scenarioArb, fc.nat(), (sc, which) => {
        const p = makePolicy({ ...sc.policy, rootCount: Math.max(2, sc.policy.rootCount) })
        const removed = which % p.roots.length
        const fewer: Policy = { ...p, roots: p.roots.filter((_, i) => i !== removed) }
        const before = computeVerdict(buildTrustGraph({ policy: p, delegations: sc.delegations, now: NOW }), sc.attestations, query(sc.sha256))
        const after = computeVerdict(buildTrustGraph({ policy: fewer, delegations: sc.delegations, now: NOW }), sc.attestations, query(sc.sha256))
        expect(after.evidence.have).toBeLessThanOrEqual(before.evidence.have)
        const name = p.roots[removed]!.name
        const dissents = before.evidence.claims.some((c) => c.sha256 !== null && c.sha256 !== sc.sha256 && c.parties.includes(name))
        if (!dissents && before.status !== 'reproduced') expect(after.status).not.toBe('reproduced')
      }),
      { numRuns: 250 }
    )
  })

  it('equivocation: keys that sign two statements with one seq leave every effective set; honest keys never do', () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        const p = makePolicy({ ...sc.policy, rootCount: 5, maxDepth: 3 })
        const frames: VerifiedFrame[] = shuffled([...sc.attestations, ...sc.delegations], sc.seed)
        const { state } = stateVerdict(p, frames, sc.sha256)
        const bySlot = new Map<string, Set<string>>()
        for (const f of sc.attestations) {
          const slot = `${f.signer.keyid}|${f.statement.predicate.builder.seq}`
          bySlot.set(slot, (bySlot.get(slot) ?? new Set()).add(f.payloadDigest))
        }
        const liars = new Set([...bySlot].filter(([, payloads]) => payloads.size > 1).map(([slot]) => slot.split('|')[0]!))
        expect(state.equivocators()).toEqual([...liars].sort())
        const withoutProofs = buildTrustGraph({ policy: p, delegations: sc.delegations, now: NOW })
        for (const purl of [PKG, LIB_PKG]) {
          const effective = state.trust.buildersFor(purl).builders
          for (const liar of liars) expect(effective.has(liar)).toBe(false)
          // honest keys stay exactly when they are reachable without passing through a liar
          for (const k of withoutProofs.buildersFor(purl).builders.values()) {
            if (liars.has(k.keyid)) continue
            const throughLiar = k.chain.some((e) => liars.has(e.delegator))
            if (!throughLiar) expect(effective.has(k.keyid)).toBe(true)
          }
        }
      }),
      { numRuns: 100 }
    )
  })
})

// --- safety --------------------------------------------------------------------------------
/** Each party i: root r_i and its build server s_i. Honest parties attest T = H only, once. */
const T = H
const servers = Array.from({ length: 5 }, (_, i) => key(`safety-server-${i}`))
const sybils = Array.from({ length: 3 }, (_, i) => key(`safety-sybil-${i}`))
const honestAttestations = new Map<string, AttestationFrame[]>()
const honestDelegations = new Map<string, DelegationFrame>()
const coalitionFrames = new Map<string, VerifiedFrame[]>()
roots.forEach((r, i) => {
  const s = servers[i]!
  honestAttestations.set(id(r), [attest(r, { seq: 1, sha256: T }), attest(s, { seq: 1, sha256: T })])
  honestDelegations.set(id(r), delegate(r, s))
  // What a compromised party can sign: any digest, reused seqs, delegations to anyone.
  const forged: VerifiedFrame[] = []
  for (const k of [r, s]) {
    for (const seq of [1, 2]) for (const sha256 of DIGESTS) forged.push(attest(k, { seq, sha256 }))
    for (const target of [...roots, ...servers, ...sybils]) if (target !== k) forged.push(delegate(k, target, { version: 1 + (seq2(k, target) % 3) }))
  }
  coalitionFrames.set(id(r), forged)
})
function seq2(a: SigningKey, b: SigningKey): number {
  return parseInt(id(a).slice(0, 4), 16) + parseInt(id(b).slice(0, 4), 16)
}
const sybilFrames: VerifiedFrame[] = sybils.flatMap((s) => DIGESTS.map((sha256, i) => attest(s, { seq: i + 1, sha256 })))

describe('safety', () => {
  it('a coalition of fewer than k parties never makes a file "reproduced" unless honest parties attested that digest', () => {
    const arb = fc
      .record({
        threshold: fc.integer({ min: 1, max: 5 }),
        maxDissent: fc.integer({ min: 0, max: 2 }),
        order: fc.shuffledSubarray([0, 1, 2, 3, 4], { minLength: 5, maxLength: 5 }),
        coalitionSize: fc.nat(),
        honestShown: fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
        forgedPick: fc.array(fc.nat(), { maxLength: 40 }),
        sybilPick: fc.subarray(sybilFrames),
        sha256: fc.constantFrom(...DIGESTS),
        seed: fc.nat()
      })
      .map((x) => ({ ...x, coalitionSize: x.coalitionSize % x.threshold })) // < k parties
    fc.assert(
      fc.property(arb, (sc) => {
        const p = policy({ threshold: sc.threshold, maxDissent: sc.maxDissent, roots: roots.map((k, i) => ({ name: `p${i}`, key: k })) })
        const coalition = sc.order.slice(0, sc.coalitionSize).map((i) => roots[i]!)
        const honest = sc.order.slice(sc.coalitionSize).map((i) => roots[i]!)
        const frames: VerifiedFrame[] = [...sc.sybilPick]
        const honestFramesOfT: AttestationFrame[] = []
        honest.forEach((r, i) => {
          frames.push(honestDelegations.get(id(r))!)
          if (sc.honestShown[i]) {
            frames.push(...honestAttestations.get(id(r))!)
            honestFramesOfT.push(...honestAttestations.get(id(r))!)
          }
        })
        const forged = coalition.flatMap((r) => coalitionFrames.get(id(r))!)
        if (forged.length > 0) for (const n of sc.forgedPick) frames.push(forged[n % forged.length]!)
        const { verdict } = stateVerdict(p, shuffled(frames, sc.seed), sc.sha256)
        if (verdict.status === 'reproduced') {
          expect(sc.sha256).toBe(T)
          expect(honestFramesOfT.length).toBeGreaterThan(0)
          expect(verdict.evidence.support.some((s) => honest.some((r) => `p${roots.indexOf(r)}` === s.party))).toBe(true)
        }
      }),
      { numRuns: 300 }
    )
  })
})
