/**
 * `rbq key generate|show|export|import`: offline key management.
 *
 * export/import speak PEM, the form other tools read (cosign, in-toto-golang, securesystemslib,
 * OpenSSL): PKCS#8 `PRIVATE KEY` and SPKI `PUBLIC KEY` for Ed25519 (RFC 8410). A private key is
 * only ever written to a new file of mode 0600, never to the terminal.
 */
import { stat } from 'node:fs/promises'
import type { Command } from 'commander'
import { createKey, loadKey, saveKey, writeNewFile } from '../../identity/signing-key.js'
import { dataDirLayout, defaultDataDir } from '../../common/data-dir.js'
import { decodeKeyPem, publicKeyToPem, RbqError, signingKeyToPem, type PublicKey } from '../../protocol/index.js'
import { printJson } from '../exit.js'
import { dataDirFileHelp } from '../options.js'

function describe(key: PublicKey, path: string | undefined, json: boolean): void {
  const info = { keyid: key.keyid, publicKey: key.text, ...(path === undefined ? {} : { file: path }) }
  if (json) printJson(info)
  else process.stdout.write(`keyid      ${info.keyid}\npublicKey  ${info.publicKey}\n${path === undefined ? '' : `file       ${path}\n`}`)
}

/** PEM files are a few hundred bytes; a certificate chain is no key. */
const MAX_PEM_BYTES = 16 * 1024

export function registerKey(program: Command): void {
  const key = program.command('key').description('create, show, export and import Ed25519 signing keys')
  const defaultPath = () => dataDirLayout(defaultDataDir()).signingKey

  key
    .command('generate')
    .description('create a new signing key file (mode 0600); never overwrites an existing file')
    .option('--out <file>', dataDirFileHelp('where to write the key', 'signing.key'))
    .option('--json', 'print the result as JSON')
    .action(async (opts: { out?: string; json?: boolean }) => {
      const path = opts.out ?? defaultPath()
      describe((await createKey(path)).publicKey, path, opts.json === true)
    })

  key
    .command('show')
    .description('print the key id and public key of a key file')
    .option('--key <file>', dataDirFileHelp('key file', 'signing.key'))
    .option('--json', 'print the result as JSON')
    .action(async (opts: { key?: string; json?: boolean }) => {
      const path = opts.key ?? defaultPath()
      describe((await loadKey(path)).publicKey, path, opts.json === true)
    })

  key
    .command('export')
    .description('write a key as PEM for other tools: the SPKI public key (--public) to stdout or --out, or the PKCS#8 private key to a new 0600 file (--out)')
    .option('--pem', 'PEM output (PKCS#8 private / SPKI public key); the one export format, required')
    .option('--public', 'export the public key only')
    .option('--key <file>', dataDirFileHelp('key file', 'signing.key'))
    .option('--out <file>', 'write to this new file (never overwritten; mode 0600 for a private key, 0644 for a public key)')
    .action(async (opts: { pem?: boolean; public?: boolean; key?: string; out?: string }) => {
      if (opts.pem !== true) throw new RbqError('USAGE', 'give --pem (PKCS#8 / SPKI PEM is the one export format)')
      const signing = await loadKey(opts.key ?? defaultPath())
      if (opts.public === true) {
        const pem = publicKeyToPem(signing.publicKey)
        if (opts.out === undefined) process.stdout.write(pem)
        else await writeNewFile(opts.out, pem, 'public key file', 0o644)
        return
      }
      if (opts.out === undefined) {
        throw new RbqError('USAGE', 'a private key is only written to a new file of mode 0600: give --out FILE (or --public for the public key)')
      }
      await writeNewFile(opts.out, signingKeyToPem(signing), 'private key file', 0o600)
    })

  key
    .command('import')
    .description('read a PEM Ed25519 key: a PKCS#8 private key becomes a new rbq key file (mode 0600); an SPKI public key is printed in rbq\'s ed25519: form (for rbq trust add)')
    .argument('<file>', 'PEM file (-----BEGIN PRIVATE KEY----- or -----BEGIN PUBLIC KEY-----)')
    .option('--out <file>', dataDirFileHelp('where to write the imported private key (never overwritten)', 'signing.key'))
    .option('--json', 'print the result as JSON')
    .action(async (file: string, opts: { out?: string; json?: boolean }) => {
      const { readFileBounded } = await import('../../common/files.js')
      const text = Buffer.from(await readFileBounded(file, MAX_PEM_BYTES, 'PEM file')).toString('utf8')
      const pem = decodeKeyPem(text, file)
      if (pem.kind === 'public') {
        if (opts.out !== undefined) throw new RbqError('USAGE', `${file} holds a public key: there is no signing key to write to ${opts.out}`)
        return describe(pem.key, undefined, opts.json === true)
      }
      const path = opts.out ?? defaultPath()
      await saveKey(path, pem.key)
      // The copy is 0600; the source is as secret as its own mode says.
      if (((await stat(file)).mode & 0o077) !== 0) process.stderr.write(`rbq: note: ${file} is readable by group or others; delete it or chmod 600 it\n`)
      describe(pem.key.publicKey, path, opts.json === true)
    })
}
