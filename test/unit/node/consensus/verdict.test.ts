import { describe, expect, it } from 'vitest'
import {
  buildTrustGraph,
  computePackageVerdict,
  computeVerdict,
  computeVerdicts,
  evidenceJson,
  normalizeQuery,
  worstOf,
  VERDICT_SEVERITY,
  type Policy
} from '../../../../node/consensus/index.js'
import { canonicalJson, RbqError, sha256Hex, type AttestationFrame, type DelegationFrame, type SigningKey } from '../../../../protocol/index.js'
import { attest, DEB, delegate, H, INPUTS, INPUTS_B, key, NOW, PKG, policy, shuffled, X, Y } from './fixtures.js'

const r = ['r0', 'r1', 'r2', 'r3'].map(key) as [SigningKey, SigningKey, SigningKey, SigningKey]
const outsider = key('outsider')

function roots(n: number) {
  return r.slice(0, n).map((k, i) => ({ name: `party-${i}`, key: k }))
}

function verdict(p: Policy, attestations: AttestationFrame[], opts: { delegations?: DelegationFrame[]; sha256?: string } = {}) {
  const trust = buildTrustGraph({ policy: p, delegations: opts.delegations ?? [], now: NOW })
  return computeVerdict(trust, attestations, { package: PKG, artifact: DEB, sha256: opts.sha256 ?? H })
}

const k2of3 = policy({ threshold: 2, roots: roots(3) })

describe('verdicts (node/consensus/README.md)', () => {
  it('unknown: no statement at all, or only untrusted ones', () => {
    expect(verdict(k2of3, []).status).toBe('unknown')
    const v = verdict(k2of3, [attest(outsider, { seq: 1 }), attest(key('o2'), { seq: 1 })])
    expect(v.status).toBe('unknown')
    expect(v.reason).toBe(`no trusted statement about ${DEB} in ${PKG}`)
  })

  it('reproduced: k parties attest H, no dissent', () => {
    const v = verdict(k2of3, [attest(r[0], { seq: 1 }), attest(r[1], { seq: 1 })])
    expect(v.status).toBe('reproduced')
    expect(v.evidence).toMatchObject({ have: 2, need: 2, dissenting: 0 })
    expect(v.evidence.support.map((s) => s.party)).toEqual(['party-0', 'party-1'])
    expect(v.reason).toMatch(/^2 parties rebuilt [0-9a-f]{12} \(party-0, party-1; 2 needed\)$/)
  })

  it('insufficient: fewer than k, no dissent (have/need)', () => {
    const v = verdict(k2of3, [attest(r[0], { seq: 1 })])
    expect(v.status).toBe('insufficient')
    expect(v.evidence).toMatchObject({ have: 1, need: 2 })
  })

  it('mismatch (published-other): k parties saw the archive publish another file under this name', () => {
    // outcome reproduced with upstream X: they rebuilt X and the archive published X
    const v = verdict(k2of3, [attest(r[0], { seq: 1, sha256: X }), attest(r[1], { seq: 1, sha256: X })])
    expect(v.status).toBe('mismatch')
    expect(v.evidence).toMatchObject({ have: 0, dissenting: 2, drifted: 0 })
    expect(v.evidence.dissent).toEqual([{ sha256: X, have: 2, support: expect.any(Array) }])
    expect(v.evidence.claims.map((c) => [c.upstream, c.stance])).toEqual([[X, 'contradicts'], [X, 'contradicts']])
    expect(v.reason).toBe(`2 parties saw the archive publish ${X.slice(0, 12)} as ${DEB}; this file (${H.slice(0, 12)}) was never published`)
    // even when they rebuilt other bytes than the archive published (current environment)
    const drifted = verdict(k2of3, [attest(r[0], { seq: 1, sha256: Y, outcome: 'mismatch', upstream: X }), attest(r[1], { seq: 1, sha256: Y, outcome: 'mismatch', upstream: X })])
    expect(drifted.status).toBe('mismatch')
    expect(drifted.reason).toMatch(/saw the archive publish/)
  })

  it('mismatch (faithful-differs): k parties rebuilt it in the archive\'s own environment and got other bytes', () => {
    const faithful = (k: SigningKey) => attest(k, { seq: 1, sha256: X, outcome: 'mismatch', upstream: H, environment: 'faithful', diff: { tags: ['content'], summary: 'usr/bin/hello differs' } })
    const v = verdict(k2of3, [faithful(r[0]), faithful(r[1])])
    expect(v.status).toBe('mismatch')
    expect(v.evidence).toMatchObject({ have: 0, dissenting: 2, drifted: 0, tags: ['content'] })
    expect(v.evidence.claims.map((c) => [c.environment, c.stance, c.summary])).toEqual([
      ['faithful', 'contradicts', 'usr/bin/hello differs'],
      ['faithful', 'contradicts', 'usr/bin/hello differs']
    ])
    expect(v.reason).toBe(`2 parties rebuilt ${DEB} in the archive's own build environment and got ${X.slice(0, 12)}, not ${H.slice(0, 12)}: the archive's binary does not come from its source`)
  })

  it('mismatch (not-from-source): without an archive to compare with (recipes, built), other bytes contradict', () => {
    const v = verdict(k2of3, [attest(r[0], { seq: 1, sha256: X, outcome: 'built' }), attest(r[1], { seq: 1, sha256: X, outcome: 'built' })])
    expect(v.status).toBe('mismatch')
    expect(v.reason).toMatch(/not what its source builds to/)
  })

  it('unreproducible: the archive published H and k parties rebuilt other bytes with today\'s toolchain', () => {
    const drift = (k: SigningKey, sha256: string, tags: string[]) => attest(k, { seq: 1, sha256, outcome: 'mismatch', upstream: H, diff: { tags, summary: 'x'.repeat(400) } })
    const v = verdict(k2of3, [drift(r[0], X, ['build-id']), drift(r[1], Y, ['changelog', 'build-id'])])
    expect(v.status).toBe('unreproducible')
    expect(v.evidence).toMatchObject({ have: 0, dissenting: 0, drifted: 2, tags: ['build-id', 'changelog'] })
    expect(v.evidence.claims.every((c) => c.stance === 'drift' && c.upstream === H && c.environment === 'current')).toBe(true)
    expect(v.evidence.claims[0]!.summary).toHaveLength(300)
    expect(v.reason).toBe("not reproducible with today's toolchain: 2 parties rebuilt other bytes (build-id, changelog); the archive published this file; not a sign of tampering")
    // the bytes they both rebuilt are reproduced (k parties rebuilt exactly them)
    expect(verdict(k2of3, [drift(r[0], X, ['build-id']), drift(r[1], X, ['build-id'])], { sha256: X }).status).toBe('reproduced')
    // any other file under this name contradicts what the archive published: the alarm
    expect(verdict(k2of3, [drift(r[0], X, ['build-id']), drift(r[1], Y, ['build-id'])], { sha256: sha256Hex('tampered') }).status).toBe('mismatch')
    // fewer than k drifted claims: insufficient, with the drift named
    const one = verdict(k2of3, [drift(r[0], X, ['build-id'])])
    expect(one.status).toBe('insufficient')
    expect(one.reason).toMatch(/1 party rebuilt other bytes with today's toolchain \(build-id\), not dissent$/)
  })

  it('drift never counts as dissent: it never blocks reproduced and never causes mismatch', () => {
    const drift = (k: SigningKey) => attest(k, { seq: 1, sha256: X, outcome: 'mismatch', upstream: H })
    const v = verdict(k2of3, [attest(r[0], { seq: 1 }), attest(r[1], { seq: 1 }), drift(r[2])])
    expect(v.status).toBe('reproduced')
    expect(v.evidence).toMatchObject({ have: 2, dissenting: 0, drifted: 1 })
    expect(verdict(k2of3, [attest(r[0], { seq: 1 }), drift(r[1]), drift(r[2])]).status).toBe('unreproducible')
    expect(verdict(k2of3, [attest(r[0], { seq: 1 }), drift(r[1]), drift(r[2])]).reason).toMatch(/; 1 of 2 rebuilt it exactly$/)
  })

  it('a binNMU-like claim (the rebuild made no file of this name, X = null) is drift when the archive published H, and contradicts otherwise', () => {
    const binnmu = (k: SigningKey, upstream: string) => attest(k, { seq: 1, sha256: Y, outcome: 'mismatch', upstream, upstreamOnly: true, diff: { tags: ['binnmu'], summary: '+b1 entry missing' } })
    const v = verdict(k2of3, [binnmu(r[0], H), binnmu(r[1], H)])
    expect(v.status).toBe('unreproducible')
    expect(v.evidence.claims.map((c) => [c.sha256, c.upstream, c.stance])).toEqual([[null, H, 'drift'], [null, H, 'drift']])
    expect(v.reason).toBe(`not reproducible with today's toolchain: 2 parties built no file named ${DEB} (binnmu); the archive published this file; not a sign of tampering`)
    const other = verdict(k2of3, [binnmu(r[0], X), binnmu(r[1], X)])
    expect(other.status).toBe('mismatch')
    expect(other.reason).toMatch(/saw the archive publish/)
  })

  it('conflict: supporters and contradictors both reach k, whatever max_dissent (no first-come tie-break)', () => {
    const p = policy({ threshold: 2, roots: roots(4), maxDissent: 5 })
    const frames = [attest(r[0], { seq: 1 }), attest(r[1], { seq: 1 }), attest(r[2], { seq: 1, sha256: X }), attest(r[3], { seq: 1, sha256: X })]
    const v = verdict(p, frames)
    expect(v.status).toBe('conflict')
    expect(v.reason).toMatch(/each reaching the threshold 2/)
    expect(verdict(p, frames, { sha256: X }).status).toBe('conflict')
  })

  it('contradicting causes are all named when they mix', () => {
    const p = policy({ threshold: 2, roots: roots(3) })
    const v = verdict(p, [attest(r[0], { seq: 1, sha256: X }), attest(r[1], { seq: 1, sha256: X, outcome: 'mismatch', upstream: H, environment: 'faithful' })])
    expect(v.status).toBe('mismatch')
    expect(v.reason).toMatch(/^1 party saw the archive publish .*; 1 party rebuilt .* in the archive's own build environment/)
  })

  it('conflict vs reproduced: dissent beyond max_dissent fails closed', () => {
    const frames = [attest(r[0], { seq: 1 }), attest(r[1], { seq: 1 }), attest(r[2], { seq: 1, sha256: X })]
    expect(verdict(k2of3, frames).status).toBe('conflict')
    const tolerant = policy({ threshold: 2, roots: roots(3), maxDissent: 1 })
    const v = verdict(tolerant, frames)
    expect(v.status).toBe('reproduced')
    expect(v.evidence.dissenting).toBe(1)
    expect(v.reason).toMatch(/1 dissent, within max_dissent 1/)
  })

  it('conflict when nothing reaches k and trusted parties disagree', () => {
    expect(verdict(k2of3, [attest(r[0], { seq: 1 }), attest(r[1], { seq: 1, sha256: X })]).status).toBe('conflict')
    expect(verdict(k2of3, [attest(r[0], { seq: 1, sha256: X })]).status).toBe('conflict')
    const tolerant = policy({ threshold: 2, roots: roots(3), maxDissent: 1 })
    expect(verdict(tolerant, [attest(r[0], { seq: 1 }), attest(r[1], { seq: 1, sha256: X })]).status).toBe('insufficient')
  })

  it('mismatch turns into conflict when someone trusted also attests H beyond max_dissent', () => {
    const frames = [attest(r[0], { seq: 1, sha256: X }), attest(r[1], { seq: 1, sha256: X }), attest(r[2], { seq: 1 })]
    expect(verdict(k2of3, frames).status).toBe('conflict')
  })

  it('failed: only when trusted builders report only failures', () => {
    const v = verdict(k2of3, [attest(r[0], { seq: 1, outcome: 'failed' }), attest(outsider, { seq: 1 })])
    expect(v.status).toBe('failed')
    expect(v.evidence.failed).toEqual([{ party: 'party-0', keyid: r[0].publicKey.keyid }])
    // a failure next to a digest claim is ignored for counting
    expect(verdict(k2of3, [attest(r[0], { seq: 1, outcome: 'failed' }), attest(r[1], { seq: 1 })]).status).toBe('insufficient')
  })

  it('a failure never erases an earlier digest claim of the same key', () => {
    const v = verdict(k2of3, [attest(r[0], { seq: 1 }), attest(r[0], { seq: 2, outcome: 'failed' }), attest(r[1], { seq: 1 })])
    expect(v.status).toBe('reproduced')
  })

  it('outcomes: a "mismatch" statement claims its subject digest; "built" counts like "reproduced"', () => {
    // r0 rebuilt H but compared with another upstream: its claim is still H
    const v = verdict(k2of3, [attest(r[0], { seq: 1, outcome: 'mismatch', upstream: X }), attest(r[1], { seq: 1, outcome: 'built' })])
    expect(v.status).toBe('reproduced')
    expect(v.evidence.claims.map((c) => c.outcome).sort()).toEqual(['built', 'mismatch'])
    // asked about the upstream digest X: r0 saw the archive publish X and rebuilt H in a
    // current environment: drift, not dissent (one party: insufficient)
    const asX = verdict(k2of3, [attest(r[0], { seq: 1, outcome: 'mismatch', upstream: X })], { sha256: X })
    expect(asX.status).toBe('insufficient')
    expect(asX.evidence.claims[0]).toMatchObject({ sha256: H, upstream: X, stance: 'drift' })
  })

  it('the highest seq is the current claim, whatever the order; the change is a flip', () => {
    const old = attest(r[0], { seq: 1, sha256: X })
    const newer = attest(r[0], { seq: 2 })
    for (const frames of [[old, newer, attest(r[1], { seq: 5 })], [attest(r[1], { seq: 5 }), newer, old]]) {
      const v = verdict(k2of3, frames)
      expect(v.status).toBe('reproduced')
      expect(v.evidence.flips).toEqual([
        { keyid: r[0].publicKey.keyid, party: 'party-0', from: expect.objectContaining({ sha256: X, seq: 1 }), to: expect.objectContaining({ sha256: H, seq: 2 }), sameInputs: true }
      ])
    }
  })

  it('an institution with 10 build servers is one party; count = "key" counts them', () => {
    const servers = Array.from({ length: 10 }, (_, i) => key(`buildd-${i}`))
    const delegations = servers.map((s) => delegate(r[0], s))
    const frames = servers.map((s) => attest(s, { seq: 1 }))
    const byParty = verdict(policy({ threshold: 2, roots: roots(2) }), frames, { delegations })
    expect(byParty.status).toBe('insufficient')
    expect(byParty.evidence.have).toBe(1)
    expect(byParty.evidence.claims).toHaveLength(10)
    const byKey = verdict(policy({ threshold: 3, count: 'key', roots: roots(2) }), frames, { delegations })
    expect(byKey.status).toBe('reproduced')
    expect(byKey.evidence.have).toBe(10)
    expect(byKey.reason).toMatch(/^10 keys rebuilt [0-9a-f]{12} \(.*; 3 needed\)$/)
  })

  it('a key reachable from two roots counts once', () => {
    const shared = key('shared')
    const v = verdict(policy({ threshold: 2, roots: roots(2) }), [attest(shared, { seq: 1 })], { delegations: [delegate(r[0], shared), delegate(r[1], shared)] })
    expect(v.status).toBe('insufficient')
    expect(v.evidence.have).toBe(1)
    expect(v.evidence.claims[0]!.parties).toEqual(['party-0', 'party-1'])
  })

  it('parties are matched to distinct keys, independent of [[root]] order', () => {
    // party-0 reaches k1 and k2; party-1 reaches only k1. A matching finds 2 (party-0→k2, party-1→k1).
    const k1 = key('k1')
    const k2 = key('k2')
    const delegations = [delegate(r[0], k1), delegate(r[0], k2), delegate(r[1], k1)]
    const frames = [attest(k1, { seq: 1 }), attest(k2, { seq: 1 })]
    const forward = verdict(policy({ threshold: 2, roots: roots(2) }), frames, { delegations })
    const backward = verdict(policy({ threshold: 2, roots: roots(2).reverse() }), frames, { delegations })
    expect(forward.status).toBe('reproduced')
    expect(backward.status).toBe('reproduced')
    expect(forward.evidence.support).toEqual([
      { party: 'party-0', keyid: k2.publicKey.keyid },
      { party: 'party-1', keyid: k1.publicKey.keyid }
    ])
  })

  it('statements outside the root scope, for other packages or artifacts are ignored', () => {
    const scoped = policy({ threshold: 1, roots: [{ name: 'npm-only', key: r[0], scope: ['pkg:npm/*'] }] })
    expect(verdict(scoped, [attest(r[0], { seq: 1 })]).status).toBe('unknown')
    const p = policy({ threshold: 1, roots: roots(1) })
    expect(verdict(p, [attest(r[0], { seq: 1, pkg: 'pkg:deb/debian/hello@2.10-4?arch=source' })]).status).toBe('unknown')
    expect(verdict(p, [attest(r[0], { seq: 1, artifact: 'other.deb' })]).status).toBe('unknown')
  })

  it('equivocation inside the artifact statements drops the key', () => {
    const v = verdict(k2of3, [attest(r[0], { seq: 3 }), attest(r[0], { seq: 3, sha256: X }), attest(r[1], { seq: 1 })])
    expect(v.status).toBe('insufficient')
    expect(v.evidence.equivocators).toEqual([r[0].publicKey.keyid])
  })

  it('evidence: distinct inputs behind the support, sorted frames, stable hash', () => {
    const frames = [attest(r[0], { seq: 1, inputs: INPUTS }), attest(r[1], { seq: 1, inputs: INPUTS_B }), attest(r[2], { seq: 9, inputs: INPUTS })]
    const v = verdict(k2of3, frames)
    expect(v.evidence.inputs).toEqual([INPUTS, INPUTS_B].sort())
    expect(v.evidence.frames).toEqual(frames.map((f) => f.id).sort())
    expect(v.evidenceHash).toMatch(/^[0-9a-f]{64}$/)
    for (let seed = 0; seed < 10; seed++) expect(verdict(k2of3, shuffled(frames, seed)).evidenceHash).toBe(v.evidenceHash)
    expect(verdict(k2of3, [...frames, attest(outsider, { seq: 1, sha256: Y })]).evidenceHash).toBe(v.evidenceHash)
  })

  it('the evidence hash is sha256 of the JCS canonical JSON of { status, reason, evidence }, every field included', () => {
    const shared = key('shared')
    const frames = [
      attest(r[0], { seq: 1, sha256: X }),
      attest(r[0], { seq: 2 }), // a flip
      attest(r[1], { seq: 1, inputs: INPUTS_B }),
      attest(r[2], { seq: 1, sha256: Y }), // dissent
      attest(r[3], { seq: 1, outcome: 'failed' }), // failed
      attest(shared, { seq: 4 }),
      attest(shared, { seq: 4, sha256: X }), // equivocation
      attest(key('drifter'), { seq: 1, sha256: X, outcome: 'mismatch', upstream: H, upstreamOnly: true, diff: { tags: ['build-id'], summary: 'é'.repeat(301) } }) // drift, X = null
    ]
    const p = policy({ threshold: 2, roots: roots(4), maxDissent: 1 })
    const v = verdict(p, frames, { delegations: [delegate(r[1], shared), delegate(r[2], key('drifter'))] })
    for (const field of ['support', 'dissent', 'failed', 'flips', 'equivocators', 'claims', 'inputs', 'frames', 'tags'] as const) {
      expect(v.evidence[field].length, field).toBeGreaterThan(0)
    }
    expect(v.evidence.drifted).toBe(1)
    expect(v.evidence.claims.some((c) => c.sha256 === null && c.upstream === H && c.summary !== null && c.tags.length > 0)).toBe(true)
    const { evidenceHash, ...rest } = v
    expect(evidenceJson(rest)).toBe(canonicalJson(rest))
    expect(evidenceHash).toBe(sha256Hex(canonicalJson(rest)))
    const pv = computePackageVerdict(buildTrustGraph({ policy: p, now: NOW }), frames, { package: PKG, artifacts: [{ name: DEB, sha256: H }] })
    const input = { package: pv.package, status: pv.status, reason: pv.reason, artifacts: pv.artifacts.map((a) => a.evidenceHash) }
    expect(pv.evidenceHash).toBe(sha256Hex(canonicalJson(input)))
  })

  it('removing a dissenting root can turn conflict into reproduced: the verifier stopped trusting the dissenter', () => {
    const frames = [attest(r[0], { seq: 1 }), attest(r[1], { seq: 1 }), attest(r[2], { seq: 1, sha256: X })]
    expect(verdict(k2of3, frames).status).toBe('conflict')
    expect(verdict(policy({ threshold: 2, roots: roots(2) }), frames).status).toBe('reproduced')
  })

  it('queries are normalised: canonical purl, lowercase digest; bad input is a typed error', () => {
    const q = normalizeQuery({ package: 'pkg:deb/debian/hello@2.10-3?arch=source', artifact: DEB, sha256: H.toUpperCase() })
    expect(q.sha256).toBe(H)
    expect(() => normalizeQuery({ package: PKG, artifact: DEB, sha256: 'abc' })).toThrow(RbqError)
    expect(() => normalizeQuery({ package: PKG, artifact: '../etc/passwd', sha256: H })).toThrow(/artifact/)
    expect(() => normalizeQuery({ package: 'not a purl', artifact: DEB, sha256: H })).toThrow(/package/)
  })
})

describe('package and batch verdicts', () => {
  const trust = buildTrustGraph({ policy: k2of3, now: NOW })
  const frames = [
    attest(r[0], { seq: 1, extraSubjects: [{ name: 'hello-dbg.deb', sha256: Y }] }),
    attest(r[1], { seq: 1, extraSubjects: [{ name: 'hello-dbg.deb', sha256: X }] })
  ]

  it('a package version is the worst of its artifacts', () => {
    const v = computePackageVerdict(trust, frames, { package: PKG, artifacts: [{ name: DEB, sha256: H }, { name: 'hello-dbg.deb', sha256: Y }] })
    expect(v.artifacts.map((a) => [a.evidence.artifact, a.status])).toEqual([['hello-dbg.deb', 'conflict'], [DEB, 'reproduced']])
    expect(v.status).toBe('conflict')
    expect(v.reason).toMatch(/^hello-dbg\.deb: .*\(worst of 2 artifacts\)$/)
    expect(computePackageVerdict(trust, frames, { package: PKG, artifacts: [] }).status).toBe('unknown')
  })

  it('severity order: mismatch, conflict, failed, unknown, insufficient, unreproducible, reproduced', () => {
    expect(VERDICT_SEVERITY).toEqual(['mismatch', 'conflict', 'failed', 'unknown', 'insufficient', 'unreproducible', 'reproduced'])
    expect(worstOf(['reproduced', 'insufficient'])).toBe('insufficient')
    expect(worstOf(['reproduced', 'unreproducible'])).toBe('unreproducible')
    expect(worstOf(['unreproducible', 'insufficient'])).toBe('insufficient')
    expect(worstOf(['unknown', 'failed', 'reproduced'])).toBe('failed')
    expect(worstOf([])).toBeUndefined()
  })

  it('batch verdicts equal single verdicts', () => {
    const queries = [
      { package: PKG, artifact: DEB, sha256: H },
      { package: PKG, artifact: 'hello-dbg.deb', sha256: X },
      { package: PKG, artifact: 'nothing.deb', sha256: H }
    ]
    const batch = computeVerdicts(trust, () => frames, queries)
    expect(batch).toEqual(queries.map((q) => computeVerdict(trust, frames, q)))
    expect(batch.map((v) => v.status)).toEqual(['reproduced', 'conflict', 'unknown'])
  })
})
