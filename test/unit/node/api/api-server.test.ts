/**
 * Every route of the HTTP API over real HTTP (fetch and the typed client) against a real store
 * and ingest pipeline: good input (answers conform to the declared schemas) and bad input
 * (400 naming the field, 401 without the token, 404, 413, 415, deep JSON, bad policies).
 */
import { createHash } from 'node:crypto'
import type { TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  API_MAX_BATCH,
  AttestationsPageSchema,
  BriefVerdictResultSchema,
  PeersResponseSchema,
  StatusResponseSchema,
  StoredFrameSchema,
  TrustExplanationSchema,
  VerdictResultSchema,
  VerdictsResponseSchema,
  WatchResponseSchema,
  type BriefVerdictResult,
  type VerdictResult
} from '../../../../protocol/api.js'
import { canonicalJson, frameText, sha256Hex, utf8 } from '../../../../protocol/index.js'
import { formatPolicy } from '../../../../node/consensus/index.js'
import { ApiClient } from '../../../../client/api-client.js'
import { attest, DEB, delegate, H, key, PKG, policy, X } from '../consensus/fixtures.js'
import { startApi, type ApiHarness } from './harness.js'

const A = key('root a')
const B = key('root b')
const C = key('root c')
const SERVER_B = key('b build server')
const STRANGER = key('stranger')
const OTHER_PKG = 'pkg:deb/debian/other@1.0-1?arch=source'
const NODE_POLICY = policy({ threshold: 2, roots: [{ name: 'a', key: A }, { name: 'b', key: B }, { name: 'c', key: C }] })

function conforms(schema: TSchema, value: unknown): void {
  const first = Value.Errors(schema, value).First()
  expect(first === undefined ? 'ok' : `${first.path}: ${first.message}`).toBe('ok')
}

interface Reply {
  status: number
  body: any
  text: string
  type: string
}

let h: ApiHarness

async function call(method: string, path: string, init: { body?: string | Uint8Array; type?: string; token?: string | null } = {}): Promise<Reply> {
  const headers: Record<string, string> = {}
  if (init.type !== undefined) headers['content-type'] = init.type
  const token = init.token === undefined ? h.token : init.token
  if (token !== null) headers.authorization = `Bearer ${token}`
  const res = await fetch(h.url + path, { method, headers, ...(init.body === undefined ? {} : { body: init.body }) })
  const text = await res.text()
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    body = undefined
  }
  return { status: res.status, body, text, type: res.headers.get('content-type') ?? '' }
}

const postJson = (path: string, value: unknown, token?: string | null) => call('POST', path, { body: JSON.stringify(value), type: 'application/json', ...(token === undefined ? {} : { token }) })

function expectError(r: Reply, status: number, code: string, field?: string): void {
  expect(r.status, r.text).toBe(status)
  expect(r.body?.error?.code, r.text).toBe(code)
  expect(typeof r.body.error.message).toBe('string')
  if (field !== undefined) expect(r.body.error.field, r.text).toBe(field)
}

beforeAll(async () => {
  h = await startApi({ policy: NODE_POLICY })
  // H for DEB is reproduced by a and b (b through its build server); c says X.
  const frames = [
    attest(A, { seq: 1 }),
    delegate(B, SERVER_B, { name: 'b-buildd' }),
    attest(SERVER_B, { seq: 1 }),
    attest(C, { seq: 1, sha256: X }),
    // A stranger attests H under another package: must not change any answer.
    attest(STRANGER, { seq: 1, pkg: OTHER_PKG, artifact: DEB })
  ]
  const results = await h.client.submitFrames(frames.map((f) => f.bytes))
  expect(results.map((r) => r.status)).toEqual(['stored', 'stored', 'stored', 'stored', 'stored'])
})
afterAll(() => h.stop())

describe('GET /v1/status, /v1/peers', () => {
  it('reports identity, counts and policy', async () => {
    const s = await h.client.status()
    conforms(StatusResponseSchema, s)
    expect(s.keyid).toBe(h.nodeKey.publicKey.keyid)
    expect(s.frames).toEqual({ attestation: 4, delegation: 1, equivocation: 0 })
    expect(s.policy.loaded).toBe(true)
    expect(s.policy.roots?.map((r) => r.name)).toEqual(['a', 'b', 'c'])
    expect(s.api).toBe(h.url)
    expect(s.sync.state).toBe('off')
    expect(s.scheduler).toBeNull()
  })

  it('refuses unknown query parameters, naming them', async () => {
    expectError(await call('GET', '/v1/status?verbose=1'), 400, 'SCHEMA_INVALID', 'verbose')
  })

  it('lists peers (none without a network)', async () => {
    const r = await call('GET', '/v1/peers')
    expect(r.status).toBe(200)
    conforms(PeersResponseSchema, r.body)
    expect(r.body.peers).toEqual([])
  })
})

describe('GET /v1/verdict', () => {
  it('conflict: two parties rebuilt the digest but a third dissents (max_dissent 0)', async () => {
    const v = await h.client.verdict({ sha256: H, package: PKG, artifact: DEB })
    conforms(VerdictResultSchema, v)
    expect(v.status).toBe('conflict')
    expect(v.verdicts[0]!.evidence.have).toBe(2)
  })

  it('with a tolerant policy sent in the request: reproduced, and the file with the other digest is a mismatch', async () => {
    const tolerant = formatPolicy({ ...NODE_POLICY, maxDissent: 1 })
    const [same, other] = await h.client.verdicts(
      [
        { sha256: H, package: PKG, artifact: DEB },
        { sha256: sha256Hex('tampered copy'), package: PKG, artifact: DEB }
      ],
      { policy: tolerant }
    )
    expect(same!.status).toBe('reproduced')
    expect(other!.status).toBe('mismatch')
    expect(other!.reason).toContain('this file (') // …was never published: the builders saw the archive publish H
    expect(other!.reason).toContain('was never published')
  })

  it('finds the (package, artifact) pairs from the digest alone, ignoring pairs only untrusted keys claim', async () => {
    const v = await h.client.verdict({ sha256: H.toUpperCase() })
    expect(v.query.sha256).toBe(H)
    expect(v.verdicts.map((x) => [x.evidence.package, x.evidence.artifact])).toEqual([[PKG, DEB]])
    expect(v.status).toBe('conflict')
  })

  it('unknown digest alone → unknown with a hint', async () => {
    const v = await h.client.verdict({ sha256: sha256Hex('never attested') })
    expect(v.status).toBe('unknown')
    expect(v.verdicts).toEqual([])
    expect(v.reason).toContain('give the package and artifact')
  })

  it('bad input: 400 naming the field', async () => {
    expectError(await call('GET', '/v1/verdict'), 400, 'SCHEMA_INVALID', 'sha256')
    expectError(await call('GET', '/v1/verdict?sha256=xyz'), 400, 'SCHEMA_INVALID', 'sha256')
    expectError(await call('GET', `/v1/verdict?sha256=${H}&sha256=${H}`), 400, 'SCHEMA_INVALID', 'sha256')
    expectError(await call('GET', `/v1/verdict?sha256=${H}&package=notapurl`), 400, 'PURL_INVALID', 'package')
    expectError(await call('GET', `/v1/verdict?sha256=${H}&artifact=..`), 400, 'SCHEMA_INVALID', 'artifact')
    expectError(await call('GET', `/v1/verdict?sha256=${H}&artifact=a%2Fb`), 400, 'SCHEMA_INVALID', 'artifact')
    expectError(await call('GET', `/v1/verdict?sha256=${H}&extra=1`), 400, 'SCHEMA_INVALID', 'extra')
  })
})

describe('POST /v1/verdicts', () => {
  it('batch answers equal single answers, in order', async () => {
    const queries = [
      { sha256: H, package: PKG, artifact: DEB },
      { sha256: X, package: PKG, artifact: DEB },
      { sha256: H },
      { sha256: X },
      { sha256: sha256Hex('nothing') },
      { sha256: H, package: OTHER_PKG, artifact: DEB },
      { sha256: H, artifact: DEB },
      { sha256: H, package: 'pkg:deb/debian/hello@2.10-3?arch=source' }
    ]
    const batch = await h.client.verdicts(queries)
    const singles = await Promise.all(queries.map((q) => h.client.verdict(q)))
    expect(batch).toEqual(singles)
    const raw = await postJson('/v1/verdicts', { artifacts: queries })
    conforms(VerdictsResponseSchema, raw.body)
  })

  it('brief answers agree with full ones on status, reason and evidenceHash, single and batch; bad mode → 400', async () => {
    const queries = [
      { sha256: H, package: PKG, artifact: DEB },
      { sha256: X, package: PKG, artifact: DEB },
      { sha256: H },
      { sha256: sha256Hex('nothing') },
      { sha256: H, artifact: DEB }
    ]
    const full = await h.client.verdicts(queries)
    const brief = await h.client.verdicts(queries, { evidence: 'brief' })
    const explicitFull = await h.client.verdicts(queries, { evidence: 'full' })
    expect(explicitFull).toEqual(full)
    const briefOf = (r: VerdictResult): BriefVerdictResult => ({
      query: r.query,
      status: r.status,
      reason: r.reason,
      verdicts: r.verdicts.map((v) => ({ package: v.evidence.package, artifact: v.evidence.artifact, status: v.status, reason: v.reason, evidenceHash: v.evidenceHash }))
    })
    expect(brief).toEqual(full.map(briefOf))
    expect(full.some((r) => r.verdicts.length > 0)).toBe(true)
    for (const [i, q] of queries.entries()) {
      const single = await h.client.verdict(q, { evidence: 'brief' })
      conforms(BriefVerdictResultSchema, single)
      expect(single).toEqual(brief[i])
      for (const v of single.verdicts) expect(v).not.toHaveProperty('evidence')
    }
    const raw = await postJson('/v1/verdicts', { artifacts: queries, evidence: 'brief' })
    conforms(VerdictsResponseSchema, raw.body)
    expectError(await call('GET', `/v1/verdict?sha256=${H}&evidence=none`), 400, 'SCHEMA_INVALID', 'evidence')
    expectError(await postJson('/v1/verdicts', { artifacts: queries, evidence: 'some' }), 400, 'SCHEMA_INVALID', 'evidence')
  })

  it('answers 10,000 artifacts in one call', async () => {
    const queries = Array.from({ length: API_MAX_BATCH }, (_, i) => ({ sha256: sha256Hex(`file ${i}`), package: `pkg:deb/debian/p${i % 500}@1?arch=source`, artifact: `p${i}.deb` }))
    queries[1234] = { sha256: H, package: PKG, artifact: DEB }
    const results = await h.client.verdicts(queries)
    expect(results).toHaveLength(API_MAX_BATCH)
    expect(results[1234]!.status).toBe('conflict')
    expect(results.filter((r) => r.status === 'unknown')).toHaveLength(API_MAX_BATCH - 1)
  })

  it('bad items are refused naming the item and field', async () => {
    const bad = [{ sha256: H }, { sha256: H }, { sha256: H }, { sha256: 'nope' }]
    expectError(await postJson('/v1/verdicts', { artifacts: bad }), 400, 'SCHEMA_INVALID', 'artifacts[3].sha256')
    expectError(await postJson('/v1/verdicts', { artifacts: [{ sha256: H, package: 'pkg:' }] }), 400, 'PURL_INVALID', 'artifacts[0].package')
    expectError(await postJson('/v1/verdicts', { artifacts: [] }), 400, 'SCHEMA_INVALID', 'artifacts')
    expectError(await postJson('/v1/verdicts', { artifacts: [{ sha256: H }], extra: true }), 400, 'SCHEMA_INVALID', 'extra')
    expectError(await postJson('/v1/verdicts', [1, 2]), 400, 'SCHEMA_INVALID', 'body')
    const tooMany = Array.from({ length: API_MAX_BATCH + 1 }, () => ({ sha256: H }))
    expectError(await postJson('/v1/verdicts', { artifacts: tooMany }), 400, 'SCHEMA_INVALID', 'artifacts')
  })

  it('a policy with errors is refused naming its line', async () => {
    const text = 'threshold = 1\ncount = "party"\nbogus = 3\n'
    const r = await postJson('/v1/verdicts', { artifacts: [{ sha256: H }], policy: text })
    expectError(r, 400, 'POLICY_INVALID', 'policy')
    expect(r.body.error.message).toMatch(/policy:3: bogus/)
    const syntax = await postJson('/v1/verdicts', { artifacts: [{ sha256: H }], policy: 'threshold = \n' })
    expectError(syntax, 400, 'POLICY_INVALID', 'policy')
    expect(syntax.body.error.message).toMatch(/^policy:1:/)
  })

  it('malformed, deep, empty, oversized JSON and wrong content types', async () => {
    expectError(await call('POST', '/v1/verdicts', { body: '{"artifacts": [', type: 'application/json' }), 400, 'JSON_MALFORMED', 'body')
    expectError(await call('POST', '/v1/verdicts', { body: '[' .repeat(100) + ']'.repeat(100), type: 'application/json' }), 400, 'JSON_MALFORMED', 'body')
    expectError(await call('POST', '/v1/verdicts', { body: '', type: 'application/json' }), 400, 'JSON_MALFORMED')
    expectError(await call('POST', '/v1/verdicts', { body: 'artifacts=1', type: 'application/x-www-form-urlencoded' }), 415, 'UNSUPPORTED_MEDIA_TYPE')
    expectError(await call('POST', '/v1/verdicts', { body: '{}', type: 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE')
    const huge = JSON.stringify({ artifacts: [{ sha256: H, artifact: 'x'.repeat(9 * 1024 * 1024) }] })
    expectError(await call('POST', '/v1/verdicts', { body: huge, type: 'application/json' }), 413, 'INPUT_TOO_LARGE')
    // Routes with the default limit (256 KiB) refuse sooner.
    expectError(await postJson('/v1/trust/explain', { key: 'x'.repeat(300 * 1024) }), 413, 'INPUT_TOO_LARGE')
  })
})

describe('POST /v1/trust/explain', () => {
  it('explains a delegated key with its chain, and an untrusted key', async () => {
    const r = await postJson('/v1/trust/explain', { key: SERVER_B.publicKey.text, package: PKG })
    expect(r.status, r.text).toBe(200)
    conforms(TrustExplanationSchema, r.body)
    expect(r.body.trusted).toBe(true)
    expect(r.body.builder.party).toBe('b')
    expect(r.body.builder.chain.map((e: { name: string }) => e.name)).toEqual(['b-buildd'])
    const stranger = await h.client.explainTrust(STRANGER.publicKey.keyid)
    expect(stranger.trusted).toBe(false)
    expect(stranger.reason).toContain('not a trust root')
  })

  it('bad key → 400 naming it', async () => {
    expectError(await postJson('/v1/trust/explain', { key: 'ed25519:nope' }), 400, 'KEY_INVALID', 'key')
    expectError(await postJson('/v1/trust/explain', {}), 400, 'SCHEMA_INVALID', 'key')
  })
})

describe('GET /v1/attestations', () => {
  it('by package, sha256 and builder, paged with an opaque cursor', async () => {
    const byPkg = await call('GET', `/v1/attestations?package=${encodeURIComponent(PKG)}`)
    expect(byPkg.status).toBe(200)
    conforms(AttestationsPageSchema, byPkg.body)
    expect(byPkg.body.items).toHaveLength(3)
    expect(byPkg.body.next).toBeNull()
    const bySha = await h.client.attestations({ sha256: H })
    expect(bySha.items.map((i) => i.signer).sort()).toEqual([A, SERVER_B, STRANGER].map((k) => k.publicKey.keyid).sort())
    const byBuilder = await h.client.attestations({ builder: C.publicKey.keyid })
    expect(byBuilder.items).toHaveLength(1)
    // Paging one at a time visits each frame once.
    const seen: string[] = []
    for await (const f of h.client.allAttestations({ package: PKG, limit: 1 })) seen.push(f.id)
    expect(seen).toHaveLength(3)
    expect(new Set(seen).size).toBe(3)
    // The frame object is the stored frame: its canonical form hashes to the id.
    const item = byPkg.body.items[0]
    expect(createHash('sha256').update(canonicalJson(item.frame)).digest('hex')).toBe(item.id)
  })

  it('pages a builder with many attestations in seq order', async () => {
    const k = key('prolific builder')
    const frames = Array.from({ length: 7 }, (_, i) => attest(k, { seq: i + 1, pkg: `pkg:deb/debian/q${i}@1?arch=source` }))
    await h.client.submitFrames(frames.map((f) => f.bytes))
    const ids: string[] = []
    for await (const f of h.client.allAttestations({ builder: k.publicKey.keyid, limit: 3 })) ids.push(f.id)
    expect(ids).toEqual(frames.map((f) => f.id))
  })

  it('one frame by id; unknown → 404', async () => {
    const f = attest(A, { seq: 1 })
    const r = await call('GET', `/v1/attestations/${f.id}`)
    expect(r.status).toBe(200)
    conforms(StoredFrameSchema, r.body)
    expect(canonicalJson(r.body.frame)).toBe(frameText(f.bytes))
    expectError(await call('GET', `/v1/attestations/${sha256Hex('nope')}`), 404, 'NOT_FOUND')
    expectError(await call('GET', '/v1/attestations/NOTHEX'), 400, 'SCHEMA_INVALID', 'id')
  })

  it('bad queries', async () => {
    expectError(await call('GET', '/v1/attestations'), 400, 'SCHEMA_INVALID', 'package')
    expectError(await call('GET', `/v1/attestations?sha256=${H}&builder=${H}`), 400, 'SCHEMA_INVALID', 'builder')
    expectError(await call('GET', `/v1/attestations?sha256=${H}&limit=0`), 400, 'SCHEMA_INVALID', 'limit')
    expectError(await call('GET', `/v1/attestations?sha256=${H}&limit=lots`), 400, 'SCHEMA_INVALID', 'limit')
    expectError(await call('GET', `/v1/attestations?sha256=${H}&cursor=bm9wZQ`), 400, 'SCHEMA_INVALID', 'cursor')
    expectError(await call('GET', `/v1/attestations?package=pkg%3Anope`), 400, 'PURL_INVALID', 'package')
  })
})

describe('POST /v1/attestations', () => {
  it('stores a frame (201), then reports it duplicate (200)', async () => {
    const f = attest(A, { seq: 2, pkg: 'pkg:deb/debian/fresh@1?arch=source' })
    const first = await call('POST', '/v1/attestations', { body: f.bytes, type: 'application/json' })
    expect(first.status, first.text).toBe(201)
    expect(first.body).toEqual({ status: 'stored', id: f.id, kind: 'attestation' })
    const again = await h.client.submitFrame(f.bytes)
    expect(again.status).toBe('duplicate')
  })

  it('refuses invalid frames with their typed error', async () => {
    const f = attest(A, { seq: 3 })
    const obj = JSON.parse(frameText(f.bytes))
    obj.envelope.signatures[0].sig = Buffer.alloc(64, 7).toString('base64')
    const forged = await call('POST', '/v1/attestations', { body: canonicalJson(obj), type: 'application/json' })
    expectError(forged, 400, 'SIGNATURE_INVALID')
    const spaced = await call('POST', '/v1/attestations', { body: JSON.stringify(JSON.parse(frameText(f.bytes)), null, 1), type: 'application/json' })
    expectError(spaced, 400, 'NOT_CANONICAL')
    await expect(h.client.submitFrame(utf8('{"v":2}'))).rejects.toMatchObject({ code: 'VERSION_UNSUPPORTED' })
  })

  it('takes JSON lines, one result per line', async () => {
    const good = attest(B, { seq: 5, pkg: 'pkg:deb/debian/lines@1?arch=source' })
    const body = `${frameText(good.bytes)}\r\n\n{"broken\n${frameText(good.bytes)}\n`
    const r = await call('POST', '/v1/attestations', { body, type: 'application/x-ndjson' })
    expect(r.status, r.text).toBe(200)
    expect(r.body.results.map((x: { status: string }) => x.status)).toEqual(['stored', 'rejected', 'duplicate'])
    expect(r.body.results[1].error.code).toBe('JSON_MALFORMED')
  })

  it('needs the token: none or a wrong one → 401, checked before the body is read', async () => {
    const f = attest(A, { seq: 4 })
    expectError(await call('POST', '/v1/attestations', { body: f.bytes, type: 'application/json', token: null }), 401, 'UNAUTHORIZED')
    expectError(await call('POST', '/v1/attestations', { body: f.bytes, type: 'application/json', token: '0'.repeat(64) }), 401, 'UNAUTHORIZED')
    expectError(await call('POST', '/v1/attestations', { body: 'x'.repeat(10 * 1024 * 1024), type: 'application/json', token: null }), 401, 'UNAUTHORIZED')
    const wrongClient = new ApiClient({ url: h.url, token: 'f'.repeat(64) })
    await expect(wrongClient.submitFrame(f.bytes)).rejects.toMatchObject({ code: 'UNAUTHORIZED' })
  })

  it('size limits (413) and content types (415)', async () => {
    expectError(await call('POST', '/v1/attestations', { body: '{' + ' '.repeat(70 * 1024) + '}', type: 'application/json' }), 413, 'INPUT_TOO_LARGE')
    expectError(await call('POST', '/v1/attestations', { body: 'x\n'.repeat(4097), type: 'application/x-ndjson' }), 413, 'INPUT_TOO_LARGE')
    expectError(await call('POST', '/v1/attestations', { body: 'x'.repeat(9 * 1024 * 1024), type: 'application/x-ndjson' }), 413, 'INPUT_TOO_LARGE')
    expectError(await call('POST', '/v1/attestations', { body: '{}', type: 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE')
    expectError(await call('POST', '/v1/attestations', {}), 415, 'UNSUPPORTED_MEDIA_TYPE')
  })
})

describe('POST /v1/rebuilds', () => {
  it('without a scheduler: 503; bad purl: 400; no token: 401', async () => {
    expectError(await postJson('/v1/rebuilds', { purl: PKG }), 503, 'BUILDER_UNAVAILABLE')
    expectError(await postJson('/v1/rebuilds', { purl: 'hello' }), 400, 'PURL_INVALID', 'purl')
    expectError(await postJson('/v1/rebuilds', {}), 400, 'SCHEMA_INVALID', 'purl')
    expectError(await postJson('/v1/rebuilds', { purl: PKG }, null), 401, 'UNAUTHORIZED')
  })
})

describe('/v1/watch', () => {
  it('adds, lists and removes watched artifacts with their verdicts', async () => {
    const item = { package: PKG, artifact: DEB, sha256: H }
    const added = await h.client.watch([item])
    conforms(WatchResponseSchema, { watched: added })
    expect(added[0]).toMatchObject({ ...item, status: 'conflict' })
    const listed = await call('GET', '/v1/watch')
    conforms(WatchResponseSchema, listed.body)
    expect(listed.body.watched).toHaveLength(1)
    expect((await h.client.status()).watched).toBe(1)
    await h.client.watch([item], { remove: true })
    expect(await h.client.watched()).toEqual([])
  })

  it('bad input and no token', async () => {
    expectError(await postJson('/v1/watch', { artifacts: [{ package: PKG, artifact: DEB }] }), 400, 'SCHEMA_INVALID', 'artifacts[0].sha256')
    expectError(await postJson('/v1/watch', { artifacts: [] }, null), 401, 'UNAUTHORIZED')
  })
})

describe('/metrics, /openapi.json, unknown routes', () => {
  it('serves Prometheus text including API and ingest metrics', async () => {
    const r = await call('GET', '/metrics')
    expect(r.status).toBe(200)
    expect(r.type).toContain('text/plain')
    expect(r.text).toContain('rbq_api_requests_total{route="/v1/status",method="GET",status="200"}')
    expect(r.text).toContain('rbq_ingest_frames_total')
  })

  it('describes every route in OpenAPI 3.1, with the token on write routes', async () => {
    const doc = (await h.client.openapi()) as { openapi: string; paths: Record<string, Record<string, { security?: unknown; parameters: { name: string }[] }>> }
    expect(doc.openapi).toBe('3.1.0')
    for (const r of h.server.routeList) {
      const op = doc.paths[r.url.replace(/:(\w+)/g, '{$1}')]?.[r.method.toLowerCase()]
      expect(op, `${r.method} ${r.url}`).toBeDefined()
      // Every operation declares its security: the bearer token, or explicitly none.
      expect(op!.security, `${r.method} ${r.url}`).toEqual(r.auth === true ? [{ bearer: [] }] : [])
    }
    expect(doc.paths['/v1/verdict']!.get!.parameters.map((p) => p.name)).toEqual(['sha256', 'package', 'artifact', 'evidence'])
  })

  it('unknown route or method → 404 with an error body', async () => {
    expectError(await call('GET', '/v2/status'), 404, 'NOT_FOUND')
    expectError(await call('DELETE', '/v1/status'), 404, 'NOT_FOUND')
  })

  it('never answers garbage with a 500', async () => {
    const bodies = ['null', '0', '"x"', '{"artifacts":null}', '{"artifacts":[null]}', '{"artifacts":[{"sha256":{}}]}', '{"__proto__":{"x":1}}', '\u0000', '{"a":1,"a":2}']
    for (const path of ['/v1/verdicts', '/v1/watch', '/v1/rebuilds', '/v1/trust/explain', '/v1/attestations']) {
      for (const body of bodies) {
        const r = await call('POST', path, { body, type: 'application/json' })
        expect(r.status, `${path} ${body}: ${r.text}`).toBeGreaterThanOrEqual(400)
        expect(r.status, `${path} ${body}: ${r.text}`).toBeLessThan(500)
      }
    }
  })
})

describe('no policy on the node', () => {
  it('verdict routes say how to create one; a policy in the request still works', async () => {
    const bare = await startApi()
    try {
      const r = await fetch(`${bare.url}/v1/verdict?sha256=${H}`)
      const body = (await r.json()) as { error: { code: string; message: string } }
      expect(r.status).toBe(400)
      expect(body.error.code).toBe('POLICY_INVALID')
      expect(body.error.message).toContain('rbq init')
      const [v] = await bare.client.verdicts([{ sha256: H }], { policy: formatPolicy(NODE_POLICY) })
      expect(v!.status).toBe('unknown')
      expect((await bare.client.status()).policy.loaded).toBe(false)
    } finally {
      await bare.stop()
    }
  })
})

describe('asking by digest finds what builders saw the archive publish', () => {
  it('a bare sha256 that only appears as an upstream digest gets the verdict asking by file gets', async () => {
    const pkg = 'pkg:deb/debian/drifty@1.0-1?arch=source'
    const deb = 'drifty_1.0-1_amd64.deb'
    const archive = sha256Hex('drifty as the archive published it')
    // a and c rebuilt other bytes with today's toolchain; the archive published `archive`.
    const drift = (k: typeof A, sha256: string) =>
      attest(k, { seq: 7, pkg, artifact: deb, sha256, outcome: 'mismatch', upstream: archive, diff: { tags: ['build-id'], summary: 'ELF build-id differs' } })
    const results = await h.client.submitFrames([drift(A, X), drift(C, sha256Hex('another rebuild'))].map((f) => f.bytes))
    expect(results.map((r) => r.status)).toEqual(['stored', 'stored'])

    const byFile = await h.client.verdict({ sha256: archive, package: pkg, artifact: deb })
    const byDigest = await h.client.verdict({ sha256: archive })
    conforms(VerdictResultSchema, byDigest)
    expect(byFile.status).toBe('unreproducible')
    expect(byDigest.status).toBe('unreproducible')
    expect(byDigest.verdicts.map((v) => v.evidenceHash)).toEqual(byFile.verdicts.map((v) => v.evidenceHash))
    expect(byDigest.reason).toBe(byFile.reason)
    expect(byDigest.reason).toMatch(/^not reproducible with today's toolchain: 2 parties rebuilt other bytes \(build-id\)/)
    expect(byDigest.verdicts[0]!.evidence.claims.map((c) => c.summary)).toEqual(['ELF build-id differs', 'ELF build-id differs'])
    // narrowed by artifact name too
    expect((await h.client.verdict({ sha256: archive, artifact: deb })).status).toBe('unreproducible')
  })
})
