/**
 * `rbq delegate`: sign a delegation offline — the key in KEYFILE trusts another key to build the
 * packages in a scope — and write it as a frame file (--out), or, without --out, publish it
 * through the local node (cli/commands/publish-delegation.ts: data dir key, next version).
 */
import { InvalidArgumentError, type Command } from 'commander'
import { writeFrameFile } from '../../common/files.js'
import { loadKey } from '../../identity/signing-key.js'
import { buildDelegationStatement, checkPattern, parsePublicKey, RbqError, signDelegation, type PublicKey } from '../../protocol/index.js'
import { printJson } from '../exit.js'
import { dataDirFileHelp, dataDirHelp, parseDateOption, parseNonNegativeInt, parsePositiveInt } from '../options.js'

interface DelegateOptions {
  key?: string
  to?: PublicKey
  name: string
  scope: string[]
  expires: Date
  version?: number
  maxDepth: number
  revoke?: boolean
  out?: string
  api?: string
  data?: string
  json?: boolean
}

function parsePublicKeyOption(value: string): PublicKey {
  try {
    return parsePublicKey(value, '--to')
  } catch (e) {
    throw new InvalidArgumentError(e instanceof RbqError ? e.message : String(e))
  }
}

function collectPattern(value: string, previous: string[] | undefined): string[] {
  try {
    return [...(previous ?? []), checkPattern(value, '--scope')]
  } catch (e) {
    throw new InvalidArgumentError(e instanceof RbqError ? e.message : String(e))
  }
}

export function registerDelegate(program: Command): void {
  program
    .command('delegate')
    .description('sign a delegation (your key trusts another key to build packages in a scope) and publish it through the local node, or write it as a frame file with --out')
    .argument('[publicKey]', 'the delegate\'s public key, ed25519:… (or --to)', parsePublicKeyOption)
    .option('--key <file>', dataDirFileHelp('the delegator\'s signing key file (when publishing)', 'signing.key'))
    .option('--to <publicKey>', 'the delegate\'s public key, ed25519:…', parsePublicKeyOption)
    .requiredOption('--name <name>', 'a name for the delegate, e.g. debian-buildd-3')
    .requiredOption('--scope <pattern...>', 'purl patterns the delegate may build, e.g. pkg:deb/debian/*', collectPattern)
    .requiredOption('--expires <date>', 'expiry, e.g. 2027-11-22 or 2027-11-22T00:00:00Z', parseDateOption)
    .option('--version <n>', 'version of this delegation: higher than any earlier one to the same delegate (default when publishing: one above the newest the node knows)', parsePositiveInt)
    .option('--max-depth <d>', 'how many levels the delegate may re-delegate (0: none)', parseNonNegativeInt, 0)
    .option('--revoke', 'revoke the delegation (use a --version above the one being revoked; see also rbq revoke)')
    .option('--out <file>', 'write the signed frame to this file (offline) instead of publishing it')
    .option('--api <url>', 'when publishing: the node\'s API URL (default: $RBQ_API, <data>/api.url, http://127.0.0.1:4778)')
    .option('--data <dir>', dataDirHelp('when publishing: the node data dir (signing key, API address and token)'))
    .option('--json', 'print the result as JSON')
    .action(async (positional: PublicKey | undefined, opts: DelegateOptions) => {
      // Offline (--out) or published through the node (cli/commands/publish-delegation.ts).
      const to = positional ?? opts.to
      if (to === undefined) throw new RbqError('USAGE', 'give the delegate\'s public key (ed25519:…) as argument or with --to')
      if (positional !== undefined && opts.to !== undefined && positional.keyid !== opts.to.keyid) throw new RbqError('USAGE', 'the argument and --to name different keys')
      const publish = opts.out === undefined ? await import('./publish-delegation.js') : undefined
      if (publish === undefined && opts.key === undefined) throw new RbqError('USAGE', '--key <file> is required with --out')
      if (publish === undefined && opts.version === undefined) throw new RbqError('USAGE', '--version <n> is required with --out (when publishing, the node knows the current version)')
      if (!opts.revoke && opts.expires.getTime() <= Date.now()) {
        throw new RbqError('USAGE', `--expires ${opts.expires.toISOString()} is in the past: every verifier would ignore this delegation`)
      }
      const key = publish === undefined ? await loadKey(opts.key!) : await publish.delegatorKey(opts)
      const version = opts.version ?? (await publish!.nextDelegationVersion(opts, key.publicKey.keyid, to.keyid))
      const statement = buildDelegationStatement({
        delegator: key.publicKey.keyid,
        delegate: { keyid: to.keyid, publicKey: to.text },
        name: opts.name,
        scope: opts.scope,
        maxDepth: opts.maxDepth,
        version,
        expires: opts.expires,
        revoked: opts.revoke === true
      })
      let frame
      try {
        frame = signDelegation(key, statement) // decoded with the receivers' rules before it is written
      } catch (e) {
        if (e instanceof RbqError) throw new RbqError('USAGE', `cannot delegate: ${e.message}`, { cause: e })
        throw e
      }
      const result = {
        id: frame.id,
        delegator: key.publicKey.keyid,
        delegate: to.keyid,
        name: statement.name,
        scope: statement.scope,
        maxDepth: statement.maxDepth,
        version: statement.version,
        expires: statement.expires,
        revoked: statement.revoked
      }
      if (publish !== undefined) {
        const submitted = await publish.publishFrame(opts, frame)
        if (opts.json) printJson({ ...result, status: submitted.status })
        else process.stdout.write(publish.describePublished(frame, submitted, opts.api))
        return
      }
      await writeFrameFile(opts.out!, frame.bytes)
      if (opts.json) printJson({ ...result, out: opts.out })
      else {
        const what = statement.revoked ? 'revocation' : 'delegation'
        process.stdout.write(`wrote ${opts.out}: ${what} v${statement.version} to "${statement.name}" (${to.keyid}), scope ${statement.scope.join(' ')}, expires ${statement.expires}, frame ${frame.id}\n`)
      }
    })
}
