/**
 * `rbq delegate`: a delegation — the delegator's key trusts another key to build the packages in
 * a scope — signed through a StatementSigner (identity/statement-signer.ts). With --out it is
 * signed here over KEYFILE and written as a frame file (offline); without, it is published
 * through the local node (cli/commands/publish-delegation.ts: the node signs it when it holds
 * the key, data dir key by default; the next version).
 */
import { InvalidArgumentError, type Command } from 'commander'
import { writeFrameFile } from '../../common/files.js'
import { StatementSigner } from '../../identity/statement-signer.js'
import { checkPattern, parsePublicKey, RbqError, type DelegationContent, type DelegationFrame, type PublicKey } from '../../protocol/index.js'
import { printJson } from '../exit.js'
import { checkDelegation, delegatorSigner, describePublished, nextDelegationVersion, publishDelegation } from './publish-delegation.js'
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
      const publish = opts.out === undefined
      if (!publish && opts.key === undefined) throw new RbqError('USAGE', '--key <file> is required with --out')
      if (!publish && opts.version === undefined) throw new RbqError('USAGE', '--version <n> is required with --out (when publishing, the node knows the current version)')
      const signer = publish ? await delegatorSigner(opts) : await StatementSigner.fromKeyFile(opts.key!)
      const contentAt = (version: number): DelegationContent => ({
        delegate: { keyid: to.keyid, publicKey: to.text },
        name: opts.name,
        scope: opts.scope,
        maxDepth: opts.maxDepth,
        version,
        expires: opts.expires,
        revoked: opts.revoke === true
      })
      // Checked (receivers' rules, expiry) before the node is asked for the version: any valid version stands in.
      checkDelegation(signer, contentAt(opts.version ?? 1), 'delegate')
      const content = contentAt(opts.version ?? (await nextDelegationVersion(opts, signer.keyid, to.keyid)))
      const describe = (frame: DelegationFrame) => {
        const s = frame.statement
        return { id: frame.id, delegator: s.delegator, delegate: s.delegate.keyid, name: s.name, scope: s.scope, maxDepth: s.maxDepth, version: s.version, expires: s.expires, revoked: s.revoked }
      }
      if (publish) {
        const published = await publishDelegation(opts, signer, content)
        if (opts.json) printJson({ ...describe(published.frame), status: published.status })
        else process.stdout.write(describePublished(published, opts.api))
        return
      }
      const frame = signer.delegate(content)
      await writeFrameFile(opts.out!, frame.bytes)
      if (opts.json) printJson({ ...describe(frame), out: opts.out })
      else {
        const s = frame.statement
        const what = s.revoked ? 'revocation' : 'delegation'
        process.stdout.write(`wrote ${opts.out}: ${what} v${s.version} to "${s.name}" (${to.keyid}), scope ${s.scope.join(' ')}, expires ${s.expires}, frame ${frame.id}\n`)
      }
    })
}
