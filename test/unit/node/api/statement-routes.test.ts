/** POST /v1/rebuild-results: the node signs a rebuild result with its own key and seq, stores and announces it. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SOFTWARE } from '../../../../common/version.js'
import { StatementSigner } from '../../../../identity/statement-signer.js'
import { rebuildResultRequestOf, type RebuildResultRequest } from '../../../../protocol/api.js'
import { canonicalBytes, decodeFrame, generateSigningKey, type AttestationContent, type VerifiedFrame } from '../../../../protocol/index.js'
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

async function post(body: unknown, token: string | null = api.token): Promise<{ status: number; body: { error?: { code: string; message: string; field?: string } } & Record<string, unknown> }> {
  const res = await fetch(`${api.url}/v1/rebuild-results`, {
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
