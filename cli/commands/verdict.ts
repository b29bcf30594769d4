/**
 * `rbq verdict`: the verdict for one file, offline, from a policy file and a JSONL file of frames
 * (any mix of attestations, delegations and equivocation proofs), with the node's own engine.
 * Exit 0 reproduced; 3 unreproducible; 1 any other verdict (the verdict and its reason on one
 * line); 2 usage or input errors. A line that is not a valid canonical frame is an input error naming its line
 * number (fail closed: a damaged evidence file must not silently yield a verdict); blank lines
 * are skipped and a trailing CR is tolerated.
 */
import { createReadStream } from 'node:fs'
import type { Command } from 'commander'
import { ConsensusState } from '../../node/consensus/index.js'
import { readPolicyFile } from '../../node/trust/policy-file.js'
import { decodeFrame, MAX_FRAME_BYTES, RbqError, type VerifiedFrame } from '../../protocol/index.js'
import { CliExit, EXIT_OK, printJson, verdictExitCode } from '../exit.js'
import { parseDateOption, parsePurlOption, parseSha256Option } from '../options.js'

interface VerdictOptions {
  policy: string
  from: string
  sha256: string
  package: string
  artifact: string
  at?: Date
  json?: boolean
}

/**
 * Lines of a file, each at most `maxLineBytes` (a longer line is an error naming it, before it
 * is buffered whole). Yields 1-based line numbers; the final line may lack its LF.
 */
export async function* readLines(path: string, maxLineBytes: number, what = 'file'): AsyncGenerator<{ line: number; bytes: Uint8Array }> {
  let pending: Buffer[] = []
  let pendingBytes = 0
  let line = 0
  const stream = createReadStream(path)
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0
      for (let nl = chunk.indexOf(0x0a, start); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
        pending.push(chunk.subarray(start, nl))
        line++
        yield { line, bytes: new Uint8Array(Buffer.concat(pending)) }
        pending = []
        pendingBytes = 0
        start = nl + 1
      }
      if (start < chunk.length) {
        pending.push(chunk.subarray(start))
        pendingBytes += chunk.length - start
        if (pendingBytes > maxLineBytes) {
          throw new RbqError('INPUT_TOO_LARGE', `${path}:${line + 1}: line longer than ${maxLineBytes} bytes`)
        }
      }
    }
  } catch (e) {
    if (e instanceof RbqError) throw e
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new RbqError('FILE_NOT_FOUND', `${what} ${path} does not exist`, { cause: e })
    throw new RbqError('FILE_UNREADABLE', `${what} ${path}: ${(e as Error).message}`, { cause: e })
  } finally {
    stream.destroy()
  }
  if (pendingBytes > 0) yield { line: line + 1, bytes: new Uint8Array(Buffer.concat(pending)) }
}

/** Decodes every frame of a JSONL file; the first bad line is an error naming it. */
export async function readFramesJsonl(path: string): Promise<VerifiedFrame[]> {
  const frames: VerifiedFrame[] = []
  // +1: a frame of the maximum size followed by a CR
  for await (const { line, bytes } of readLines(path, MAX_FRAME_BYTES + 1, 'frames file')) {
    const body = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.subarray(0, bytes.length - 1) : bytes
    if (body.length === 0) continue
    try {
      frames.push(decodeFrame(body))
    } catch (e) {
      if (e instanceof RbqError) throw new RbqError(e.code, `${path}:${line}: ${e.message}`, { field: e.field, cause: e })
      throw e
    }
  }
  return frames
}


export function registerVerdict(program: Command): void {
  program
    .command('verdict')
    .description('compute the verdict for one file offline, from a policy file and a file of frames (one JSON frame per line); exit 0 reproduced, 3 unreproducible, 1 any other verdict, 2 usage/input error')
    .requiredOption('--policy <file>', 'trust policy (TOML)')
    .requiredOption('--from <file>', 'frames, one canonical JSON frame per line: attestations, delegations, equivocation proofs')
    .requiredOption('--sha256 <digest>', 'SHA-256 of the file in hand', parseSha256Option)
    .requiredOption('--package <purl>', 'package URL the file belongs to, e.g. pkg:deb/debian/hello@2.10-3?arch=source', parsePurlOption)
    .requiredOption('--artifact <name>', 'artifact (file) name, e.g. hello_2.10-3_amd64.deb')
    .option('--at <date>', 'judge delegation expiry at this date instead of now', parseDateOption)
    .option('--json', 'print the verdict with its evidence as JSON')
    .action(async (opts: VerdictOptions) => {
      const policy = await readPolicyFile(opts.policy)
      const frames = await readFramesJsonl(opts.from)
      const at = opts.at?.getTime()
      const state = new ConsensusState({ policy, now: () => at ?? Date.now() })
      state.addAll(frames)
      const verdict = state.verdict({ package: opts.package, artifact: opts.artifact, sha256: opts.sha256 })
      // Not the answer, but what an auditor must know about the evidence file.
      for (const e of state.detectedEquivocations()) {
        process.stderr.write(`rbq: warning: key ${e.keyid} signed two different statements with seq ${e.seq}; it is trusted for nothing\n`)
      }
      for (const d of state.trust.diagnostics) process.stderr.write(`rbq: warning: ${d.message}\n`)
      if (opts.json) printJson(verdict)
      else process.stdout.write(`${verdict.status}: ${verdict.reason}\n`)
      const code = verdictExitCode(verdict.status)
      if (code !== EXIT_OK) throw new CliExit(code)
    })
}
