/** `rbq key generate|show`: offline key management. */
import type { Command } from 'commander'
import { createKey, loadKey } from '../../node/identity/key-file.js'
import { dataDirLayout, defaultDataDir } from '../../node/paths.js'
import type { SigningKey } from '../../protocol/index.js'
import { printJson } from '../exit.js'
import { dataDirFileHelp } from '../options.js'

function describe(key: SigningKey, path: string, json: boolean): void {
  const info = { keyid: key.publicKey.keyid, publicKey: key.publicKey.text, file: path }
  if (json) printJson(info)
  else process.stdout.write(`keyid      ${info.keyid}\npublicKey  ${info.publicKey}\nfile       ${info.file}\n`)
}

export function registerKey(program: Command): void {
  const key = program.command('key').description('create and show Ed25519 signing keys')
  const defaultPath = () => dataDirLayout(defaultDataDir()).signingKey

  key
    .command('generate')
    .description('create a new signing key file (mode 0600); never overwrites an existing file')
    .option('--out <file>', dataDirFileHelp('where to write the key', 'signing.key'))
    .option('--json', 'print the result as JSON')
    .action(async (opts: { out?: string; json?: boolean }) => {
      const path = opts.out ?? defaultPath()
      describe(await createKey(path), path, opts.json === true)
    })

  key
    .command('show')
    .description('print the key id and public key of a key file')
    .option('--key <file>', dataDirFileHelp('key file', 'signing.key'))
    .option('--json', 'print the result as JSON')
    .action(async (opts: { key?: string; json?: boolean }) => {
      const path = opts.key ?? defaultPath()
      describe(await loadKey(path), path, opts.json === true)
    })
}
