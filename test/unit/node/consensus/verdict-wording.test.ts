/** Verdict reasons are read by people: numbers agree with their nouns and verbs (issue 15). */
import { describe, expect, it } from 'vitest'
import { buildTrustGraph, computeVerdict, type Policy } from '../../../../node/consensus/index.js'
import type { AttestationFrame, SigningKey } from '../../../../protocol/index.js'
import { attest, DEB, H, key, NOW, PKG, policy, X } from './fixtures.js'

const r = ['w0', 'w1', 'w2', 'w3'].map(key) as [SigningKey, SigningKey, SigningKey, SigningKey]
const roots = (n: number) => r.slice(0, n).map((k, i) => ({ name: `party-${i}`, key: k }))

function reason(p: Policy, attestations: AttestationFrame[]): string {
  return computeVerdict(buildTrustGraph({ policy: p, delegations: [], now: NOW }), attestations, { package: PKG, artifact: DEB, sha256: H }).reason
}

describe('verdict wording', () => {
  it('one dissenting party "contradicts", two "contradict"', () => {
    const p = policy({ threshold: 2, roots: roots(4) })
    const two = [attest(r[0], { seq: 1 }), attest(r[1], { seq: 1 })]
    expect(reason(p, [...two, attest(r[2], { seq: 1, sha256: X })])).toMatch(/but 1 party contradicts it \(/)
    expect(reason(p, [...two, attest(r[2], { seq: 1, sha256: X }), attest(r[3], { seq: 1, sha256: X })])).toMatch(/and 2 contradict it, each reaching/)
    const one = policy({ threshold: 3, roots: roots(4) })
    expect(reason(one, [attest(r[0], { seq: 1 }), attest(r[2], { seq: 1, sha256: X })])).toMatch(/^1 party contradicts [0-9a-f]{12} \(/)
  })
  it('no "1 parties", "1 keys", "1 party report", "1 party contradict" anywhere', () => {
    const samples: string[] = []
    for (const count of ['party', 'key'] as const) {
      for (let threshold = 1; threshold <= 3; threshold++) {
        const p = policy({ threshold, count, roots: roots(4) })
        for (let yes = 0; yes <= 2; yes++) {
          for (let no = 0; no <= 2; no++) {
            const frames = [...r.slice(0, yes).map((k) => attest(k, { seq: 1 })), ...r.slice(yes, yes + no).map((k) => attest(k, { seq: 1, sha256: X }))]
            samples.push(reason(p, frames))
          }
        }
      }
    }
    for (const s of samples) expect(s).not.toMatch(/\b1 (parties|keys)\b|\b1 (party|key) (report|contradict)\b|\b1 (contradict)\b/)
  })
})
