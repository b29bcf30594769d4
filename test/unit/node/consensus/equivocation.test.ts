import { describe, expect, it } from 'vitest'
import { ConsensusState, EquivocationDetector, equivocationBetween, equivocatorsOf, findEquivocations } from '../../../../node/consensus/index.js'
import { decodeFrame, type EquivocationFrame } from '../../../../protocol/index.js'
import { attest, DEB, delegate, H, key, LIB_PKG, NOW, PKG, policy, X } from './fixtures.js'

const liar = key('liar')
const honest = key('honest')
const reporter = key('reporter')

describe('equivocation', () => {
  it('two different statements with one seq: a proof anybody can check', () => {
    const a = attest(liar, { seq: 4 })
    const b = attest(liar, { seq: 4, sha256: X })
    const e = equivocationBetween(b, a, reporter)!
    expect(e.keyid).toBe(liar.publicKey.keyid)
    expect(e.seq).toBe(4)
    expect(e.a.id < e.b.id).toBe(true)
    const proof = decodeFrame(e.proof!.bytes) as EquivocationFrame
    expect(proof.kind).toBe('equivocation')
    expect(proof.proof.keyid).toBe(liar.publicKey.keyid)
    expect(proof.signer.keyid).toBe(reporter.publicKey.keyid)
    expect(equivocatorsOf([proof])).toEqual(new Set([liar.publicKey.keyid]))
  })

  it('the same statement twice, or a newer seq with another output, is not equivocation', () => {
    const a = attest(honest, { seq: 1 })
    expect(equivocationBetween(a, attest(honest, { seq: 1 }))).toBeUndefined()
    expect(equivocationBetween(a, attest(honest, { seq: 2, sha256: X }))).toBeUndefined()
    expect(equivocationBetween(a, attest(liar, { seq: 1, sha256: X }))).toBeUndefined()
  })

  it('detects across packages (the seq counter is per key, not per artifact)', () => {
    const frames = [attest(liar, { seq: 9 }), attest(liar, { seq: 9, pkg: LIB_PKG }), attest(honest, { seq: 9 }), attest(honest, { seq: 10, pkg: LIB_PKG })]
    expect(findEquivocations(frames).map((e) => e.keyid)).toEqual([liar.publicKey.keyid])
    const detector = new EquivocationDetector()
    const found = frames.map((f) => detector.observe(f)).filter((e) => e !== undefined)
    expect(found).toHaveLength(1)
    expect(found[0]!.proof).toBeUndefined()
    expect(detector.keys()).toEqual([liar.publicKey.keyid])
    // a third conflicting statement is not reported again
    expect(detector.observe(attest(liar, { seq: 9, sha256: X }))).toBeUndefined()
  })

  it('ConsensusState drops the key everywhere; verdicts that used it change', () => {
    const r0 = key('r0')
    const r1 = key('r1')
    const state = new ConsensusState({ policy: policy({ threshold: 2, roots: [{ name: 'a', key: r0 }, { name: 'b', key: r1 }] }), now: () => NOW, reporterKey: reporter })
    state.addAll([delegate(r0, liar), attest(liar, { seq: 1 }), attest(r1, { seq: 1 })])
    const q = { package: PKG, artifact: DEB, sha256: H }
    state.watch(q)
    expect(state.verdict(q).status).toBe('reproduced')
    // the conflicting statement is about another package: the artifact's verdict still changes
    const result = state.add(attest(liar, { seq: 1, pkg: LIB_PKG }))
    expect(result.equivocations).toHaveLength(1)
    expect(result.equivocations[0]!.proof).toBeDefined()
    expect(result.changes.map((c) => [c.before.status, c.after.status])).toEqual([['reproduced', 'insufficient']])
    expect(state.trust.buildersFor(PKG).builders.has(liar.publicKey.keyid)).toBe(false)
    expect(state.equivocators()).toEqual([liar.publicKey.keyid])
  })

  it('a proof from elsewhere excludes the key too, once', () => {
    const r0 = key('r0')
    const state = new ConsensusState({ policy: policy({ threshold: 1, roots: [{ name: 'a', key: r0 }] }), now: () => NOW })
    state.addAll([delegate(r0, liar), attest(liar, { seq: 2 })])
    expect(state.verdict({ package: PKG, artifact: DEB, sha256: H }).status).toBe('reproduced')
    const e = equivocationBetween(attest(liar, { seq: 5 }), attest(liar, { seq: 5, sha256: X }), key('someone-else'))!
    expect(state.add(e.proof!).added).toBe(1)
    expect(state.verdict({ package: PKG, artifact: DEB, sha256: H }).status).toBe('unknown')
    expect(state.add(e.proof!).duplicates).toBe(1)
  })
})
