/**
 * `rbq export --in-toto --with-keys DIR` against a real node: every exported DSSE envelope
 * verifies with the exported PEM public key through an independent DSSE implementation
 * (@sigstore/core: its own PAE and key import, not rbq's code), and a tampered one does not.
 */
import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { crypto as sigstoreCrypto, dsse } from '@sigstore/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from '../../client/api-client.js'
import { runRbq, RBQ_BIN } from '../utils/cli.js'
import { startApiNode, type ApiNode } from '../utils/api-node.js'
import { makeTempDir } from '../utils/tmp.js'

const PURL = 'pkg:deb/debian/hello@2.10-3?arch=source'

interface Envelope {
  payloadType: string
  payload: string
  signatures: { keyid: string; sig: string }[]
}

/** DSSE verification as @sigstore/core does it: PAE over the decoded payload, the key from PEM. */
function sigstoreVerifies(env: Envelope, publicKeyPem: string): boolean {
  const pae = dsse.preAuthEncoding(env.payloadType, Buffer.from(env.payload, 'base64'))
  return sigstoreCrypto.verify(pae, sigstoreCrypto.createPublicKey(publicKeyPem), Buffer.from(env.signatures[0]!.sig, 'base64'))
}

describe.skipIf(!existsSync(RBQ_BIN))('rbq export --in-toto --with-keys', () => {
  let dir: string
  let data: string
  let cleanup: () => Promise<void>
  let node: ApiNode | undefined
  const keyids: string[] = []

  beforeAll(async () => {
    ;({ dir, cleanup } = await makeTempDir('rbq-in-toto-'))
    data = join(dir, 'data')
    await mkdir(data, { recursive: true, mode: 0o700 })
    node = await startApiNode(data)
    const artifact = join(dir, 'hello_2.10-3_amd64.deb')
    await writeFile(artifact, 'a .deb stand-in: the digest is what is attested\n')
    // Two rebuilders attest the same package; the node stores both.
    const frames: Buffer[] = []
    for (const name of ['a', 'b']) {
      const key = join(dir, `${name}.key`)
      keyids.push(JSON.parse((await runRbq(['key', 'generate', '--out', key, '--json'])).stdout).keyid)
      const out = join(dir, `${name}.frame`)
      const r = await runRbq(['attest', '--key', key, '--package', PURL, '--artifact', artifact, '--out', out])
      expect(r.code, r.stderr).toBe(0)
      frames.push(await readFile(out))
    }
    const results = await new ApiClient({ dataDir: data }).submitFrames(frames)
    expect(results.map((r) => r.status)).toEqual(['stored', 'stored'])
  })

  afterAll(async () => {
    await node?.stop()
    await cleanup?.()
  })

  it('writes DIR/<keyid>.pub for each signer; @sigstore/core verifies every envelope with it', async () => {
    const keys = join(dir, 'keys')
    const r = await runRbq(['export', '--in-toto', '--package', PURL, '--with-keys', keys, '--data', data])
    expect(r.code, r.stderr).toBe(0)
    const envelopes = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Envelope)
    expect(envelopes).toHaveLength(2)
    expect((await readdir(keys)).sort()).toEqual(keyids.map((k) => `${k}.pub`).sort())
    for (const env of envelopes) {
      const pemPath = join(keys, `${env.signatures[0]!.keyid}.pub`)
      expect((await stat(pemPath)).mode & 0o777).toBe(0o644)
      const pem = await readFile(pemPath, 'utf8')
      expect(pem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/)
      expect(sigstoreVerifies(env, pem)).toBe(true)
      expect(JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8'))._type).toBe('https://in-toto.io/Statement/v1')
      // A changed payload or a signature under the other key does not verify.
      const statement = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8'))
      statement.subject[0].digest.sha256 = '0'.repeat(64)
      expect(sigstoreVerifies({ ...env, payload: Buffer.from(JSON.stringify(statement)).toString('base64') }, pem)).toBe(false)
      const other = envelopes.find((e) => e !== env)!
      expect(sigstoreVerifies({ ...env, signatures: other.signatures }, pem)).toBe(false)
    }
    // The same PEM as `rbq key export --pem --public` gives for that key.
    const own = await runRbq(['key', 'export', '--pem', '--public', '--key', join(dir, 'a.key')])
    expect(await readFile(join(keys, `${keyids[0]}.pub`), 'utf8')).toBe(own.stdout)

    // Exporting again into the same DIR is fine (same keys); a file holding another key is refused.
    expect((await runRbq(['export', '--in-toto', '--package', PURL, '--with-keys', keys, '--data', data])).code).toBe(0)
    await writeFile(join(keys, `${keyids[1]}.pub`), own.stdout)
    const clash = await runRbq(['export', '--in-toto', '--package', PURL, '--with-keys', keys, '--data', data])
    expect(clash.code).toBe(2)
    expect(clash.stderr).toContain(`does not hold the public key ${keyids[1]}`)
    const noInToto = await runRbq(['export', '--with-keys', keys, '--data', data])
    expect(noInToto.code).toBe(2)
    expect(noInToto.stderr).toContain('--with-keys goes with --in-toto')
  })
})
