/**
 * The real `rbq` binary (spawned) for `rbq delegate` and `rbq verdict`: an institution key
 * delegates to its build server, two parties attest a file, and the offline verdict says
 * reproduced; then the tampered file, a revocation, and bad input. `npm test` builds dist/ first.
 */
import { createHash } from 'node:crypto'
import { appendFile, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeFrame, type DelegationFrame } from '../../../protocol/index.js'
import { runRbq } from '../../utils/cli.js'
import { makeTempDir } from '../../utils/tmp.js'

let dir: string
let cleanup: () => Promise<void>
beforeAll(async () => ({ dir, cleanup } = await makeTempDir('rbq-cli-verdict-')))
afterAll(() => cleanup())

const PURL = 'pkg:deb/debian/hello@2.10-3?arch=source'
const DEB = 'hello_2.10-3_amd64.deb'

interface Key {
  path: string
  keyid: string
  publicKey: string
}

async function generateKey(name: string): Promise<Key> {
  const path = join(dir, `${name}.key`)
  const r = await runRbq(['key', 'generate', '--out', path, '--json'])
  expect(r.code, r.stderr).toBe(0)
  return { path, ...(JSON.parse(r.stdout) as { keyid: string; publicKey: string }) }
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex')

describe('rbq delegate / rbq verdict (spawned binary)', () => {
  let org: Key
  let buildd: Key
  let other: Key
  let policyPath: string
  let framesPath: string
  let fileSha: string
  const verdictArgs = (sha: string, frames = framesPath) => ['verdict', '--policy', policyPath, '--from', frames, '--sha256', sha, '--package', PURL, '--artifact', DEB]

  beforeAll(async () => {
    ;[org, buildd, other] = await Promise.all([generateKey('org'), generateKey('buildd'), generateKey('other')])
    const artifact = join(dir, DEB)
    await writeFile(artifact, 'pretend this is the official .deb\n')
    fileSha = sha256(await readFile(artifact))
    policyPath = join(dir, 'policy.toml')
    await writeFile(
      policyPath,
      [
        'threshold = 2',
        '[[root]]',
        'name = "org"',
        `key = "${org.publicKey}"`,
        'scope = ["pkg:deb/debian/*"]',
        '[[root]]',
        'name = "other"',
        `key = "${other.publicKey}"`,
        ''
      ].join('\n')
    )
    const frames: string[] = []
    for (const k of [buildd, other]) {
      const out = join(dir, `${k === buildd ? 'buildd' : 'other'}.frame`)
      const r = await runRbq(['attest', '--key', k.path, '--package', PURL, '--artifact', artifact, '--upstream', artifact, '--out', out])
      expect(r.code, r.stderr).toBe(0)
      frames.push(out)
    }
    const delegation = join(dir, 'delegation.frame')
    const d = await runRbq([
      'delegate', '--key', org.path, '--to', buildd.publicKey, '--name', 'buildd-1',
      '--scope', 'pkg:deb/debian/*', 'pkg:deb/debian-security/*', '--expires', '2099-01-01', '--version', '1', '--out', delegation
    ])
    expect(d.code, d.stderr).toBe(0)
    expect(d.stdout).toMatch(/^wrote .*delegation\.frame: delegation v1 to "buildd-1"/)
    frames.push(delegation)
    framesPath = join(dir, 'frames.jsonl')
    await writeFile(framesPath, (await Promise.all(frames.map((f) => readFile(f, 'utf8')))).join(''))
  })

  it('delegate writes a canonical, signed delegation frame with what was asked', async () => {
    const bytes = await readFile(join(dir, 'delegation.frame'))
    expect(bytes[bytes.length - 1]).toBe(0x0a)
    const frame = decodeFrame(new Uint8Array(bytes.subarray(0, bytes.length - 1))) as DelegationFrame
    expect(frame.kind).toBe('delegation')
    expect(frame.statement).toMatchObject({
      delegator: org.keyid,
      delegate: { keyid: buildd.keyid, publicKey: buildd.publicKey },
      name: 'buildd-1',
      scope: ['pkg:deb/debian/*', 'pkg:deb/debian-security/*'],
      maxDepth: 0,
      version: 1,
      expires: '2099-01-01T00:00:00Z',
      revoked: false
    })
  })

  it('verdict: reproduced (exit 0), the evidence with --json', async () => {
    const r = await runRbq(verdictArgs(fileSha))
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^reproduced: 2 parties rebuilt [0-9a-f]{12} \(org, other; 2 needed\)\n$/)
    const j = await runRbq([...verdictArgs(fileSha), '--json'])
    expect(j.code).toBe(0)
    const v = JSON.parse(j.stdout)
    expect(v.status).toBe('reproduced')
    expect(v.evidenceHash).toMatch(/^[0-9a-f]{64}$/)
    expect(v.evidence.support).toEqual([
      { party: 'org', keyid: buildd.keyid },
      { party: 'other', keyid: other.keyid }
    ])
  })

  it('verdict: a tampered file is a mismatch (exit 1, verdict and reason on one line)', async () => {
    const r = await runRbq(verdictArgs(sha256('tampered copy')))
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/^mismatch: 2 parties saw the archive publish [0-9a-f]{12} as hello_2\.10-3_amd64\.deb; this file \([0-9a-f]{12}\) was never published\n$/)
    expect(r.stderr).toBe('')
  })

  it('verdict: unreproducible exits 3 (both saw the archive publish the file; their rebuilds differ)', async () => {
    const { mkdir } = await import('node:fs/promises')
    await mkdir(join(dir, 'rebuilt'))
    const rebuilt = join(dir, 'rebuilt', DEB) // same name, today's bytes
    await writeFile(rebuilt, 'pretend this is a rebuild with a newer compiler\n')
    const lines: string[] = [await readFile(join(dir, 'delegation.frame'), 'utf8')]
    for (const k of [buildd, other]) {
      const out = join(dir, `${k === buildd ? 'buildd' : 'other'}-drift.frame`)
      const r = await runRbq(['attest', '--key', k.path, '--package', PURL, '--artifact', rebuilt, '--upstream', join(dir, DEB), '--out', out])
      expect(r.code, r.stderr).toBe(0)
      lines.push(await readFile(out, 'utf8'))
    }
    const drifted = join(dir, 'drifted.jsonl')
    await writeFile(drifted, lines.join(''))
    const r = await runRbq(verdictArgs(fileSha, drifted))
    expect(r.code, r.stderr).toBe(3)
    expect(r.stdout).toBe("unreproducible: not reproducible with today's toolchain: 2 parties rebuilt other bytes; the archive published this file; not a sign of tampering\n")
  })

  it('a revocation (newer version) takes the build server out: insufficient', async () => {
    const revocation = join(dir, 'revocation.frame')
    const d = await runRbq(['delegate', '--key', org.path, '--to', buildd.publicKey, '--name', 'buildd-1', '--scope', 'pkg:deb/debian/*', '--expires', '2099-01-01', '--version', '2', '--revoke', '--out', revocation, '--json'])
    expect(d.code, d.stderr).toBe(0)
    expect(JSON.parse(d.stdout)).toMatchObject({ version: 2, revoked: true })
    const revoked = join(dir, 'revoked.jsonl')
    await writeFile(revoked, (await readFile(framesPath, 'utf8')) + (await readFile(revocation, 'utf8')))
    const r = await runRbq(verdictArgs(fileSha, revoked))
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/^insufficient: 1 of 2 parties/)
  })

  it('--at judges expiry at another date', async () => {
    const r = await runRbq([...verdictArgs(fileSha), '--at', '2100-01-01'])
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/^insufficient: /)
  })

  it('a bad line is an input error naming its line number (exit 2)', async () => {
    const bad = join(dir, 'bad.jsonl')
    const text = await readFile(framesPath, 'utf8')
    await writeFile(bad, text)
    await appendFile(bad, '\n' + text.split('\n')[0]!.replace('"v":1', '"v":2') + '\n')
    const r = await runRbq(verdictArgs(fileSha, bad))
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(new RegExp(`bad\\.jsonl:5: .*\\[(VERSION_UNSUPPORTED|NOT_CANONICAL|SIGNATURE_INVALID)\\]`))
    await writeFile(bad, 'not json at all\n')
    const garbage = await runRbq(verdictArgs(fileSha, bad))
    expect(garbage.code).toBe(2)
    expect(garbage.stderr).toMatch(/bad\.jsonl:1: .*\[JSON_MALFORMED\]/)
  })

  it('a policy error names the line (exit 2)', async () => {
    const badPolicy = join(dir, 'bad-policy.toml')
    await writeFile(badPolicy, (await readFile(policyPath, 'utf8')).replace('threshold = 2', 'threshold = 3'))
    const r = await runRbq(['verdict', '--policy', badPolicy, '--from', framesPath, '--sha256', fileSha, '--package', PURL, '--artifact', DEB])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/bad-policy\.toml:1: threshold: 3 parties needed but only 2 .*\[POLICY_INVALID\]/)
  })

  it('usage and input errors exit 2', async () => {
    const missing = await runRbq(verdictArgs(fileSha, join(dir, 'nope.jsonl')))
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/does not exist.*\[FILE_NOT_FOUND\]/)
    const badSha = await runRbq(verdictArgs('xyz'))
    expect(badSha.code).toBe(2)
    const out = join(dir, 'never.frame')
    const base = ['delegate', '--key', org.path, '--name', 'n', '--scope', '*', '--version', '1', '--out', out]
    const badKey = await runRbq([...base, '--to', 'ed25519:short', '--expires', '2099-01-01'])
    expect(badKey.code).toBe(2)
    const badScope = await runRbq([...base.map((a) => (a === '*' ? 'debian/*' : a)), '--to', buildd.publicKey, '--expires', '2099-01-01'])
    expect(badScope.code).toBe(2)
    const past = await runRbq([...base, '--to', buildd.publicKey, '--expires', '2001-01-01'])
    expect(past.code).toBe(2)
    expect(past.stderr).toMatch(/in the past/)
    const self = await runRbq([...base, '--to', org.publicKey, '--expires', '2099-01-01'])
    expect(self.code).toBe(2)
    expect(self.stderr).toMatch(/cannot delegate: .*itself/)
    const depth = await runRbq([...base, '--to', buildd.publicKey, '--expires', '2099-01-01', '--max-depth', '99'])
    expect(depth.code).toBe(2)
  })
})
