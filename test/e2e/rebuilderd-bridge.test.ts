/**
 * `rbq import rebuilderd` as a real process, against a rebuilderd-format server on 127.0.0.1
 * (routes, JSON shapes, paging, in-toto links signed with Ed25519 and the key endpoint as
 * rebuilderd serves them: test/utils/rebuilderd-server.ts) and a real node: mixed Debian / Arch /
 * Fedora rows over several v1 pages, links verified with a pinned key, a tampered link refused,
 * unsigned rows only when allowed (and tagged), re-imports that add nothing, 304s that do no
 * work, and a v0 list with Last-Modified.
 */
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from '../../client/api-client.js'
import { formatPolicy } from '../../node/consensus/index.js'
import { policyPath } from '../../node/trust/policy-file.js'
import { fromBase64, parsePublicKey, sha256Hex } from '../../protocol/index.js'
import { key, policy } from '../unit/node/consensus/fixtures.js'
import { RBQ_BIN, runRbq } from '../utils/cli.js'
import { startApiNode, type ApiNode } from '../utils/api-node.js'
import { debianRecord, foreignRecords, signedLink, startRebuilderdServer, type RebuilderdServer } from '../utils/rebuilderd-server.js'
import { makeTempDir } from '../utils/tmp.js'

if (!existsSync(RBQ_BIN)) {
  if (process.env.CI === 'true') throw new Error(`${RBQ_BIN} not built`)
  console.log(`skipped test/e2e/rebuilderd-bridge.test.ts: ${RBQ_BIN} not built (npm run build)`)
}

interface Statement {
  subject: { name: string; digest: { sha256: string } }[]
  predicate: { package: string; inputs: { materials: { uri: string; digest: { sha256: string } }[] }; diff?: { tags: string[]; summary: string } }
}

describe.skipIf(!existsSync(RBQ_BIN))('rbq import rebuilderd against a rebuilderd-format server', () => {
  let dir: string
  let data: string
  let cleanup: () => Promise<void>
  let node: ApiNode | undefined
  let server: RebuilderdServer
  let bridgeKeyid = ''

  beforeAll(async () => {
    ;({ dir, cleanup } = await makeTempDir('rbq-bridge-e2e-'))
    data = join(dir, 'data')
    await mkdir(data, { recursive: true, mode: 0o700 })
    await writeFile(policyPath(data), formatPolicy(policy({ threshold: 1, roots: [{ name: 'placeholder', key: key('bridge e2e placeholder') }] })))
    node = await startApiNode(data)
    server = await startRebuilderdServer([
      debianRecord(1, 'mount', '2.40.2-1', 'util-linux'),
      debianRecord(2, 'libmount1', '2.40.2-1', 'util-linux'),
      ...foreignRecords(3),
      debianRecord(5, 'hello', '2.10-3', 'hello', { status: 'BAD' }),
      debianRecord(6, 'zsh', '5.9-6', 'zsh', { attested: false, status: 'GOOD' }),
      debianRecord(7, 'bash', '5.2.37-1', 'bash'),
      debianRecord(8, 'coreutils', '9.5-1', 'coreutils', { status: null, build_id: null, artifact_id: null, attested: false })
    ])
  })

  afterAll(async () => {
    await server?.close()
    await node?.stop()
    await cleanup?.()
  })

  const listUrl = () => `${server.url}/api/v1/packages/binary?limit=3`
  const imp = (args: string[]) => runRbq(['import', 'rebuilderd', ...args, '--data', data, '--json'])
  const bridgeFrames = async (): Promise<Statement[]> => {
    if (bridgeKeyid === '') return []
    const r = await runRbq(['export', '--in-toto', '--builder', bridgeKeyid, '--data', data])
    expect(r.code, r.stderr).toBe(0)
    return r.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(Buffer.from(fromBase64((JSON.parse(l) as { payload: string }).payload, 'payload')).toString('utf8')) as Statement)
  }

  it('refuses plain http:// unless allowed, and a pinned key id the instance does not publish', async () => {
    const http = await imp([listUrl(), '--key-id', server.key.keyid])
    // With --json, errors are a JSON document on stdout (README: --json errors).
    const errorOf = (r: { stdout: string }) => (JSON.parse(r.stdout) as { error: { code: string; message: string } }).error
    expect(http.code).toBe(2)
    expect(errorOf(http).code).toBe('USAGE')
    expect(errorOf(http).message).toMatch(/plain http:\/\/ is unauthenticated.*--allow-http/)
    const wrong = await imp([listUrl(), '--allow-http', '--key-id', sha256Hex('not the key')])
    expect(wrong.code).toBe(2)
    expect(errorOf(wrong).code).toBe('KEYID_MISMATCH')
    expect(errorOf(wrong).message).toContain(`does not publish the pinned key ${sha256Hex('not the key')} (it publishes ${server.key.keyid})`)
  })

  it('imports verified rows over every page; other distributions, BAD and unsigned rows are skipped and counted', async () => {
    const r = await imp([listUrl(), '--allow-http', '--key-id', server.key.keyid])
    expect(r.code, r.stderr).toBe(0)
    const s = JSON.parse(r.stdout)
    expect(s).toMatchObject({ api: 'v1', pages: 3, rows: 8, total: 8, statements: 2, artifacts: 3, verified: 3, unauthenticated: 0, stored: 2, rejected: 0 })
    expect(s.skipped).toEqual({ 'other-distribution': 2, bad: 1, unknown: 1, unsigned: 1 })
    expect(r.stderr).toContain('1 row without an attestation verified by a pinned key were left out')
    bridgeKeyid = parsePublicKey(s.bridge.publicKey).keyid

    const statements = await bridgeFrames()
    expect(statements).toHaveLength(2)
    const util = statements.find((x) => x.predicate.package === 'pkg:deb/debian/util-linux@2.40.2-1?arch=source')!
    expect(util.subject.map((x) => [x.name, x.digest.sha256])).toEqual([
      ['libmount1_2.40.2-1_amd64.deb', server.records[1]!.sha256],
      ['mount_2.40.2-1_amd64.deb', server.records[0]!.sha256]
    ])
    // The evidence: each link as a material (its URL and the digest of its bytes) and the tag.
    expect(util.predicate.inputs.materials).toEqual(
      [1, 2].map((i) => ({
        uri: `${server.url}/api/v1/builds/${i}/artifacts/${i}/attestation`,
        digest: { sha256: sha256Hex(signedLink(server.records[i - 1]!.url.split('/').pop()!, server.records[i - 1]!.sha256, [server.key])) }
      }))
    )
    expect(util.predicate.diff?.tags).toEqual(['source-verified'])

    // They count once a curator trusts the bridge.
    const client = new ApiClient({ dataDir: data })
    const q = { package: 'pkg:deb/debian/util-linux@2.40.2-1?arch=source', artifact: 'mount_2.40.2-1_amd64.deb', sha256: server.records[0]!.sha256 }
    await writeFile(policyPath(data), formatPolicy({ threshold: 1, count: 'party', maxDissent: 0, maxDepth: 3, roots: [{ name: 'rebuilderd', key: parsePublicKey(s.bridge.publicKey), scope: ['pkg:deb/debian/*'] }] }))
    expect((await client.verdict(q)).status).toBe('reproduced')
  })

  it('a second import adds nothing: unchanged pages answer 304, and without 304s every record is remembered', async () => {
    const before = (await bridgeFrames()).length
    const mark = server.requests.length
    const r304 = await imp([listUrl(), '--allow-http', '--key-id', server.key.keyid])
    expect(r304.code, r304.stderr).toBe(0)
    expect(JSON.parse(r304.stdout)).toMatchObject({ pages: 3, notModified: 3, rows: 0, statements: 0, attestations: 0 })
    const lists = server.requests.slice(mark).filter((q) => q.path.startsWith('/api/v1/packages/binary'))
    expect(lists.map((q) => q.status)).toEqual([304, 304, 304])
    expect(server.requests.slice(mark).some((q) => q.path.includes('/attestation'))).toBe(false)

    server.conditional = false
    try {
      const full = await imp([listUrl(), '--allow-http', '--key-id', server.key.keyid])
      expect(full.code, full.stderr).toBe(0)
      expect(JSON.parse(full.stdout)).toMatchObject({ rows: 8, statements: 0, attestations: 0, skipped: { 'already-imported': 3 } })
    } finally {
      server.conditional = true
    }
    expect(await bridgeFrames()).toHaveLength(before)
  })

  it('rows without a verified link are left out; a tampered link is refused, even with --allow-unsigned', async () => {
    // zsh, dash and less have no link and no digest of their own: even allowed, nothing gives a digest.
    server.records.push(debianRecord(9, 'dash', '0.5.12-9', 'dash', { attested: false }))
    server.records.push(debianRecord(10, 'less', '668-1', 'less', { attested: false }))
    // A new build whose link was altered after signing.
    server.records.push(debianRecord(11, 'grep', '3.11-4', 'grep'))
    server.tampered.set('11/11', signedLink('grep_3.11-4_amd64.deb', sha256Hex('grep'), [server.key]).replace(sha256Hex('grep'), sha256Hex('evil grep')))

    const r = await imp([listUrl(), '--allow-http', '--key-id', server.key.keyid])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/refused attestation: .*\/api\/v1\/builds\/11\/artifacts\/11\/attestation: no valid signature by a pinned key/)
    const s = JSON.parse(r.stdout)
    expect(s.skipped).toMatchObject({ 'attestation-invalid': 1, unsigned: 3 })
    expect(s.statements).toBe(0)

    const allowed = await imp([listUrl(), '--allow-http', '--key-id', server.key.keyid, '--allow-unsigned'])
    expect(allowed.code).toBe(1) // the tampered link is still refused, never downgraded to "unsigned"
    const a = JSON.parse(allowed.stdout)
    expect(a.skipped).toMatchObject({ 'attestation-invalid': 1, 'no-digest': 3, 'already-imported': 3 })
    expect(a.statements).toBe(0)
    const statements = await bridgeFrames()
    expect(statements.some((x) => x.subject.some((y) => y.name.startsWith('grep_')))).toBe(false)
  })

  it('v0: unsigned rows only with --allow-unsigned and tagged; pinning the key later imports them verified; Last-Modified gives 304s', async () => {
    const other = await startRebuilderdServer([debianRecord(1, 'mount', '2.40.2-1', 'util-linux'), ...foreignRecords(2), debianRecord(4, 'sed', '4.9-2', 'sed')])
    try {
      const keyFile = join(dir, 'rebuilderd.pem')
      await writeFile(keyFile, other.key.pem)
      const v0 = `${other.url}/api/v0/pkgs/list`
      const sedStatements = async () => (await bridgeFrames()).filter((x) => x.predicate.package === 'pkg:deb/debian/sed@4.9-2?arch=source')

      const refused = await imp([v0, '--allow-http'])
      expect(refused.code, refused.stderr).toBe(0)
      expect(JSON.parse(refused.stdout)).toMatchObject({ api: 'v0', rows: 4, statements: 0, skipped: { 'other-distribution': 2, unsigned: 2 } })
      expect(refused.stderr).toContain(`the instance publishes key id ${other.key.keyid}`)

      const unsigned = await imp([v0, '--allow-http', '--allow-unsigned'])
      expect(unsigned.code, unsigned.stderr).toBe(0)
      expect(JSON.parse(unsigned.stdout)).toMatchObject({ rows: 4, verified: 0, unauthenticated: 2, statements: 2, stored: 2 })
      expect((await sedStatements()).map((x) => x.predicate.diff?.tags)).toEqual([['unauthenticated-source']])

      const pinned = await imp([v0, '--allow-http', '--key', keyFile])
      expect(pinned.code, pinned.stderr).toBe(0)
      expect(JSON.parse(pinned.stdout)).toMatchObject({ rows: 4, verified: 2, statements: 2, stored: 2 })
      const sed = await sedStatements()
      expect(sed.map((x) => x.predicate.diff?.tags).sort()).toEqual([['source-verified'], ['unauthenticated-source']])
      expect(sed.find((x) => x.predicate.diff?.tags[0] === 'source-verified')!.predicate.inputs.materials[0]!.uri).toBe(`${other.url}/api/v0/builds/4/attestation`)

      const frames = (await bridgeFrames()).length
      const again = await imp([v0, '--allow-http', '--key', keyFile])
      expect(again.code, again.stderr).toBe(0)
      expect(JSON.parse(again.stdout)).toMatchObject({ notModified: 1, rows: 0, statements: 0 })
      expect(other.requests.at(-1)).toEqual({ path: '/api/v0/pkgs/list', status: 304 })
      expect(await bridgeFrames()).toHaveLength(frames)
    } finally {
      await other.close()
    }
  })
})
