/**
 * Statements the node signs for the CLI: POST /v1/rebuild-results (its key and next seq) and
 * POST /v1/delegations (its key, the version asked for); each stored and announced, bad input
 * refused before anything is signed, stored or a seq reserved.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SOFTWARE } from '../../../../common/version.js'
import { StatementSigner } from '../../../../identity/statement-signer.js'
import { delegationRequestOf, rebuildResultRequestOf, type DelegationRequest, type RebuildResultRequest } from '../../../../protocol/api.js'
import { canonicalBytes, decodeFrame, generateSigningKey, type AttestationContent, type DelegationContent, type VerifiedFrame } from '../../../../protocol/index.js'
import { hex64, PKG } from '../../../utils/frames.js'
import { startApi, type ApiHarness } from './harness.js'

let api: ApiHarness
beforeEach(async () => {
  api = await startApi()
})
afterEach(() => api.stop())

function content(n: number, over: Partial<AttestationContent> = {}): AttestationContent {
  return {
    package: PKG,
    subject: [{ name: `hello_${n}.deb`, sha256: hex64(n) }],
    outcome: 'mismatch',
    upstream: [{ name: `hello_${n}.deb`, sha256: hex64(n + 1) }],
    inputs: { sha256: hex64(n + 1000), materials: [{ uri: 'https://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3.dsc', sha256: hex64(7) }] },
    backend: 'debian',
    startedOn: new Date('2026-01-01T00:00:00.250Z'),
    finishedOn: new Date('2026-01-01T00:05:00Z'),
    log: { sha256: hex64(9), size: 1234 },
    environment: 'current',
    diff: { tags: ['build-id'], summary: 'ELF build-id differs' },
    ...over
  }
}

async function post(
  body: unknown,
  token: string | null = api.token,
  route = '/v1/rebuild-results'
): Promise<{ status: number; body: { error?: { code: string; message: string; field?: string } } & Record<string, unknown> }> {
  const res = await fetch(`${api.url}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body)
  })
  return { status: res.status, body: (await res.json()) as never }
}

describe('POST /v1/rebuild-results', () => {
  it("signs with the node's key and next seq, stores and announces the frame, and answers it", async () => {
    const published: VerifiedFrame[] = []
    api.publisher.on('published', (f) => published.push(f))
    const signed = await api.client.publishRebuildResult({ ...rebuildResultRequestOf(content(1)), signer: api.nodeKey.publicKey.keyid })
    expect(signed).toMatchObject({ status: 'stored', kind: 'attestation', signer: api.nodeKey.publicKey.keyid, seq: 1 })
    const frame = decodeFrame(canonicalBytes(signed.frame))
    expect(frame.id).toBe(signed.id)
    if (frame.kind !== 'attestation') throw new Error('not an attestation')
    expect(frame.statement.predicate.builder).toEqual({ id: api.nodeKey.publicKey.keyid, seq: 1, backend: 'debian', software: SOFTWARE })
    expect(frame.statement.predicate).toMatchObject({ outcome: 'mismatch', environment: 'current', startedOn: '2026-01-01T00:00:00Z', diff: { tags: ['build-id'] } })
    expect(published.map((f) => f.id)).toEqual([signed.id])
    expect((await api.client.frame(signed.id)).id).toBe(signed.id)
  })

  it("continues the key's one sequence with statements signed offline over the same seq file", async () => {
    const offline = new StatementSigner(api.nodeKey, api.signer.seqFile)
    expect((await offline.attest(content(1))).statement.predicate.builder.seq).toBe(1)
    expect((await api.client.publishRebuildResult(rebuildResultRequestOf(content(2)))).seq).toBe(2)
    expect((await offline.attest(content(3))).statement.predicate.builder.seq).toBe(3)
  })

  it('refuses bad input with the documented error body, burning no seq', async () => {
    const good = rebuildResultRequestOf(content(1))
    const cases: [unknown, number, string, string?][] = [
      [{ ...good, extra: 1 }, 400, 'SCHEMA_INVALID'],
      [{ ...good, subject: [] }, 400, 'SCHEMA_INVALID', 'subject'],
      [{ ...good, startedOn: 'yesterday' }, 400, 'SCHEMA_INVALID', 'startedOn'],
      [{ ...good, backend: 'Not A Backend' }, 400, 'SCHEMA_INVALID', 'backend'],
      // self-contradicting: says mismatch, but subject and upstream agree
      [{ ...good, upstream: good.subject }, 400, 'SCHEMA_INVALID'],
      [{ ...good, package: 'pkg:deb/debian/hello@1?arch=source&arch=amd64' }, 400, 'PURL_INVALID'],
      [{ ...good, signer: generateSigningKey().publicKey.keyid }, 409, 'SIGNER_MISMATCH', 'signer']
    ]
    for (const [body, status, code, field] of cases) {
      const res = await post(body)
      expect([res.status, res.body.error?.code], JSON.stringify(res.body)).toEqual([status, code])
      expect(Object.keys(res.body)).toEqual(['error'])
      if (field !== undefined) expect(res.body.error?.field ?? '').toContain(field)
    }
    expect((await post(good, null)).status).toBe(401)
    expect((await post(good, 'f'.repeat(64))).status).toBe(401)
    expect(await api.signer.lastSeq()).toBe(0)
    expect(await api.store.count('attestation')).toBe(0)
  })

  it('round-trips every field the CLI sends', () => {
    const body: RebuildResultRequest = rebuildResultRequestOf(content(4))
    expect(body.startedOn).toBe('2026-01-01T00:00:00.250Z')
    expect(Object.keys(rebuildResultRequestOf(content(4, { environment: undefined, diff: undefined, log: undefined })))).not.toContain('environment')
  })
})

const buildd = generateSigningKey().publicKey

function delegation(over: Partial<DelegationContent> = {}): DelegationContent {
  return {
    delegate: { keyid: buildd.keyid, publicKey: buildd.text },
    name: 'buildd-1',
    scope: ['pkg:deb/debian/*'],
    maxDepth: 0,
    version: 1,
    expires: new Date('2099-01-01T00:00:00Z'),
    revoked: false,
    ...over
  }
}

describe('POST /v1/delegations', () => {
  it("signs with the node's key, stores and announces the frame, and answers it; the same delegation again is a duplicate", async () => {
    const published: VerifiedFrame[] = []
    api.publisher.on('published', (f) => published.push(f))
    const signed = await api.client.publishDelegation({ ...delegationRequestOf(delegation()), signer: api.nodeKey.publicKey.keyid })
    expect(signed).toMatchObject({ status: 'stored', kind: 'delegation', signer: api.nodeKey.publicKey.keyid })
    expect(signed).not.toHaveProperty('seq')
    const frame = decodeFrame(canonicalBytes(signed.frame))
    expect(frame.id).toBe(signed.id)
    if (frame.kind !== 'delegation') throw new Error('not a delegation')
    expect(frame.statement).toMatchObject({
      delegator: api.nodeKey.publicKey.keyid,
      delegate: { keyid: buildd.keyid, publicKey: buildd.text },
      name: 'buildd-1',
      scope: ['pkg:deb/debian/*'],
      maxDepth: 0,
      version: 1,
      expires: '2099-01-01T00:00:00Z',
      revoked: false
    })
    expect(published.map((f) => f.id)).toEqual([signed.id])
    expect(await api.store.delegationIdsByDelegate(buildd.keyid)).toEqual([signed.id])

    const again = await post(delegationRequestOf(delegation()), api.token, '/v1/delegations')
    expect([again.status, again.body.status, again.body.id]).toEqual([200, 'duplicate', signed.id])
    const revoked = await api.client.publishDelegation(delegationRequestOf(delegation({ version: 2, revoked: true, expires: new Date('2001-01-01T00:00:00Z') })))
    expect(revoked.status).toBe('stored')
    expect(published).toHaveLength(2)
    // Delegations carry a version, not a seq: the node's sequence is untouched.
    expect(await api.signer.lastSeq()).toBe(0)
  })

  it('refuses bad input with the documented error body, storing nothing', async () => {
    const good: DelegationRequest = delegationRequestOf(delegation())
    const cases: [unknown, number, string, string?][] = [
      [{ ...good, extra: 1 }, 400, 'SCHEMA_INVALID'],
      [{ ...good, scope: [] }, 400, 'SCHEMA_INVALID', 'scope'],
      [{ ...good, maxDepth: 9 }, 400, 'SCHEMA_INVALID', 'maxDepth'],
      [{ ...good, version: 0 }, 400, 'SCHEMA_INVALID', 'version'],
      [{ ...good, expires: 'next year' }, 400, 'SCHEMA_INVALID', 'expires'],
      [{ ...good, expires: '2099-13-01T00:00:00Z' }, 400, 'SCHEMA_INVALID', 'expires'],
      [{ ...good, expires: '2001-01-01T00:00:00Z' }, 400, 'SCHEMA_INVALID', 'expires'],
      [{ ...good, delegate: 'ed25519:short' }, 400, 'BASE64_INVALID', 'delegate'],
      [{ ...good, delegate: 'ssh-ed25519 AAAA' }, 400, 'KEY_INVALID', 'delegate'],
      [{ ...good, delegate: api.nodeKey.publicKey.text }, 400, 'SCHEMA_INVALID', 'delegate'],
      [{ ...good, scope: ['debian/*'] }, 400, 'PATTERN_INVALID', 'scope[0]'],
      [{ ...good, signer: generateSigningKey().publicKey.keyid }, 409, 'SIGNER_MISMATCH', 'signer']
    ]
    for (const [body, status, code, field] of cases) {
      const res = await post(body, api.token, '/v1/delegations')
      expect([res.status, res.body.error?.code], JSON.stringify(body)).toEqual([status, code])
      expect(Object.keys(res.body)).toEqual(['error'])
      if (field !== undefined) expect(res.body.error?.field ?? '', JSON.stringify(res.body)).toContain(field)
    }
    expect((await post(good, null, '/v1/delegations')).status).toBe(401)
    expect((await post(good, 'f'.repeat(64), '/v1/delegations')).status).toBe(401)
    expect(await api.store.count('delegation')).toBe(0)
  })
})
