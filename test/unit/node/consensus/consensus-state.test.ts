import { describe, expect, it } from 'vitest'
import { buildTrustGraph, ConsensusState, Reevaluator, type ArtifactQuery } from '../../../../node/consensus/index.js'
import type { AttestationFrame, VerifiedFrame } from '../../../../protocol/index.js'
import { attest, DEB, delegate, FUTURE, H, key, LIB_PKG, NOW, PKG, policy, shuffled, X } from './fixtures.js'

const r0 = key('r0')
const r1 = key('r1')
const r2 = key('r2')
const buildd = key('buildd')
const p = policy({ threshold: 2, roots: [{ name: 'a', key: r0 }, { name: 'b', key: r1 }, { name: 'c', key: r2 }] })
const q = (artifact = DEB, sha256 = H, pkg = PKG): ArtifactQuery => ({ package: pkg, artifact, sha256 })

describe('ConsensusState', () => {
  it('accepts any kind in any order, idempotently', () => {
    const frames: VerifiedFrame[] = [delegate(r0, buildd), attest(buildd, { seq: 1 }), attest(r1, { seq: 1 }), attest(r1, { seq: 2, sha256: X }), attest(r2, { seq: 7 })]
    const reference = new ConsensusState({ policy: p, now: () => NOW })
    reference.addAll(frames)
    const v = reference.verdict(q())
    for (let seed = 0; seed < 10; seed++) {
      const s = new ConsensusState({ policy: p, now: () => NOW })
      for (const f of shuffled([...frames, ...frames], seed)) s.add(f)
      expect(s.size).toBe(frames.length)
      expect(s.verdict(q())).toEqual(v)
    }
    expect(reference.addAll(frames)).toMatchObject({ added: 0, duplicates: frames.length, changes: [] })
  })

  it('answers package verdicts and explanations', () => {
    const s = new ConsensusState({ policy: p, now: () => NOW })
    s.addAll([delegate(r0, buildd, { name: 'buildd-1' }), attest(buildd, { seq: 1 }), attest(r1, { seq: 1 })])
    expect(s.packageVerdict({ package: PKG, artifacts: [{ name: DEB, sha256: H }] }).status).toBe('reproduced')
    expect(s.explain(buildd.publicKey.keyid, PKG).reason).toMatch(/party "a" through root "a".*"buildd-1"/)
  })

  it('re-judges expiry when the clock passes it (refresh)', () => {
    let now = NOW
    const s = new ConsensusState({ policy: p, now: () => now })
    s.addAll([delegate(r0, buildd, { expires: new Date(NOW + 1000) }), attest(buildd, { seq: 1 }), attest(r1, { seq: 1 })])
    expect(s.watch(q()).status).toBe('reproduced')
    now = NOW + 1000
    const changes = s.refresh()
    expect(changes.map((c) => `${c.before.status}→${c.after.status}`)).toEqual(['reproduced→insufficient'])
  })

  it('setPolicy reports the watched verdicts that change', () => {
    const s = new ConsensusState({ policy: p, now: () => NOW })
    s.addAll([attest(r0, { seq: 1 }), attest(r1, { seq: 1 })])
    s.watch(q())
    const changes = s.setPolicy(policy({ threshold: 3, roots: [{ name: 'a', key: r0 }, { name: 'b', key: r1 }, { name: 'c', key: r2 }] }))
    expect(changes.map((c) => c.after.status)).toEqual(['insufficient'])
  })
})

describe('re-evaluation of watched artifacts', () => {
  function setup() {
    const s = new ConsensusState({ policy: p, now: () => NOW })
    const watched = [q(), q('hello-doc.deb'), q('hello-doc.deb', X), q('libfoo.deb', H, LIB_PKG)]
    for (const w of watched) s.watch(w)
    return s
  }

  it('reports exactly the verdicts that changed, old → new with evidence hashes', () => {
    const s = setup()
    s.add(attest(r0, { seq: 1 }))
    const result = s.add(attest(r1, { seq: 1 }))
    expect(result.changes).toHaveLength(1)
    const [change] = result.changes
    expect(change!.query).toEqual(q())
    expect(change!.before.status).toBe('insufficient')
    expect(change!.after.status).toBe('reproduced')
    expect(change!.statusChanged).toBe(true)
    expect(change!.before.evidenceHash).not.toBe(change!.after.evidenceHash)
    // was reproducible, now is not
    const later = s.add(attest(r2, { seq: 1, sha256: X }))
    expect(later.changes.map((c) => `${c.before.status}→${c.after.status}`)).toEqual(['reproduced→conflict'])
  })

  it('reports evidence-only changes with statusChanged = false', () => {
    const s = setup()
    s.addAll([attest(r0, { seq: 1 }), attest(r1, { seq: 1 })])
    const result = s.add(attest(r1, { seq: 2 })) // same claim, newer statement: frames in the evidence change
    expect(result.changes).toHaveLength(1)
    expect(result.changes[0]!.statusChanged).toBe(false)
  })

  it('touches only affected artifacts; failures touch their package; trust changes touch all', () => {
    const frames: AttestationFrame[] = []
    const source = () => frames
    const trust = buildTrustGraph({ policy: p, now: NOW })
    const re = new Reevaluator({ trust, source })
    for (const w of [q(), q('hello-doc.deb'), q('hello-doc.deb', X), q('libfoo.deb', H, LIB_PKG)]) re.watch(w)
    const base = re.evaluations
    const f1 = attest(r0, { seq: 1 })
    frames.push(f1)
    expect(re.update({ frames: [f1] })).toHaveLength(1)
    expect(re.evaluations - base).toBe(1)

    const doc = attest(r0, { seq: 2, artifact: 'hello-doc.deb' })
    frames.push(doc)
    re.update({ frames: [doc] })
    expect(re.evaluations - base).toBe(1 + 2) // both watched digests of hello-doc.deb

    const failure = attest(r1, { seq: 1, outcome: 'failed' })
    frames.push(failure)
    re.update({ frames: [failure] })
    expect(re.evaluations - base).toBe(1 + 2 + 3) // every watched artifact of the package

    const unrelated = attest(r1, { seq: 2, pkg: 'pkg:deb/debian/zsh@5.9-1?arch=source', artifact: 'zsh.deb' })
    frames.push(unrelated)
    expect(re.update({ frames: [unrelated] })).toEqual([])
    expect(re.evaluations - base).toBe(6)

    re.update({ trust: buildTrustGraph({ policy: p, delegations: [delegate(r2, buildd, { expires: FUTURE })], now: NOW }) })
    expect(re.evaluations - base).toBe(6 + 4)
    expect(re.watched()).toHaveLength(4)
    expect(re.unwatch(q())).toBe(true)
    expect(re.unwatch(q())).toBe(false)
    expect(re.watched()).toHaveLength(3)
  })
})
