/**
 * Properties of the trust and verdict engine (issue 3), over real Ed25519 frames: a pool of
 * statements is signed once per file and fast-check picks subsets, orders and policies.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { buildTrustGraph, computeVerdict, ConsensusState, evidenceJson, verdictJson, type Policy } from '../../node/consensus/index.js'
import { canonicalJson, sha256Hex, type AttestationFrame, type DelegationFrame, type SigningKey, type VerifiedFrame } from '../../protocol/index.js'
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
  // Claims of every stance: drift (the archive published H, today's rebuild differs, or made no
  // file of this name), faithful rebuilds that differ, and recipes (`built`, no archive).
  for (const sha256 of [X, Y]) {
    attestationPool.push(attest(k, { seq: 7, sha256, outcome: 'mismatch', upstream: H, diff: { tags: ['build-id'], summary: 'drift' } }))
    attestationPool.push(attest(k, { seq: 8, sha256, outcome: 'mismatch', upstream: H, environment: 'faithful' }))
    attestationPool.push(attest(k, { seq: 9, sha256, outcome: 'built' }))
  }
  attestationPool.push(attest(k, { seq: 10, sha256: X, outcome: 'mismatch', upstream: H, upstreamOnly: true }))
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
        // evidenceHash is written from the engine's own JCS text: pinned to the generic canonicaliser
        expect(a.evidenceHash).toBe(sha256Hex(canonicalJson(hashed)))
        expect(JSON.parse(verdictJson(a))).toEqual(JSON.parse(JSON.stringify(a)))
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
        const dissents = before.evidence.claims.some((c) => c.stance === 'contradicts' && c.parties.includes(name))
        if (!dissents && before.status !== 'reproduced') expect(after.status).not.toBe('reproduced')
        // removing a root never adds contradiction or drift either
        expect(after.evidence.dissenting).toBeLessThanOrEqual(before.evidence.dissenting)
        expect(after.evidence.drifted).toBeLessThanOrEqual(before.evidence.drifted)
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

describe('toolchain drift and small coalitions', () => {
  const KEYS = Array.from({ length: 6 }, (_, i) => key(`drift-party-${i}`))
  /** Everything one key may sign about (PKG, DEB): any X (or none), any upstream, either environment, recipes, failures. */
  function anyClaim(k: SigningKey, seq: number, pick: number): AttestationFrame {
    const sha256 = DIGESTS[pick % 3]!
    const upstream = DIGESTS[Math.floor(pick / 3) % 3]!
    switch (Math.floor(pick / 9) % 6) {
      case 0:
        return attest(k, { seq, sha256 }) // reproduced: rebuilt and published the same bytes
      case 1:
        return sha256 === upstream ? attest(k, { seq, sha256 }) : attest(k, { seq, sha256, outcome: 'mismatch', upstream })
      case 2:
        return sha256 === upstream ? attest(k, { seq, sha256, environment: 'faithful' }) : attest(k, { seq, sha256, outcome: 'mismatch', upstream, environment: 'faithful' })
      case 3:
        return attest(k, { seq, sha256, outcome: 'built' })
      case 4:
        return attest(k, { seq, sha256, outcome: 'mismatch', upstream, upstreamOnly: true })
      default:
        return attest(k, { seq, outcome: 'failed' })
    }
  }

  it('a coalition of fewer than k trusted parties (or keys) can never produce "reproduced", whatever it signs', () => {
    const arb = fc.record({
      threshold: fc.integer({ min: 1, max: 5 }),
      count: fc.constantFrom('party' as const, 'key' as const),
      maxDissent: fc.integer({ min: 0, max: 3 }),
      coalition: fc.nat(),
      claims: fc.array(fc.record({ who: fc.nat(), seq: fc.integer({ min: 1, max: 4 }), pick: fc.nat({ max: 53 }) }), { maxLength: 24 }),
      sha256: fc.constantFrom(...DIGESTS)
    })
    fc.assert(
      fc.property(arb, (sc) => {
        const size = sc.coalition % sc.threshold // < k
        // every policy root is trusted; only the coalition's keys sign anything
        const p = policy({ threshold: Math.min(sc.threshold, KEYS.length), count: sc.count, maxDissent: sc.maxDissent, roots: KEYS.map((k, i) => ({ name: `p${i}`, key: k })) })
        const frames = size === 0 ? [] : sc.claims.map((c) => anyClaim(KEYS[c.who % size]!, c.seq, c.pick))
        const v = computeVerdict(buildTrustGraph({ policy: p, now: NOW }), frames, query(sc.sha256))
        expect(v.status).not.toBe('reproduced')
        expect(v.evidence.have).toBeLessThan(sc.threshold)
      }),
      { numRuns: 300 }
    )
  })

  it('honest drift (current environment, the archive published H, any X or none) plus any supporters never gives "mismatch" or "conflict"', () => {
    const arb = fc.record({
      threshold: fc.integer({ min: 1, max: 6 }),
      count: fc.constantFrom('party' as const, 'key' as const),
      maxDissent: fc.integer({ min: 0, max: 2 }),
      stances: fc.array(fc.record({ drift: fc.boolean(), x: fc.constantFrom(X, Y, null), supportKind: fc.nat({ max: 3 }), seq: fc.integer({ min: 1, max: 3 }) }), { minLength: 1, maxLength: 6 }),
      seed: fc.nat()
    })
    fc.assert(
      fc.property(arb, (sc) => {
        const p = policy({ threshold: sc.threshold, count: sc.count, maxDissent: sc.maxDissent, roots: KEYS.map((k, i) => ({ name: `p${i}`, key: k })) })
        const frames = sc.stances.map((s, i) => {
          const k = KEYS[i]!
          if (s.drift) {
            return s.x === null
              ? attest(k, { seq: s.seq, sha256: X, outcome: 'mismatch', upstream: H, upstreamOnly: true, diff: { tags: ['binnmu'], summary: '' } })
              : attest(k, { seq: s.seq, sha256: s.x, outcome: 'mismatch', upstream: H, diff: { tags: ['build-id'], summary: '' } })
          }
          // supporters rebuilt H: the archive published H, or something else, or there is no archive
          if (s.supportKind === 0) return attest(k, { seq: s.seq })
          if (s.supportKind === 1) return attest(k, { seq: s.seq, outcome: 'mismatch', upstream: X })
          if (s.supportKind === 2) return attest(k, { seq: s.seq, environment: 'faithful' })
          return attest(k, { seq: s.seq, outcome: 'built' })
        })
        const v = computeVerdict(buildTrustGraph({ policy: p, now: NOW }), shuffled(frames, sc.seed), query(H))
        expect(['mismatch', 'conflict']).not.toContain(v.status)
        expect(v.evidence.dissenting).toBe(0)
        const drifters = sc.stances.filter((s) => s.drift).length
        expect(v.evidence.drifted).toBe(drifters)
        if (drifters >= sc.threshold && v.evidence.have < sc.threshold) expect(v.status).toBe('unreproducible')
      }),
      { numRuns: 300 }
    )
  })
})
