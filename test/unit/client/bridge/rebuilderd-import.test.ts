/**
 * The bridge's reading, verifying and planning against a rebuilderd-format server on loopback
 * (test/utils/rebuilderd-server.ts) with a real LevelDB state; the CLI end to end is in
 * test/e2e/rebuilderd-bridge.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { StatementSigner } from '../../../../identity/statement-signer.js'
import { gatherEvidence, importContents, MAX_SUBJECTS_PER_STATEMENT, planRebuilderdImport, TAG_UNAUTHENTICATED, TAG_VERIFIED, type EvidencedRow } from '../../../../client/bridge/rebuilderd-import.js'
import { parseRebuilderdPublicKeys } from '../../../../client/bridge/in-toto-link.js'
import { endpointOf, readInstanceList } from '../../../../client/bridge/instance.js'
import type { RebuilderdArtifact } from '../../../../client/bridge/rebuilderd.js'
import { BridgeState } from '../../../../client/bridge/bridge-state.js'
import { decodeFrame, generateSigningKey, sha256Hex } from '../../../../protocol/index.js'
import { debianRecord, foreignRecords, signedLink, startRebuilderdServer, type RebuilderdServer } from '../../../utils/rebuilderd-server.js'
import { makeTempDir } from '../../../utils/tmp.js'

describe('rebuilderd bridge', () => {
  let server: RebuilderdServer
  let state: BridgeState
  let cleanup: () => Promise<void>
  let dir: string

  beforeEach(async () => {
    const tmp = await makeTempDir('rbq-bridge-unit-')
    cleanup = tmp.cleanup
    dir = tmp.dir
    state = await BridgeState.open(`${tmp.dir}/state`)
    server = await startRebuilderdServer([
      debianRecord(1, 'mount', '2.38.1-5+b1', 'util-linux'),
      debianRecord(2, 'libmount1', '2.38.1-5+b1', 'util-linux'),
      ...foreignRecords(3),
      debianRecord(5, 'hello', '2.10-3', 'hello', { status: 'BAD' }),
      debianRecord(6, 'zsh', '5.9-6', 'zsh', { attested: false }),
      debianRecord(7, 'bash', '5.2.37-1', 'bash')
    ])
  })

  afterEach(async () => {
    await server.close()
    await state.close()
    await cleanup()
  })

  const read = async () => {
    const endpoint = endpointOf(`${server.url}/api/v1/packages/binary?limit=2`)
    return { endpoint, list: await readInstanceList(endpoint, { allowHttp: true, state, memoScope: 't' }) }
  }

  it('follows v1 pages, verifies links with the pinned key, and skips what it cannot vouch for', async () => {
    const { endpoint, list } = await read()
    expect(list).toMatchObject({ api: 'v1', pages: 4, rows: 7, total: 7, skipped: { 'other-distribution': 2 } })
    expect(server.requests.filter((r) => r.path.startsWith('/api/v1/packages/binary')).map((r) => new URL(r.path, 'http://x').searchParams.get('after'))).toEqual([null, '2', '4', '6'])

    server.tampered.set('7/7', signedLink('bash_5.2.37-1_amd64.deb', sha256Hex('a trojan'), [server.key]).replace(sha256Hex('a trojan'), sha256Hex('another')))
    const keys = parseRebuilderdPublicKeys(server.key.pem, 'pin')
    const g = await gatherEvidence(list.artifacts, { origin: endpoint.base, endpoint, keys, allowUnsigned: false, allowHttp: true, state })
    expect(g.skipped).toEqual({ bad: 1, unsigned: 1, 'attestation-invalid': 1 })
    expect(g.refused[0]).toMatch(/builds\/7\/artifacts\/7\/attestation: no valid signature by a pinned key/)
    expect(g.rows.map((r) => [r.file, r.authenticated, r.keyid])).toEqual([
      ['mount_2.38.1-5+b1_amd64.deb', true, server.key.keyid],
      ['libmount1_2.38.1-5+b1_amd64.deb', true, server.key.keyid]
    ])
    // The digest is the link's product digest, not anything of this machine's.
    expect(g.rows[0]!.sha256).toBe(server.records[0]!.sha256)
    expect(g.rows[0]!.attestation).toEqual({ uri: `${server.url}/api/v1/builds/1/artifacts/1/attestation`, sha256: sha256Hex(signedLinkBytesOf(server, 0)) })

    // Once remembered, the same records are neither fetched nor planned again.
    await state.markImported(g.rows.map((r) => ({ ...r.record, sha256: r.sha256, authenticated: true })))
    const fetched = server.requests.length
    const again = await gatherEvidence(list.artifacts, { origin: endpoint.base, endpoint, keys, allowUnsigned: false, allowHttp: true, state })
    expect(again.skipped).toMatchObject({ 'already-imported': 2 })
    expect(again.rows).toEqual([])
    expect(server.requests.slice(fetched).some((r) => r.path.includes('/builds/1/'))).toBe(false)
  })

  it('with allowUnsigned, rows without a verified link come tagged unauthenticated; rows without any digest are skipped', async () => {
    const { endpoint, list } = await read()
    const g = await gatherEvidence(list.artifacts, { origin: endpoint.base, endpoint, keys: [], allowUnsigned: true, allowHttp: true, state })
    // Unpinned: the links' digests are used, unverified; zsh has no link and no digest.
    expect(g.skipped).toEqual({ bad: 1, 'no-digest': 1 })
    expect(g.rows.every((r) => !r.authenticated)).toBe(true)
    const plan = planRebuilderdImport(g.rows, { origin: endpoint.base })
    expect(plan.statements.map((s) => [s.package, s.diff.tags])).toEqual([
      ['pkg:deb/debian/bash@5.2.37-1?arch=source', [TAG_UNAUTHENTICATED]],
      ['pkg:deb/debian/util-linux@2.38.1-5?arch=source', [TAG_UNAUTHENTICATED]]
    ])
  })

  it('plans statements carrying the evidence, signs valid frames', async () => {
    const { endpoint, list } = await read()
    const keys = parseRebuilderdPublicKeys(server.key.pem, 'pin')
    const g = await gatherEvidence(list.artifacts, { origin: endpoint.base, endpoint, keys, allowUnsigned: false, allowHttp: true, state })
    const now = new Date('2026-03-01T00:00:00Z')
    const plan = planRebuilderdImport(g.rows, { origin: endpoint.base, now })
    const util = plan.statements.find((s) => s.package === 'pkg:deb/debian/util-linux@2.38.1-5?arch=source')!
    expect(util.subjects.map((s) => s.name)).toEqual(['libmount1_2.38.1-5+b1_amd64.deb', 'mount_2.38.1-5+b1_amd64.deb'])
    expect(util.materials.map((m) => m.uri)).toEqual([`${server.url}/api/v1/builds/1/artifacts/1/attestation`, `${server.url}/api/v1/builds/2/artifacts/2/attestation`])
    expect(util.diff.tags).toEqual([TAG_VERIFIED])
    expect(util.diff.summary).toContain(server.key.keyid)
    // v1's BinaryPackage carries no build time (v0's PkgRelease does): the import time stands in.
    expect(util.builtAt.toISOString()).toBe(now.toISOString())

    const key = generateSigningKey()
    const signer = new StatementSigner(key, `${dir}/bridge.key.seq`)
    await signer.continueAbove(40)
    const frames = await signer.attestAll(importContents(plan))
    const decoded = decodeFrame(frames[0]!.bytes)
    if (decoded.kind !== 'attestation') throw new Error('not an attestation')
    expect(decoded.statement.predicate).toMatchObject({ outcome: 'reproduced', builder: { id: key.publicKey.keyid, seq: 41, backend: 'rebuilderd' }, diff: { tags: [TAG_VERIFIED] } })
    expect(decoded.statement.predicate.inputs.materials).toHaveLength(plan.statements[0]!.materials.length)
    expect(decoded.statement.predicate.upstream).toEqual(decoded.statement.subject)
  })

  it('splits large source packages and never lists one artifact twice', async () => {
    const row = (i: number, sha: string): EvidencedRow => {
      const artifact: RebuilderdArtifact = { name: `lib${i}`, version: '1.0', architecture: 'amd64', status: 'GOOD', distribution: 'debian', suite: 'sid', url: `https://m/pool/main/b/big/lib${i}_1.0_amd64.deb`, id: i, buildId: 1, artifactId: i, hasAttestation: false, builtAt: undefined, sha256: sha }
      return { artifact, file: `lib${i}_1.0_amd64.deb`, sha256: sha, authenticated: false, attestation: undefined, keyid: undefined, record: { origin: 'f', buildId: 1, artifact: `lib${i}` } }
    }
    const rows = Array.from({ length: MAX_SUBJECTS_PER_STATEMENT + 3 }, (_, i) => row(i, sha256Hex(String(i))))
    rows.push(row(0, sha256Hex('0')), row(1, sha256Hex('other')))
    const plan = planRebuilderdImport(rows, { origin: 'f' })
    expect(plan.statements.map((s) => s.subjects.length)).toEqual([MAX_SUBJECTS_PER_STATEMENT, 3])
    expect(plan.skipped).toEqual({ duplicate: 1, 'conflicting-digest': 1 })
    const frames = await new StatementSigner(generateSigningKey(), `${dir}/bridge.key.seq`).attestAll(importContents(plan))
    expect(frames.map((f) => [decodeFrame(f.bytes).kind, f.statement.predicate.builder.seq])).toEqual([['attestation', 1], ['attestation', 2]])
  })
})

function signedLinkBytesOf(server: RebuilderdServer, i: number): Uint8Array {
  // Ed25519 signatures are deterministic: the same link the server served.
  const r = server.records[i]!
  return new TextEncoder().encode(signedLink(r.url.split('/').pop()!, r.sha256, [server.key]))
}
