/**
 * Publishing delegations through the local node: the online half of `rbq delegate` (the verb in
 * delegate.ts publishes when no --out is given) and `rbq revoke KEY`. The delegation is signed
 * here, with the data dir's signing key (or --key FILE), and handed to the node's API, which
 * verifies, stores and gossips it. Versions: one above the newest delegation from this key to
 * the delegate that the node knows (TUF-like: the newest version wins everywhere).
 */
import { resolve } from 'node:path'
import type { Command } from 'commander'
import type { SubmitResult } from '../../protocol/api.js'
import type { DelegationStatement, DelegationFrame, KeyId, SigningKey } from '../../protocol/index.js'
import { RbqError } from '../../protocol/errors.js'
import { printJson } from '../exit.js'
import { dataDirFileHelp, parsePositiveInt } from '../options.js'
import { withNode, type NodeOptions } from '../../client/node-session.js'
import { withNodeOptions } from '../options.js'

export interface PublishOptions extends NodeOptions {
  /** Signing key file (default: `<data>/signing.key`). */
  key?: string
}

/** The delegator's signing key: --key FILE, else the node data dir's signing.key. */
export async function delegatorKey(opts: PublishOptions): Promise<SigningKey> {
  const { loadKey } = await import('../../identity/signing-key.js')
  if (opts.key !== undefined) return loadKey(opts.key)
  const { dataDirLayout, defaultDataDir } = await import('../../common/data-dir.js')
  return loadKey(dataDirLayout(resolve(opts.data ?? defaultDataDir())).signingKey)
}

/** Delegations from `delegator` to `delegate` the node has stored, newest version first. */
export async function knownDelegations(opts: NodeOptions, delegator: KeyId, delegate: KeyId): Promise<DelegationStatement[]> {
  const { canonicalBytes, decodeFrame } = await import('../../protocol/index.js')
  return withNode(opts, async (client) => {
    const out: DelegationStatement[] = []
    for await (const item of client.allAttestations({ delegate, limit: 1000 })) {
      const f = decodeFrame(canonicalBytes(item.frame))
      if (f.kind === 'delegation' && f.statement.delegator === delegator) out.push(f.statement)
    }
    return out.sort((a, b) => b.version - a.version)
  })
}

/** One above the newest version the node knows (1 for a first delegation). */
export async function nextDelegationVersion(opts: NodeOptions, delegator: KeyId, delegate: KeyId): Promise<number> {
  const [newest] = await knownDelegations(opts, delegator, delegate)
  return (newest?.version ?? 0) + 1
}

/** Hands a signed frame to the node (stored and gossiped); a refusal is the node's typed error. */
export function publishFrame(opts: NodeOptions, frame: DelegationFrame): Promise<SubmitResult> {
  return withNode(opts, (client) => client.submitFrame(frame.bytes))
}

export function describePublished(frame: DelegationFrame, result: SubmitResult, url: string | undefined): string {
  const s = frame.statement
  const what = s.revoked ? 'revocation' : 'delegation'
  const where = result.status === 'duplicate' ? 'already known to the node' : `published through ${url ?? 'the local node'}`
  return `${what} v${s.version} to "${s.name}" (${s.delegate.keyid}), scope ${s.scope.join(' ')}, expires ${s.expires}: ${where} (frame ${frame.id})\n`
}

export function registerRevoke(program: Command): void {
  withNodeOptions(
    program
      .command('revoke')
      .description('revoke a delegation you published: sign the next version with revoked = true and publish it through the node')
      .argument('<delegate>', 'the delegate\'s public key (ed25519:…) or key id')
      .option('--key <file>', dataDirFileHelp('your signing key file', 'signing.key'))
      .option('--version <n>', 'version of the revocation (default: one above the newest the node knows)', parsePositiveInt)
  )
    .option('--json', 'print the result as JSON')
    .action(async (delegateText: string, opts: PublishOptions & { version?: number; json?: boolean }) => {
      const { buildDelegationStatement, parsePublicKey, signDelegation } = await import('../../protocol/index.js')
      const delegateId = /^[0-9a-fA-F]{64}$/.test(delegateText) ? delegateText.toLowerCase() : parsePublicKey(delegateText, 'delegate').keyid
      const key = await delegatorKey(opts)
      const [current] = await knownDelegations(opts, key.publicKey.keyid, delegateId)
      if (current === undefined) {
        throw new RbqError('NOT_FOUND', `the node knows no delegation from your key ${key.publicKey.keyid.slice(0, 16)}… to ${delegateId.slice(0, 16)}…: nothing to revoke`)
      }
      if (current.revoked) process.stderr.write(`rbq: note: v${current.version} is already a revocation; publishing another one\n`)
      const version = opts.version ?? current.version + 1
      if (version <= current.version) throw new RbqError('USAGE', `--version ${version} is not above v${current.version}, the newest the node knows: verifiers would ignore it`)
      let frame: DelegationFrame
      try {
        frame = signDelegation(
          key,
          buildDelegationStatement({
            delegator: key.publicKey.keyid,
            delegate: { keyid: current.delegate.keyid, publicKey: current.delegate.publicKey },
            name: current.name,
            scope: current.scope,
            maxDepth: current.maxDepth,
            version,
            expires: new Date(current.expires),
            revoked: true
          })
        )
      } catch (e) {
        if (e instanceof RbqError) throw new RbqError('USAGE', `cannot revoke: ${e.message}`, { cause: e })
        throw e
      }
      const result = await publishFrame(opts, frame)
      if (opts.json) return printJson({ ...result, id: frame.id, statement: frame.statement })
      process.stdout.write(describePublished(frame, result, opts.api))
    })
}
