import { describe, expect, it } from 'vitest'
import { buildTrustGraph, type TrustGraphInit } from '../../../../node/consensus/index.js'
import { buildDelegationStatement, signEquivocationProof, type DelegationFrame } from '../../../../protocol/index.js'
import { attest, delegate, FUTURE, key, LIB_PKG, NOW, PAST, PKG, policy, shuffled } from './fixtures.js'

const root = key('root')
const root2 = key('root-2')
const a = key('a')
const b = key('b')
const c = key('c')
const d = key('d')
const id = (k: { publicKey: { keyid: string } }) => k.publicKey.keyid

function graph(init: Partial<TrustGraphInit> & { delegations?: readonly DelegationFrame[] }, maxDepth = 3) {
  return buildTrustGraph({ policy: policy({ threshold: 1, maxDepth, roots: [{ name: 'root', key: root }] }), now: NOW, ...init })
}
const members = (g: ReturnType<typeof graph>, purl = PKG) => [...g.buildersFor(purl).builders.keys()].sort()
const sortedIds = (...ks: { publicKey: { keyid: string } }[]) => ks.map(id).sort()

describe('delegation walk', () => {
  it('roots are builders; delegates are reached with the chain that justifies them', () => {
    const g = graph({ delegations: [delegate(root, a, { name: 'org' }), delegate(a, b, { name: 'buildd-1' })] })
    expect(members(g)).toEqual(sortedIds(root, a, b))
    const bb = g.buildersFor(PKG).builders.get(id(b))!
    expect(bb.party).toBe('root')
    expect(bb.name).toBe('buildd-1')
    expect(bb.chain.map((e) => e.name)).toEqual(['org', 'buildd-1'])
  })

  it('rollback: the newest version wins, whatever the arrival order', () => {
    const v1 = delegate(root, a, { version: 1, scope: ['*'] })
    const v2 = delegate(root, a, { version: 2, scope: ['pkg:deb/debian/lib*'] })
    for (const order of [[v1, v2], [v2, v1]]) {
      const g = graph({ delegations: order })
      expect(members(g, PKG)).toEqual([id(root)])
      expect(members(g, LIB_PKG)).toEqual(sortedIds(root, a))
      expect(g.edges[0]).toMatchObject({ version: 2, superseded: 1, state: 'active' })
    }
  })

  it('revocation: a revoked newest version cuts the edge even with an older active one', () => {
    const g = graph({ delegations: [delegate(root, a, { version: 1 }), delegate(root, a, { version: 2, revoked: true }), delegate(a, b)] })
    expect(members(g)).toEqual([id(root)])
    expect(g.explain(id(a)).reason).toMatch(/revoked/)
  })

  it('freeze: an expired newest version cuts the edge; no fall-back to an older version', () => {
    const g = graph({ delegations: [delegate(root, a, { version: 1, expires: FUTURE }), delegate(root, a, { version: 2, expires: PAST })] })
    expect(members(g)).toEqual([id(root)])
    expect(g.edges[0]!.state).toBe('expired')
    // expiry is judged at `now`: the same frames are fine before the expiry date
    const earlier = graph({ delegations: [delegate(root, a, { version: 2, expires: PAST })], now: PAST.getTime() - 1 })
    expect(members(earlier)).toEqual(sortedIds(root, a))
    expect(earlier.validUntil).toBe(PAST.getTime())
  })

  it('two different statements with the same version cut the edge (fail closed)', () => {
    const g = graph({ delegations: [delegate(root, a, { version: 3, name: 'x' }), delegate(root, a, { version: 3, name: 'y' })] })
    expect(members(g)).toEqual([id(root)])
    expect(g.edges[0]!.state).toBe('conflicting')
    expect(g.diagnostics.map((x) => x.code)).toContain('conflicting-versions')
  })

  it('scope must match at every edge of the chain, and the root scope', () => {
    const delegations = [delegate(root, a, { scope: ['pkg:deb/debian/*'] }), delegate(a, b, { scope: ['pkg:deb/debian/lib*'] }), delegate(b, c, { scope: ['*'] })]
    const g = graph({ delegations })
    expect(members(g, PKG)).toEqual(sortedIds(root, a))
    expect(members(g, LIB_PKG)).toEqual(sortedIds(root, a, b, c))
    expect(members(g, 'pkg:npm/left-pad@1.0.0')).toEqual([id(root)])
    const scopedRoot = buildTrustGraph({ policy: policy({ threshold: 1, roots: [{ name: 'r', key: root, scope: ['pkg:npm/*'] }] }), delegations, now: NOW })
    expect(members(scopedRoot, LIB_PKG)).toEqual([])
    expect(scopedRoot.explain(id(c), LIB_PKG).trusted).toBe(false)
  })

  it('edge maxDepth bounds re-delegation below it', () => {
    const g = graph({ delegations: [delegate(root, a, { maxDepth: 0 }), delegate(a, b)] })
    expect(members(g)).toEqual(sortedIds(root, a))
    const g1 = graph({ delegations: [delegate(root, a, { maxDepth: 1 }), delegate(a, b, { maxDepth: 5 }), delegate(b, c)] })
    expect(members(g1)).toEqual(sortedIds(root, a, b))
  })

  it('policy max_depth bounds the total depth', () => {
    const chain = [delegate(root, a), delegate(a, b), delegate(b, c), delegate(c, d)]
    expect(members(graph({ delegations: chain }, 0))).toEqual([id(root)])
    expect(members(graph({ delegations: chain }, 2))).toEqual(sortedIds(root, a, b))
    expect(members(graph({ delegations: chain }, 3))).toEqual(sortedIds(root, a, b, c))
  })

  it('a key reached again with a larger budget is expanded again', () => {
    // root→a has maxDepth 0 (a may not re-delegate) but root→b→a gives a budget of 1
    const g = graph({ delegations: [delegate(root, a, { maxDepth: 0 }), delegate(root, b, { maxDepth: 2 }), delegate(b, a, { maxDepth: 2 }), delegate(a, c)] })
    expect(members(g)).toEqual(sortedIds(root, a, b, c))
    const cc = g.buildersFor(PKG).builders.get(id(c))!
    expect(cc.chain.map((e) => e.delegator)).toEqual([id(root), id(b), id(a)]) // the chain that actually allows c
    expect(g.buildersFor(PKG).builders.get(id(a))!.chain).toHaveLength(1) // a's own shortest chain
  })

  it('cycles terminate and reach each key once', () => {
    const g = graph({ delegations: [delegate(root, a), delegate(a, b), delegate(b, c), delegate(c, a), delegate(c, root)] }, 16)
    expect(members(g)).toEqual(sortedIds(root, a, b, c))
  })

  it('two roots reaching one key: it lists both parties; the primary is the shortest chain, then root order', () => {
    const p = policy({ threshold: 1, roots: [{ name: 'first', key: root }, { name: 'second', key: root2 }] })
    const g = buildTrustGraph({ policy: p, now: NOW, delegations: [delegate(root, a), delegate(a, b), delegate(root2, b)] })
    const bb = g.buildersFor(PKG).builders.get(id(b))!
    expect(bb.parties).toEqual(['first', 'second'])
    expect(bb.party).toBe('second') // depth 1 beats depth 2
    const tie = buildTrustGraph({ policy: p, now: NOW, delegations: [delegate(root2, c), delegate(root, c)] })
    expect(tie.buildersFor(PKG).builders.get(id(c))!.party).toBe('first')
  })

  it('keys with an equivocation proof are removed with everything hanging only from them', () => {
    const proof = signEquivocationProof(key('reporter'), attest(a, { seq: 7 }), attest(a, { seq: 7, sha256: '0'.repeat(64) }))
    const g = graph({ delegations: [delegate(root, a), delegate(a, b), delegate(root, c), delegate(c, d)], proofs: [proof] })
    expect(members(g)).toEqual(sortedIds(root, c, d))
    expect(g.explain(id(a)).excluded).toBe(true)
    const rootGone = graph({ delegations: [delegate(root, c)], excluded: [id(root)] })
    expect(members(rootGone)).toEqual([])
  })

  it('the result does not depend on the order delegations arrive in', () => {
    const ds = [
      delegate(root, a, { version: 1 }),
      delegate(root, a, { version: 2, maxDepth: 1 }),
      delegate(a, b, { scope: ['pkg:deb/*'] }),
      delegate(b, c, { version: 4, revoked: true }),
      delegate(b, c, { version: 3 }),
      delegate(a, d, { expires: PAST }),
      delegate(c, d)
    ]
    const reference = graph({ delegations: ds }).buildersFor(PKG)
    for (let seed = 1; seed < 20; seed++) {
      expect(graph({ delegations: shuffled(ds, seed) }).buildersFor(PKG)).toEqual(reference)
    }
  })
})

describe('bad input', () => {
  it('ignores self-delegations that bypassed the decoder, with a diagnostic', () => {
    const real = delegate(root, a)
    const statement = buildDelegationStatement({
      delegator: id(root),
      delegate: { keyid: id(root), publicKey: root.publicKey.text },
      name: 'me',
      scope: ['*'],
      maxDepth: 3,
      version: 1,
      expires: FUTURE,
      revoked: false
    })
    const forged = { ...real, id: 'f'.repeat(64), statement } as DelegationFrame
    const g = graph({ delegations: [forged, real] })
    expect(members(g)).toEqual(sortedIds(root, a))
    expect(g.diagnostics.map((x) => x.code)).toContain('self-delegation')
  })

  it('absurd depths: a 30-key chain is cut by edge and policy depth limits', () => {
    const keys = Array.from({ length: 30 }, (_, i) => key(`chain-${i}`))
    const delegations = keys.map((k, i) => delegate(i === 0 ? root : keys[i - 1]!, k, { maxDepth: 8 }))
    const p = policy({ threshold: 1, maxDepth: 16, roots: [{ name: 'root', key: root }] })
    const g = buildTrustGraph({ policy: p, delegations, now: NOW })
    // root budget 16; the first edge leaves min(15, 8) = 8, then 7, 6, ... : 9 delegated keys
    expect(g.buildersFor(PKG).builders.size).toBe(1 + 9)
  })

  it('10k delegations from one key: bounded work, fast, and a visit cap that truncates deterministically', () => {
    const fan = key('fan-out')
    const template = delegate(fan, a)
    // Re-use one signed frame's shape for 10k distinct delegates: the walk reads statements only.
    const delegations: DelegationFrame[] = [delegate(root, fan)]
    for (let i = 0; i < 10_000; i++) {
      const keyid = i.toString(16).padStart(64, '0')
      delegations.push({ ...template, id: `d${keyid.slice(1)}`, statement: { ...template.statement, delegate: { keyid, publicKey: template.statement.delegate.publicKey } } } as DelegationFrame)
    }
    const started = performance.now()
    const g = graph({ delegations })
    const set = g.buildersFor(PKG)
    const elapsed = performance.now() - started
    expect(set.builders.size).toBe(2 + 10_000)
    expect(set.truncated).toBe(false)
    expect(elapsed).toBeGreaterThan(0) // measured, not asserted: bench/verdict.ts prints figures
    const capped = graph({ delegations, visitCap: 5_000 })
    const cappedSet = capped.buildersFor(PKG)
    expect(cappedSet.truncated).toBe(true)
    expect(cappedSet.visits).toBe(5_000)
    expect(cappedSet.builders.size).toBeLessThan(5_003)
    expect(capped.diagnostics.map((x) => x.code)).toContain('visit-cap')
    expect(graph({ delegations: shuffled(delegations, 3), visitCap: 5_000 }).buildersFor(PKG)).toEqual(cappedSet)
  })

  it('explains unknown keys and untrusted delegators', () => {
    const g = graph({ delegations: [delegate(b, c)] })
    expect(g.explain(id(d)).reason).toMatch(/no delegation names this key/)
    expect(g.explain(id(c)).reason).toMatch(/untrusted or too deep delegator/)
    expect(g.explain(id(root)).reason).toMatch(/as a trust root/)
  })
})

describe('explain', () => {
  it('shows the chain with scopes, and whether a package is in scope', () => {
    const g = graph({ delegations: [delegate(root, a, { name: 'org', scope: ['pkg:deb/debian/lib*'] }), delegate(a, b, { name: 'buildd' })] })
    const anywhere = g.explain(id(b))
    expect(anywhere.trusted).toBe(true)
    expect(anywhere.reason).toMatch(/root "root".*"org".*pkg:deb\/debian\/lib\*.*"buildd"/)
    expect(g.explain(id(b), LIB_PKG).trusted).toBe(true)
    const outside = g.explain(id(b), PKG)
    expect(outside.trusted).toBe(false)
    expect(outside.reason).toMatch(/outside a scope/)
    expect(outside.incoming.map((e) => e.name)).toEqual(['buildd'])
  })
})
