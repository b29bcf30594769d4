/**
 * `rbq import rebuilderd` and `rbq export` as real processes against a real node: a rebuilderd
 * list becomes attestations signed by the bridge key, which count once a policy trusts the
 * bridge; `export --in-toto` gives DSSE envelopes that verify with the bridge's public key.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from '../../../../client/api-client.js'
import { policyPath } from '../../../../node/trust/policy-file.js'
import { formatPolicy } from '../../../../node/consensus/index.js'
import { fromBase64, parsePublicKey, sha256Hex, verifyEnvelopeSignature } from '../../../../protocol/index.js'
import { key, policy } from '../../node/consensus/fixtures.js'
import { RBQ_BIN, runRbq } from '../../../utils/cli.js'
import { startApiNode, type ApiNode } from '../../../utils/api-node.js'
import { makeTempDir } from '../../../utils/tmp.js'

const MOUNT = sha256Hex('mount deb')
const LIBMOUNT = sha256Hex('libmount deb')

const V0 = [
  { name: 'mount', version: '2.38.1-5+b1', status: 'GOOD', distro: 'debian', suite: 'main', architecture: 'amd64', artifact_url: 'https://deb.debian.org/debian/pool/main/u/util-linux/mount_2.38.1-5+b1_amd64.deb', build_id: 1, built_at: '2025-01-02T03:04:05', sha256: MOUNT },
  { name: 'libmount1', version: '2.38.1-5+b1', status: 'GOOD', distro: 'debian', suite: 'main', architecture: 'amd64', artifact_url: 'https://deb.debian.org/debian/pool/main/u/util-linux/libmount1_2.38.1-5+b1_amd64.deb', build_id: 1, sha256: LIBMOUNT },
  { name: 'hello', version: '2.10-3', status: 'BAD', distro: 'debian', suite: 'main', architecture: 'amd64', artifact_url: 'https://x/hello_2.10-3_amd64.deb' },
  { name: 'gone', version: '1.0', status: 'GOOD', distro: 'debian', suite: 'main', architecture: 'amd64', artifact_url: 'https://x/gone_1.0_amd64.deb' }
]

describe.skipIf(!existsSync(RBQ_BIN))('rbq import rebuilderd / rbq export', () => {
  let dir: string
  let data: string
  let cleanup: () => Promise<void>
  let node: ApiNode | undefined

  beforeAll(async () => {
    ;({ dir, cleanup } = await makeTempDir('rbq-bridge-'))
    data = join(dir, 'data')
    await mkdir(data, { recursive: true, mode: 0o700 })
    await writeFile(join(dir, 'v0.json'), JSON.stringify(V0))
    await writeFile(policyPath(data), formatPolicy(policy({ threshold: 1, roots: [{ name: 'placeholder', key: key('bridge test placeholder') }] })))
    node = await startApiNode(data)
  })

  afterAll(async () => {
    await node?.stop()
    await cleanup?.()
  })

  it('refuses a body that is not a rebuilderd list, and leaves unsigned rows out unless allowed', async () => {
    await writeFile(join(dir, 'bad.json'), JSON.stringify({ packages: V0 }))
    const r = await runRbq(['import', 'rebuilderd', join(dir, 'bad.json'), '--data', data])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/bad\.json: expected a rebuilderd v0 package list .* \[SCHEMA_INVALID\]/)
    // A saved list authenticates nothing: without --allow-unsigned its rows are left out.
    const unsigned = await runRbq(['import', 'rebuilderd', join(dir, 'v0.json'), '--data', data, '--json'])
    expect(unsigned.code, unsigned.stderr).toBe(0)
    expect(JSON.parse(unsigned.stdout)).toMatchObject({ statements: 0, skipped: { bad: 1, unsigned: 3 } })
    expect(unsigned.stderr).toContain('--allow-unsigned')
    expect(existsSync(join(data, 'bridge.key'))).toBe(false)
  })

  it('imports GOOD rows as reproduced attestations signed by the bridge key; they count once trusted', async () => {
    const r = await runRbq(['import', 'rebuilderd', join(dir, 'v0.json'), '--data', data, '--allow-unsigned', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const summary = JSON.parse(r.stdout)
    expect(summary).toMatchObject({ api: 'v0', rows: 4, statements: 1, artifacts: 2, skipped: { bad: 1, 'no-digest': 1 }, submitted: 1, stored: 1, rejected: 0 })
    const bridgeKey = parsePublicKey(summary.bridge.publicKey)
    expect(summary.bridge.file).toBe(join(data, 'bridge.key'))

    const client = new ApiClient({ dataDir: data })
    const q = { package: 'pkg:deb/debian/util-linux@2.38.1-5?arch=source', artifact: 'mount_2.38.1-5+b1_amd64.deb', sha256: MOUNT }
    expect((await client.verdict(q)).status).toBe('unknown') // nobody trusts the bridge yet
    await writeFile(policyPath(data), formatPolicy({ threshold: 1, count: 'party', maxDissent: 0, maxDepth: 3, roots: [{ name: 'rebuilderd', key: bridgeKey, scope: ['pkg:deb/debian/*'] }] }))
    expect((await client.verdict(q)).status).toBe('reproduced')

    const exported = await runRbq(['export', '--in-toto', '--builder', bridgeKey.keyid, '--data', data])
    expect(exported.code, exported.stderr).toBe(0)
    const lines = exported.stdout.trimEnd().split('\n')
    expect(lines).toHaveLength(1)
    const env = JSON.parse(lines[0]!) as { payloadType: string; payload: string; signatures: { keyid: string; sig: string }[] }
    expect(Object.keys(env).sort()).toEqual(['payload', 'payloadType', 'signatures'])
    expect(env.signatures[0]!.keyid).toBe(bridgeKey.keyid)
    const payload = fromBase64(env.payload, 'payload')
    expect(verifyEnvelopeSignature(bridgeKey, env.payloadType, payload, fromBase64(env.signatures[0]!.sig, 'sig'))).toBe(true)
    const statement = JSON.parse(Buffer.from(payload).toString('utf8'))
    expect(statement._type).toBe('https://in-toto.io/Statement/v1')
    expect(statement.predicate.diff.tags).toEqual(['unauthenticated-source'])
    expect(statement.subject.map((s: { name: string }) => s.name)).toEqual(['libmount1_2.38.1-5+b1_amd64.deb', 'mount_2.38.1-5+b1_amd64.deb'])

    // Frames (the default) round-trip: the same canonical bytes the node stores.
    const frames = await runRbq(['export', '--package', q.package, '--data', data])
    expect(frames.code, frames.stderr).toBe(0)
    const [frameLine] = frames.stdout.trimEnd().split('\n')
    expect((await client.submitFrames([Buffer.from(frameLine!)]))[0]!.status).toBe('duplicate')
    expect(JSON.parse(await readFile(join(data, 'bridge.key.seq'), 'utf8')).lastSeq).toBe(1)
  })

  it('a dry run reads and plans only', async () => {
    const r = await runRbq(['import', 'rebuilderd', join(dir, 'v0.json'), '--dry-run', '--allow-unsigned', '--data', join(dir, 'dry')])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain('would import 2 artifacts (0 verified, 2 unauthenticated) in 1 statement')
    expect(r.stdout).toContain('skipped rows: bad 1, no-digest 1')
  })
})
