/**
 * `rbq attest`: sign a rebuild attestation for files you built yourself, offline, into a frame
 * file. It signs through a StatementSigner over --key (identity/statement-signer.ts): the per-key
 * seq lives in `<keyfile>.seq` and is never reused, even when --key is a running node's key (the
 * node's signer takes the same lock). It publishes nothing, so it never asks a node to sign.
 */
import { basename } from 'node:path'
import { Option, type Command } from 'commander'
import { sha256File, writeFrameFile } from '../../common/files.js'
import { loadKey } from '../../identity/signing-key.js'
import { seqFileFor } from '../../identity/seq-counter.js'
import { StatementSigner } from '../../identity/statement-signer.js'
import { comparisonOutcome, REBUILD_OUTCOMES, RbqError, sha256Hex, type ArtifactDigest, type AttestationContent, type Outcome } from '../../protocol/index.js'
import { collect, parsePositiveInt, parsePurlOption, parseSha256Option } from '../options.js'

interface AttestOptions {
  key: string
  package: string
  artifact: string[]
  upstream?: string[]
  outcome?: Outcome
  inputsDigest?: string
  seq?: number
  out: string
  json?: boolean
}

async function digestsOf(paths: string[]): Promise<ArtifactDigest[]> {
  return Promise.all(paths.map(async (p) => ({ name: basename(p), sha256: (await sha256File(p)).sha256 })))
}

export function registerAttest(program: Command): void {
  program
    .command('attest')
    .description('sign an attestation for locally built files and write it as a frame file')
    .requiredOption('--key <file>', 'signing key file')
    .requiredOption('--package <purl>', 'package URL of what was rebuilt, e.g. pkg:deb/debian/hello@2.10-3?arch=source', parsePurlOption)
    .requiredOption('--artifact <file>', 'a file the build produced (repeatable)', collect)
    .option('--upstream <file>', 'the published file to compare with, matched by file name (repeatable)', collect)
    .addOption(new Option('--outcome <outcome>', 'override the inferred outcome').choices([...REBUILD_OUTCOMES]))
    .option('--inputs-digest <sha256>', 'SHA-256 identifying the build inputs (default: SHA-256 of the purl)', parseSha256Option)
    .option('--seq <n>', 'explicit seq; must be above every seq this key used', parsePositiveInt)
    .requiredOption('--out <file>', 'where to write the signed frame')
    .option('--json', 'print the result as JSON')
    .action(async (opts: AttestOptions) => {
      const key = await loadKey(opts.key)
      const subject = await digestsOf(opts.artifact)
      const upstream = await digestsOf(opts.upstream ?? [])
      // Without --outcome: what comparing with --upstream says (reproduced/mismatch), else `built`.
      const outcome = opts.outcome ?? comparisonOutcome(subject, upstream)
      const now = new Date()
      const content: AttestationContent = {
        package: opts.package,
        subject,
        outcome,
        upstream,
        inputs: { sha256: opts.inputsDigest ?? sha256Hex(opts.package), materials: [] },
        backend: 'manual',
        startedOn: now,
        finishedOn: now
      }
      const signer = new StatementSigner(key, seqFileFor(opts.key))
      // A statement receivers would refuse is a usage error, and burns no seq number.
      try {
        signer.check(content)
      } catch (e) {
        if (e instanceof RbqError) throw new RbqError('USAGE', `cannot attest: ${e.message}`, { cause: e })
        throw e
      }
      const frame = await signer.attest(content, opts.seq === undefined ? {} : { seq: opts.seq })
      const seq = frame.statement.predicate.builder.seq
      await writeFrameFile(opts.out, frame.bytes)
      const result = { id: frame.id, keyid: key.publicKey.keyid, seq, outcome, subject, out: opts.out }
      if (opts.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n')
      else process.stdout.write(`wrote ${opts.out}: ${outcome}, seq ${seq}, frame ${frame.id}\n`)
    })
}
