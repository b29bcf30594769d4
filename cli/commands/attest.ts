/**
 * `rbq attest`: sign a rebuild attestation for files you built yourself, offline.
 * The per-key seq lives in `<keyfile>.seq` and is never reused.
 */
import { basename } from 'node:path'
import { Option, type Command } from 'commander'
import { sha256File, writeFrameFile } from '../../common/files.js'
import { loadKey } from '../../identity/signing-key.js'
import { SeqCounter, seqFileFor } from '../../identity/seq-counter.js'
import { SOFTWARE } from '../../common/version.js'
import {
  buildRebuildStatement,
  comparisonOutcome,
  REBUILD_OUTCOMES,
  RbqError,
  sha256Hex,
  signAttestation,
  type ArtifactDigest,
  type Outcome
} from '../../protocol/index.js'
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
      const statementFor = (seq: number) =>
        buildRebuildStatement({
          package: opts.package,
          subject,
          outcome,
          upstream,
          inputs: { sha256: opts.inputsDigest ?? sha256Hex(opts.package), materials: [] },
          builder: { id: key.publicKey.keyid, seq, backend: 'manual', software: SOFTWARE },
          startedOn: now,
          finishedOn: now
        })
      // Validate with a placeholder seq first so a bad statement does not burn a seq number.
      try {
        signAttestation(key, statementFor(opts.seq ?? 1))
      } catch (e) {
        if (e instanceof RbqError) throw new RbqError('USAGE', `cannot attest: ${e.message}`, { cause: e })
        throw e
      }
      const seq = await new SeqCounter(seqFileFor(opts.key), key.publicKey.keyid).reserve(opts.seq)
      const frame = signAttestation(key, statementFor(seq))
      await writeFrameFile(opts.out, frame.bytes)
      const result = { id: frame.id, keyid: key.publicKey.keyid, seq, outcome, subject, out: opts.out }
      if (opts.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n')
      else process.stdout.write(`wrote ${opts.out}: ${outcome}, seq ${seq}, frame ${frame.id}\n`)
    })
}
