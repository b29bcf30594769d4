/**
 * `rbq key export --pem` / `rbq key import` (spawned binary): PEM that OpenSSL reads, private
 * keys only in new 0600 files, imported keys under the key rule.
 */
import { execFileSync } from 'node:child_process'
import { chmod, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadKey } from '../../../identity/signing-key.js'
import { publicKeyToPem } from '../../../protocol/index.js'
import { runRbq } from '../../utils/cli.js'
import { makeTempDir } from '../../utils/tmp.js'

let dir: string
let cleanup: () => Promise<void>
beforeAll(async () => ({ dir, cleanup } = await makeTempDir('rbq-key-pem-')))
afterAll(() => cleanup())

const mode = async (path: string) => (await stat(path)).mode & 0o777

describe('rbq key export --pem / key import', () => {
  it('exports PEM that OpenSSL reads, and imports it back to the same key', async () => {
    const keyPath = join(dir, 'k.key')
    const { keyid, publicKey } = JSON.parse((await runRbq(['key', 'generate', '--out', keyPath, '--json'])).stdout) as { keyid: string; publicKey: string }
    const gen = { keyid, publicKey }

    const priv = join(dir, 'k.pem')
    const exp = await runRbq(['key', 'export', '--pem', '--key', keyPath, '--out', priv])
    expect(exp.code, exp.stderr).toBe(0)
    expect(exp.stdout).toBe('') // nothing secret on the terminal
    expect(await mode(priv)).toBe(0o600)
    const pub = await runRbq(['key', 'export', '--pem', '--public', '--key', keyPath])
    expect(pub.code, pub.stderr).toBe(0)
    // OpenSSL derives the same public key from the exported private key.
    expect(execFileSync('openssl', ['pkey', '-in', priv, '-pubout'], { encoding: 'utf8' })).toBe(pub.stdout)

    const imported = join(dir, 'imported.key')
    const imp = await runRbq(['key', 'import', priv, '--out', imported, '--json'])
    expect(imp.code, imp.stderr).toBe(0)
    expect(JSON.parse(imp.stdout)).toEqual({ ...gen, file: imported })
    expect(await mode(imported)).toBe(0o600)
    expect(imp.stderr).toBe('')

    await writeFile(join(dir, 'pub.pem'), pub.stdout)
    const impPub = await runRbq(['key', 'import', join(dir, 'pub.pem'), '--json'])
    expect(impPub.code, impPub.stderr).toBe(0)
    expect(JSON.parse(impPub.stdout)).toEqual(gen) // the ed25519: form, for rbq trust add
  })

  it('imports a key made by openssl genpkey; warns about a readable source', async () => {
    const pem = join(dir, 'openssl.pem')
    execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', pem])
    await chmod(pem, 0o644)
    const out = join(dir, 'from-openssl.key')
    const r = await runRbq(['key', 'import', pem, '--out', out])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toContain('is readable by group or others')
    const spki = execFileSync('openssl', ['pkey', '-in', pem, '-pubout'], { encoding: 'utf8' })
    expect(publicKeyToPem((await loadKey(out)).publicKey)).toBe(spki)
  })

  it('refuses what it must: no --pem, private key to the terminal, overwriting, bad keys', async () => {
    const keyPath = join(dir, 'r.key')
    await runRbq(['key', 'generate', '--out', keyPath])
    const noPem = await runRbq(['key', 'export', '--key', keyPath])
    expect(noPem.code).toBe(2)
    expect(noPem.stderr).toContain('give --pem')
    const toTty = await runRbq(['key', 'export', '--pem', '--key', keyPath])
    expect(toTty.code).toBe(2)
    expect(toTty.stdout).toBe('')
    expect(toTty.stderr).toContain('give --out FILE')
    const again = await runRbq(['key', 'export', '--pem', '--key', keyPath, '--out', keyPath])
    expect(again.code).toBe(2)
    expect(again.stderr).toContain('[FILE_EXISTS]')

    const small = join(dir, 'small.pem')
    const identity = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from([1]), Buffer.alloc(31)])
    await writeFile(small, `-----BEGIN PUBLIC KEY-----\n${identity.toString('base64')}\n-----END PUBLIC KEY-----\n`)
    const s = await runRbq(['key', 'import', small])
    expect(s.code).toBe(2)
    expect(s.stderr).toMatch(/small\.pem: public key: public key has small order \[KEY_SMALL_ORDER\]/)

    const rsa = join(dir, 'rsa.pem')
    execFileSync('openssl', ['genpkey', '-algorithm', 'rsa', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', rsa], { stdio: 'ignore' })
    const r = await runRbq(['key', 'import', rsa, '--out', join(dir, 'rsa.key')])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('an rsa key; rbq signs and verifies with Ed25519 only [KEY_INVALID]')
    await expect(readFile(join(dir, 'rsa.key'))).rejects.toThrow(/ENOENT/)
  })
})
