/**
 * Publishing delegations through the local node: the online half of `rbq delegate` (the verb in
 * delegate.ts publishes when no --out is given) and `rbq revoke KEY`. Who signs (ARCHITECTURE.md,
 * "One signer"): the delegation is first checked here with a StatementSigner over the delegator's
 * key file (the data dir's signing.key, or --key FILE), so bad input is refused before the node
 * is asked; then the node signs it with its own signer (POST /v1/delegations), stores and gossips
 * it. When the node runs with another key (409 SIGNER_MISMATCH), the same class signs it here and
 * the node stores and gossips it as any peer's frame. Versions: one above the newest delegation
 * from this key to the delegate that the node knows (TUF-like: the newest version wins everywhere).
 */
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { delegationRequestOf, type SignedStatement, type SubmitResult } from '../../protocol/api.js'
import type { DelegationContent, DelegationStatement, DelegationFrame, KeyId } from '../../protocol/index.js'
import { isRbqError, RbqError } from '../../protocol/errors.js'
import type { StatementSigner } from '../../identity/statement-signer.js'
import { printJson } from '../exit.js'
import { dataDirFileHelp, parsePositiveInt } from '../options.js'
import { withNode, type NodeOptions } from '../../client/node-session.js'
import { withNodeOptions } from '../options.js'

export interface PublishOptions extends NodeOptions {
  /** Signing key file (default: `<data>/signing.key`). */
  key?: string
}

/** The delegator's signer: over --key FILE, else the node data dir's signing.key. */
export async function delegatorSigner(opts: PublishOptions): Promise<StatementSigner> {
  const { StatementSigner } = await import('../../identity/statement-signer.js')
  if (opts.key !== undefined) return StatementSigner.fromKeyFile(opts.key)
  const { dataDirLayout, defaultDataDir } = await import('../../common/data-dir.js')
  return StatementSigner.fromKeyFile(dataDirLayout(resolve(opts.data ?? defaultDataDir())).signingKey)
}

/**
 * Checks the delegation as its signer would (receivers' rules, expiry), without signing or
 * asking the node; a refusal is a usage error of `verb` ("cannot delegate: …").
 */
export function checkDelegation(signer: StatementSigner, content: DelegationContent, verb: 'delegate' | 'revoke'): void {
  try {
    signer.checkDelegation(content)
  } catch (e) {
    if (e instanceof RbqError) throw new RbqError('USAGE', `cannot ${verb}: ${e.message}`, { cause: e })
    throw e
  }
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

export interface PublishedDelegation {
  frame: DelegationFrame
  /** The node's answer: stored, or duplicate (the identical frame was stored already). */
  status: SignedStatement['status'] | SubmitResult['status']
}

/**
 * Publishes the delegation from `signer`'s key through the node: signed by the node when that is
 * its key, else signed here by `signer` and handed over as a frame. A refusal is the node's
 * typed error.
 */
export function publishDelegation(opts: NodeOptions, signer: StatementSigner, content: DelegationContent): Promise<PublishedDelegation> {
  return withNode(opts, async (client) => {
    try {
      const signed = await client.publishDelegation({ ...delegationRequestOf(content), signer: signer.keyid })
      const { canonicalBytes, decodeFrame } = await import('../../protocol/index.js')
      return { frame: decodeFrame(canonicalBytes(signed.frame)) as DelegationFrame, status: signed.status }
    } catch (e) {
      if (!isRbqError(e, 'SIGNER_MISMATCH')) throw e
    }
    // The node runs with another key: it stores and gossips the frame signed here, as any peer's.
    const frame = signer.delegate(content)
    return { frame, status: (await client.submitFrame(frame.bytes)).status }
  })
}

export function describePublished({ frame, status }: PublishedDelegation, url: string | undefined): string {
  const s = frame.statement
  const what = s.revoked ? 'revocation' : 'delegation'
  const where = status === 'duplicate' ? 'already known to the node' : `published through ${url ?? 'the local node'}`
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
      const { parsePublicKey } = await import('../../protocol/index.js')
      const delegateId = /^[0-9a-fA-F]{64}$/.test(delegateText) ? delegateText.toLowerCase() : parsePublicKey(delegateText, 'delegate').keyid
      const signer = await delegatorSigner(opts)
      const [current] = await knownDelegations(opts, signer.keyid, delegateId)
      if (current === undefined) {
        throw new RbqError('NOT_FOUND', `the node knows no delegation from your key ${signer.keyid.slice(0, 16)}… to ${delegateId.slice(0, 16)}…: nothing to revoke`)
      }
      if (current.revoked) process.stderr.write(`rbq: note: v${current.version} is already a revocation; publishing another one\n`)
      const version = opts.version ?? current.version + 1
      if (version <= current.version) throw new RbqError('USAGE', `--version ${version} is not above v${current.version}, the newest the node knows: verifiers would ignore it`)
      const content: DelegationContent = {
        delegate: { keyid: current.delegate.keyid, publicKey: current.delegate.publicKey },
        name: current.name,
        scope: current.scope,
        maxDepth: current.maxDepth,
        version,
        expires: new Date(current.expires),
        revoked: true
      }
      checkDelegation(signer, content, 'revoke')
      const published = await publishDelegation(opts, signer, content)
      if (opts.json) return printJson({ status: published.status, id: published.frame.id, kind: published.frame.kind, statement: published.frame.statement })
      process.stdout.write(describePublished(published, opts.api))
    })
}
