/**
 * The real `rbq` binary (spawned) for the offline verbs: key generate/show, attest, inspect,
 * including bad input. `npm test` builds dist/ before vitest runs.
 */
import { createHash } from 'node:crypto'
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as ed from '@noble/ed25519'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runRbq } from '../../utils/cli.js'
import { makeTempDir } from '../../utils/tmp.js'

let dir: string
let cleanup: () => Promise<void>
beforeAll(async () => ({ dir, cleanup } = await makeTempDir('rbq-cli-')))
afterAll(() => cleanup())

const PURL = 'pkg:deb/debian/hello@2.10-3?arch=source'

describe('rbq key / attest / inspect (spawned binary)', () => {
  it('round-trips a real file sha256 through generate → attest → inspect', async () => {
    const keyPath = join(dir, 'rt.key')
    const gen = await runRbq(['key', 'generate', '--out', keyPath, '--json'])
    expect(gen.code, gen.stderr).toBe(0)
    const { keyid, publicKey } = JSON.parse(gen.stdout) as { keyid: string; publicKey: string }
    expect((await stat(keyPath)).mode & 0o777).toBe(0o600)

    const show = await runRbq(['key', 'show', '--key', keyPath])
    expect(show.stdout).toContain(keyid)

    const artifact = join(dir, 'hello_2.10-3_amd64.deb')
    await writeFile(artifact, 'pretend this is a .deb\n')
    const sha = createHash('sha256').update(await readFile(artifact)).digest('hex')
    const out = join(dir, 'rt.frame')
    const att = await runRbq(['attest', '--key', keyPath, '--package', PURL, '--artifact', artifact, '--upstream', artifact, '--out', out])
    expect(att.code, att.stderr).toBe(0)
    expect(att.stdout).toContain('reproduced, seq 1')

    const ins = await runRbq(['inspect', out, '--json'])
    expect(ins.code, ins.stderr).toBe(0)
    const decoded = JSON.parse(ins.stdout)
    expect(decoded.valid).toBe(true)
    expect(decoded.signer).toEqual({ keyid, publicKey })
    expect(decoded.statement.subject).toEqual([{ name: 'hello_2.10-3_amd64.deb', digest: { sha256: sha } }])
    expect(decoded.statement.predicate.builder.seq).toBe(1)

    // A second attestation continues the per-key counter.
    const att2 = await runRbq(['attest', '--key', keyPath, '--package', PURL, '--artifact', artifact, '--out', join(dir, 'rt2.frame'), '--json'])
    expect(JSON.parse(att2.stdout).seq).toBe(2)
    // Reusing a seq is refused: it would be an equivocation.
    const reuse = await runRbq(['attest', '--key', keyPath, '--package', PURL, '--artifact', artifact, '--seq', '2', '--out', join(dir, 'rt3.frame')])
    expect(reuse.code).toBe(2)
    expect(reuse.stderr).toContain('equivocation')
  })

  it('writes an envelope any DSSE implementation can verify (independent PAE + @noble/ed25519)', async () => {
    const keyPath = join(dir, 'dsse.key')
    await runRbq(['key', 'generate', '--out', keyPath])
    const artifact = join(dir, 'a.bin')
    await writeFile(artifact, 'x')
    const out = join(dir, 'dsse.frame')
    expect((await runRbq(['attest', '--key', keyPath, '--package', PURL, '--artifact', artifact, '--out', out])).code).toBe(0)
    const env = await runRbq(['inspect', out, '--envelope'])
    const envelope = JSON.parse(env.stdout) as { payloadType: string; payload: string; signatures: { keyid: string; sig: string }[] }
    const frame = JSON.parse(await readFile(out, 'utf8')) as { publicKey: string }
    // DSSE spec: PAE = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, standard base64.
    const body = Buffer.from(envelope.payload, 'base64')
    const type = Buffer.from(envelope.payloadType, 'utf8')
    const paeBytes = Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${body.length} `), body])
    const pub = Buffer.from(frame.publicKey.slice('ed25519:'.length), 'base64url')
    const sig = Buffer.from(envelope.signatures[0]!.sig, 'base64')
    expect(await ed.verifyAsync(sig, paeBytes, pub)).toBe(true)
    expect(envelope.signatures[0]!.keyid).toBe(createHash('sha256').update(pub).digest('hex'))
    expect(JSON.parse(body.toString('utf8'))._type).toBe('https://in-toto.io/Statement/v1')
  })

  it('inspect: missing file → 2; corrupt or tampered frames → 1 with the reason', async () => {
    const missing = await runRbq(['inspect', join(dir, 'nope.frame')])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('FILE_NOT_FOUND')

    const corrupt = join(dir, 'corrupt.frame')
    await writeFile(corrupt, '{"v":1,"garbage')
    const c = await runRbq(['inspect', corrupt])
    expect(c.code).toBe(1)
    expect(c.stderr).toMatch(/invalid: .*JSON_MALFORMED/)

    // A valid frame whose public key is swapped for another key's: the signature no longer verifies.
    const keyA = join(dir, 'a.key')
    const keyB = join(dir, 'b.key')
    await runRbq(['key', 'generate', '--out', keyA])
    const b = JSON.parse((await runRbq(['key', 'generate', '--out', keyB, '--json'])).stdout) as { keyid: string; publicKey: string }
    const artifact = join(dir, 'w.bin')
    await writeFile(artifact, 'w')
    const good = join(dir, 'good.frame')
    await runRbq(['attest', '--key', keyA, '--package', PURL, '--artifact', artifact, '--out', good])
    const f = JSON.parse(await readFile(good, 'utf8'))
    f.publicKey = b.publicKey
    f.envelope.signatures[0].keyid = b.keyid
    const wrongKey = join(dir, 'wrong-key.frame')
    const { canonicalBytes } = await import('../../../protocol/index.js')
    await writeFile(wrongKey, canonicalBytes(f))
    const w = await runRbq(['inspect', wrongKey])
    expect(w.code).toBe(1)
    expect(w.stderr).toContain('SIGNATURE_INVALID')

    const big = join(dir, 'big.frame')
    await writeFile(big, Buffer.alloc(70 * 1024, 0x20))
    const bg = await runRbq(['inspect', big, '--json'])
    expect(bg.code).toBe(1)
    expect(JSON.parse(bg.stdout).error.code).toBe('INPUT_TOO_LARGE')
  })

  it('attest: group-readable, unreadable and garbage key files are refused with exit 2', async () => {
    const artifact = join(dir, 'k.bin')
    await writeFile(artifact, 'k')
    const keyPath = join(dir, 'perm.key')
    await runRbq(['key', 'generate', '--out', keyPath])
    await chmod(keyPath, 0o644)
    const perm = await runRbq(['attest', '--key', keyPath, '--package', PURL, '--artifact', artifact, '--out', join(dir, 'p.frame')])
    expect(perm.code).toBe(2)
    expect(perm.stderr).toContain('FILE_PERMISSIONS')

    const dirAsKey = join(dir, 'a-directory.key')
    await mkdir(dirAsKey)
    const unreadable = await runRbq(['attest', '--key', dirAsKey, '--package', PURL, '--artifact', artifact, '--out', join(dir, 'u.frame')])
    expect(unreadable.code).toBe(2)
    expect(unreadable.stderr).toContain('FILE_UNREADABLE')

    const garbage = join(dir, 'garbage.key')
    await writeFile(garbage, 'not a key', { mode: 0o600 })
    const g = await runRbq(['attest', '--key', garbage, '--package', PURL, '--artifact', artifact, '--out', join(dir, 'g.frame')])
    expect(g.code).toBe(2)
    expect(g.stderr).toContain(`rbq: ${garbage} is not an rbq key file (not JSON) [KEY_INVALID]`)

    const missingArtifact = await runRbq(['attest', '--key', join(dir, 'rt.key'), '--package', PURL, '--artifact', join(dir, 'missing.deb'), '--out', join(dir, 'm.frame')])
    expect(missingArtifact.code).toBe(2)
    expect(missingArtifact.stderr).toContain('FILE_NOT_FOUND')
  })

  it('key show: a readable file that is not a key is reported as not a key, with no chmod advice (issue 15)', async () => {
    const notKey = join(dir, 'hostname')
    await writeFile(notKey, 'my-machine\n', { mode: 0o644 })
    const r = await runRbq(['key', 'show', '--key', notKey])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`rbq: ${notKey} is not an rbq key file (not JSON) [KEY_INVALID]\n`)
    const json = join(dir, 'other.json')
    await writeFile(json, '{"type":"something else"}', { mode: 0o644 })
    const j = await runRbq(['key', 'show', '--key', json])
    expect(j.stderr).toContain('[KEY_INVALID]')
    expect(j.stderr).not.toContain('chmod')
  })

  it('usage errors exit 2 and name the problem', async () => {
    const noKey = await runRbq(['attest', '--package', PURL])
    expect(noKey.code).toBe(2)
    expect(noKey.stderr).toContain("required option '--key <file>'")
    const badPurl = await runRbq(['attest', '--key', 'k', '--package', 'not-a-purl', '--artifact', 'x', '--out', 'y'])
    expect(badPurl.code).toBe(2)
    expect(badPurl.stderr).toContain('--package')
    const badSha = await runRbq(['attest', '--key', 'k', '--package', PURL, '--artifact', 'x', '--out', 'y', '--inputs-digest', 'zz'])
    expect(badSha.code).toBe(2)
    expect(badSha.stderr).toContain('SHA-256')
    expect((await runRbq(['no-such-verb'])).code).toBe(2)
    expect((await runRbq(['--help'])).code).toBe(0)
  })
})
