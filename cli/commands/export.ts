/**
 * `rbq export [--in-toto] [--package PURL | --sha256 H | --builder KEYID]`: stored attestations
 * as JSON lines, page by page from the node.
 *
 *   default    one frame per line in its canonical bytes: `rbq verdict --from FILE` and any
 *              node (POST /v1/attestations) read them back unchanged
 *   --in-toto  one DSSE envelope per line ({ payloadType, payload, signatures: [{ keyid, sig }] })
 *              around an in-toto Statement v1, for in-toto / DSSE tooling. `keyid` is the hex
 *              SHA-256 of the signer's raw Ed25519 public key; the key itself is in the frame
 *              (export without --in-toto to keep it, or add --with-keys).
 *   --with-keys DIR  (with --in-toto) also write each signer's public key as SPKI PEM to
 *              DIR/<keyid>.pub, the file name being the envelope's `signatures[0].keyid`, so a
 *              DSSE verifier (cosign, in-toto-golang, securesystemslib, OpenSSL) finds the key of
 *              every line; stdout stays one envelope per line. An existing DIR/<keyid>.pub must
 *              hold the same key (it is never overwritten).
 *
 * Without a filter, the node's own attestations are exported (its signing key as --builder).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Command } from 'commander'
import { RbqError } from '../../protocol/errors.js'
import type { PublicKey } from '../../protocol/keys.js'
import { parsePurlOption, parseSha256Option } from '../options.js'
import { withNode, type NodeOptions } from '../../client/node-session.js'
import { withNodeOptions } from '../options.js'

interface ExportOptions extends NodeOptions {
  inToto?: boolean
  package?: string
  sha256?: string
  builder?: string
  withKeys?: string
}

export function registerExport(program: Command): void {
  withNodeOptions(
    program
      .command('export')
      .description('print stored attestations as JSON lines (frames, or DSSE envelopes with --in-toto)')
      .option('--in-toto', 'print DSSE envelopes of in-toto Statements instead of frames')
      .option('--package <purl>', 'attestations of this package (exact purl)', parsePurlOption)
      .option('--sha256 <digest>', 'attestations with this subject digest', parseSha256Option)
      .option('--builder <keyid>', 'attestations signed by this key (default: the node\'s own key)', parseSha256Option)
      .option('--with-keys <dir>', 'with --in-toto: also write each signer\'s public key as PEM to DIR/<keyid>.pub')
  ).action(async (opts: ExportOptions) => {
    const given = [opts.package, opts.sha256, opts.builder].filter((v) => v !== undefined)
    if (given.length > 1) throw new RbqError('USAGE', 'give at most one of --package, --sha256, --builder')
    if (opts.withKeys !== undefined && opts.inToto !== true) throw new RbqError('USAGE', '--with-keys goes with --in-toto (frames carry their public key already)')
    const { canonicalJson } = await import('../../protocol/encoding.js')
    const keysWritten = new Set<string>()
    const writeKey = async (publicKeyText: unknown) => {
      if (opts.withKeys === undefined) return
      const { parsePublicKey } = await import('../../protocol/keys.js')
      const pk = parsePublicKey(publicKeyText)
      if (keysWritten.has(pk.keyid)) return
      await writePublicKeyPem(join(opts.withKeys, `${pk.keyid}.pub`), pk)
      keysWritten.add(pk.keyid)
    }
    await withNode(opts, async (client) => {
      let query: { package?: string; sha256?: string; builder?: string }
      if (opts.package !== undefined) query = { package: opts.package }
      else if (opts.sha256 !== undefined) query = { sha256: opts.sha256 }
      else {
        const builder = opts.builder ?? (await client.status()).keyid
        if (builder === null) throw new RbqError('USAGE', 'the node has no signing key: give --package, --sha256 or --builder')
        query = { builder }
      }
      let lines: string[] = []
      const flush = async () => {
        if (lines.length === 0) return
        const chunk = lines.join('')
        lines = []
        // Respect back-pressure so exporting a large store into a slow pipe stays bounded in memory.
        if (!process.stdout.write(chunk)) await new Promise((resolve) => process.stdout.once('drain', resolve))
      }
      for await (const item of client.allAttestations({ ...query, limit: 1000 })) {
        if (item.kind !== 'attestation') continue
        const frame = item.frame as { envelope: unknown; publicKey: unknown }
        await writeKey(frame.publicKey)
        lines.push((opts.inToto === true ? JSON.stringify(frame.envelope) : canonicalJson(frame)) + '\n')
        if (lines.length >= 1000) await flush()
      }
      await flush()
    })
  })
}

/** DIR/<keyid>.pub: written once (0644); an existing file must already hold this key. */
async function writePublicKeyPem(path: string, pk: PublicKey): Promise<void> {
  const [{ publicKeyToPem, decodeKeyPem }, { writeNewFile }] = await Promise.all([import('../../protocol/keys.js'), import('../../identity/signing-key.js')])
  try {
    await writeNewFile(path, publicKeyToPem(pk), 'public key file', 0o644)
  } catch (e) {
    if (!(e instanceof RbqError && e.code === 'FILE_EXISTS')) throw e
    let held: string | undefined
    try {
      const pem = decodeKeyPem(await readFile(path, 'utf8'), path)
      held = pem.kind === 'public' ? pem.key.keyid : undefined
    } catch {
      held = undefined
    }
    if (held !== pk.keyid) throw new RbqError('FILE_EXISTS', `${path} exists and does not hold the public key ${pk.keyid}; refusing to overwrite it`)
  }
}
