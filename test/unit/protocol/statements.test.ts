import { describe, expect, it } from 'vitest'
import {
  buildDelegationStatement,
  buildRebuildStatement,
  generateSigningKey,
  isRbqError,
  sha256Hex,
  signAttestation,
  signDelegation,
  signEquivocationProof,
  isEquivocation,
  type RebuildStatementInit
} from '../../../protocol/index.js'

const key = generateSigningKey()
const other = generateSigningKey()
const A = sha256Hex('a')
const B = sha256Hex('b')

function init(over: Partial<RebuildStatementInit> = {}): RebuildStatementInit {
  return {
    package: 'pkg:deb/debian/base-files@12.4+deb12u11?arch=source',
    subject: [{ name: 'base-files_12.4+deb12u11_amd64.deb', sha256: A }],
    outcome: 'reproduced',
    upstream: [{ name: 'base-files_12.4+deb12u11_amd64.deb', sha256: A }],
    inputs: { sha256: B, materials: [] },
    builder: { id: key.publicKey.keyid, seq: 1, backend: 'debian', software: 'rebuild-quorum/test' },
    startedOn: new Date('2026-01-01T00:00:00Z'),
    finishedOn: new Date('2026-01-01T00:01:00Z'),
    ...over
  }
}

const code = (f: () => unknown) => {
  try {
    f()
  } catch (e) {
    return isRbqError(e) ? `${e.code} ${e.field ?? ''}` : `not ours: ${String(e)}`
  }
  return 'no error'
}

describe('rebuild attestation semantics', () => {
  it('accepts each consistent outcome', () => {
    expect(signAttestation(key, buildRebuildStatement(init())).kind).toBe('attestation')
    expect(signAttestation(key, buildRebuildStatement(init({ outcome: 'mismatch', upstream: [{ name: 'base-files_12.4+deb12u11_amd64.deb', sha256: B }] }))).kind).toBe('attestation')
    expect(signAttestation(key, buildRebuildStatement(init({ outcome: 'built', upstream: [] }))).kind).toBe('attestation')
    expect(signAttestation(key, buildRebuildStatement(init({ outcome: 'failed', upstream: [] }))).kind).toBe('attestation')
  })
  it('refuses statements that contradict themselves, naming the field', () => {
    expect(code(() => signAttestation(key, buildRebuildStatement(init({ outcome: 'mismatch' }))))).toMatch(/^SCHEMA_INVALID .*predicate\.outcome$/)
    expect(code(() => signAttestation(key, buildRebuildStatement(init({ outcome: 'built' }))))).toMatch(/^SCHEMA_INVALID .*predicate\.outcome$/)
    expect(code(() => signAttestation(key, buildRebuildStatement(init({ upstream: [] }))))).toMatch(/^SCHEMA_INVALID .*predicate\.outcome$/)
    expect(code(() => signAttestation(key, buildRebuildStatement(init({ finishedOn: new Date('2025-01-01T00:00:00Z') }))))).toMatch(/finishedOn$/)
    expect(code(() => signAttestation(key, buildRebuildStatement(init({ builder: { id: other.publicKey.keyid, seq: 1, backend: 'debian', software: 'x' } }))))).toMatch(/builder\.id$/)
    const dup = [{ name: 'x.deb', sha256: A }, { name: 'x.deb', sha256: A }]
    expect(code(() => signAttestation(key, buildRebuildStatement(init({ subject: dup, upstream: dup }))))).toMatch(/subject\[1\]\.name$/)
    expect(code(() => signAttestation(key, buildRebuildStatement(init({ package: 'pkg:deb/Debian/x@1' }))))).toMatch(/^PURL_INVALID/)
  })
  it('an artifact on one side only is a mismatch, never reproduced', () => {
    const doc = { name: 'base-files-doc_12.4+deb12u11_all.deb', sha256: B }
    const both = [...init().upstream, doc]
    expect(signAttestation(key, buildRebuildStatement(init({ outcome: 'mismatch', upstream: both }))).kind).toBe('attestation')
    expect(code(() => signAttestation(key, buildRebuildStatement(init({ upstream: both }))))).toMatch(/^SCHEMA_INVALID .*predicate\.outcome$/)
    const dupUpstream = [...init().upstream, ...init().upstream]
    expect(code(() => signAttestation(key, buildRebuildStatement(init({ upstream: dupUpstream }))))).toMatch(/upstream\[1\]\.name$/)
  })

  it('refuses oversized statements', () => {
    const subject = Array.from({ length: 64 }, (_, i) => ({ name: `${'n'.repeat(200)}-${i}.deb`, sha256: A }))
    expect(code(() => signAttestation(key, buildRebuildStatement(init({ subject, upstream: subject }))))).toMatch(/^INPUT_TOO_LARGE/)
  })
})

describe('delegations', () => {
  const base = {
    delegator: key.publicKey.keyid,
    delegate: { keyid: other.publicKey.keyid, publicKey: other.publicKey.text },
    name: 'buildd-1',
    scope: ['pkg:deb/debian/*'],
    maxDepth: 0,
    version: 1,
    expires: new Date('2030-01-01T00:00:00Z'),
    revoked: false
  }
  it('signs a valid delegation', () => {
    expect(signDelegation(key, buildDelegationStatement(base)).kind).toBe('delegation')
  })
  it('refuses self-delegation, foreign delegators, mismatched delegate ids and bad scopes', () => {
    expect(code(() => signDelegation(key, buildDelegationStatement({ ...base, delegate: { keyid: key.publicKey.keyid, publicKey: key.publicKey.text } })))).toMatch(/^SCHEMA_INVALID .*delegate$/)
    expect(code(() => signDelegation(other, buildDelegationStatement(base)))).toMatch(/delegator$/)
    expect(code(() => signDelegation(key, buildDelegationStatement({ ...base, delegate: { keyid: A, publicKey: other.publicKey.text } })))).toMatch(/^KEYID_MISMATCH/)
    expect(code(() => signDelegation(key, buildDelegationStatement({ ...base, scope: ['debian'] })))).toMatch(/^PATTERN_INVALID .*scope\[0\]$/)
    expect(code(() => signDelegation(key, buildDelegationStatement({ ...base, maxDepth: 99 })))).toMatch(/maxDepth$/)
  })
})

describe('equivocation', () => {
  it('detects same key + same seq + different statement, and builds a checkable proof', () => {
    const a = signAttestation(key, buildRebuildStatement(init({ builder: { id: key.publicKey.keyid, seq: 7, backend: 'debian', software: 'x' } })))
    const b = signAttestation(key, buildRebuildStatement(init({ builder: { id: key.publicKey.keyid, seq: 7, backend: 'debian', software: 'y' } })))
    const c = signAttestation(key, buildRebuildStatement(init({ builder: { id: key.publicKey.keyid, seq: 8, backend: 'debian', software: 'y' } })))
    expect(isEquivocation(a, b)).toBe(true)
    expect(isEquivocation(a, a)).toBe(false)
    expect(isEquivocation(b, c)).toBe(false)
    const proof = signEquivocationProof(other, b, a)
    expect(proof.proof.keyid).toBe(key.publicKey.keyid)
    expect(proof.proof.seq).toBe(7)
    expect(proof.proof.a.id < proof.proof.b.id).toBe(true)
  })
})
