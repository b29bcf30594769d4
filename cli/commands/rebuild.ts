/**
 * `rbq rebuild PURL|RECIPE.toml`: one local rebuild, with live progress on stderr, then the
 * outcome and digests on stdout. "Users reproducing is gold": anyone can check a package.
 *
 *   PURL         pkg:deb/debian/NAME[@VERSION][?arch=source]: the Debian builder (newest version
 *                in the suite when no version is given); its cache is the data dir's
 *   RECIPE.toml  the recipe builder
 *   --out FRAME  also sign the result with the node's key (data dir, or --key) into a frame file
 *   --publish    sign and submit it to the running node through its API (the frame is written
 *                too: to --out, else <output dir>/attestation.json)
 *
 * Who signs (ARCHITECTURE.md, "One signer"): with --publish, the running node whose key is the
 * one to sign with (POST /v1/rebuild-results: its StatementSigner reserves the seq, it stores
 * and gossips the frame). Otherwise — --out alone, no node running, or a node with another key —
 * a StatementSigner over the key file signs here: the same seq file under the same lock, so the
 * seq continues the key's one sequence either way.
 *
 * Exit: 0 reproduced/built, 1 mismatch/failed, 2 usage or I/O error (nothing to attest, e.g. a
 * source whose checksum does not match).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { Command } from 'commander'
import { ApiClient } from '../../client/api-client.js'
import { writeFrameFile } from '../../common/files.js'
import { loadKey } from '../../identity/signing-key.js'
import { seqFileFor } from '../../identity/seq-counter.js'
import { StatementSigner } from '../../identity/statement-signer.js'
import { dataDirLayout, defaultDataDir } from '../../common/data-dir.js'
import { checkedContent } from '../../node/rebuild/rebuild-statement.js'
import { rebuildDebian } from '../../node/rebuild/debian/debian-builder.js'
import { debianSourceOfPurl } from '../../node/rebuild/feeds.js'
import { rebuildRecipe } from '../../node/rebuild/recipe/recipe-builder.js'
import { loadRecipe } from '../../node/rebuild/recipe/recipe.js'
import type { ProgressEvent, RebuildResult } from '../../node/rebuild/rebuild-types.js'
import { canonicalBytes, decodeFrame, isRbqError, parsePurl, RbqError, type AttestationFrame } from '../../protocol/index.js'
import { rebuildResultRequestOf } from '../../protocol/api.js'
import { CliExit, EXIT_NEGATIVE, EXIT_USAGE, printJson } from '../exit.js'
import { dataDirFileHelp, dataDirHelp } from '../options.js'

interface RebuildOptions {
  data?: string
  outputDir?: string
  out?: string
  key?: string
  publish?: boolean
  json?: boolean
  mirror?: string
  suite?: string
}

export function registerRebuild(program: Command): void {
  program
    .command('rebuild')
    .description('rebuild one package locally (a Debian source purl or a recipe file) and print the outcome and digests')
    .argument('<target>', 'pkg:deb/debian/NAME[@VERSION][?arch=source], or a recipe file (.toml)')
    .option('--data <dir>', dataDirHelp('node data dir: Debian cache, signing key'))
    .option('--output-dir <dir>', 'where the artifacts and the build log are kept (default: a new temp dir)')
    .option('--out <frame>', "sign the result with the node's key and write the frame here")
    .option('--key <file>', dataDirFileHelp('signing key for --out/--publish', 'signing.key'))
    .option('--publish', 'sign the result and submit it to the running node (through its API)')
    .option('--mirror <url>', 'Debian mirror (default: from the apt sources of this machine)')
    .option('--suite <name>', 'Debian suite (default: from the apt sources of this machine)')
    .option('--json', 'print the result as JSON')
    .action(async (target: string, opts: RebuildOptions) => {
      const dataDir = resolve(opts.data ?? defaultDataDir())
      const build = await prepare(target, opts, dataDir) // bad input fails here, before any dir is made
      const outputDir = resolve(opts.outputDir ?? (await mkdtemp(join(tmpdir(), 'rbq-rebuild-'))))
      const progress = new ProgressDisplay(process.stderr)
      const controller = new AbortController()
      const onSigint = () => controller.abort(new CliExit(EXIT_USAGE, 'rbq: interrupted; the build was stopped'))
      process.once('SIGINT', onSigint)
      let result: RebuildResult & { networkIsolation?: string }
      try {
        result = await build({ outputDir, signal: controller.signal, onProgress: (e) => progress.update(e) })
      } catch (e) {
        // Nothing to show for it: do not leave a temp dir the user was never told about.
        if (opts.outputDir === undefined) await rm(outputDir, { recursive: true, force: true })
        throw e
      } finally {
        process.off('SIGINT', onSigint)
        progress.close()
      }

      let frame: AttestationFrame | undefined
      let frameFile: string | undefined
      let published: string | undefined
      let publishError: unknown
      if (opts.out !== undefined || opts.publish === true) {
        const signed = await signResult(result, opts, dataDir)
        ;({ frame, published, publishError } = signed) // a publish error: the result and the frame file are still worth printing first
        frameFile = resolve(opts.out ?? join(outputDir, 'attestation.json'))
        await writeFrameFile(frameFile, signed.frame.bytes)
      }

      const f = frame === undefined ? undefined : { id: frame.id, seq: frame.statement.predicate.builder.seq, file: frameFile, published }
      if (opts.json === true) printJson(resultJson(result, outputDir, f))
      else process.stdout.write(formatResult(result, outputDir, f))
      if (publishError !== undefined) throw publishError
      if (result.outcome === 'mismatch' || result.outcome === 'failed') throw new CliExit(EXIT_NEGATIVE)
    })
}

type Build = (how: { outputDir: string; signal: AbortSignal; onProgress: (e: ProgressEvent) => void }) => Promise<RebuildResult & { networkIsolation?: string }>

/** Reads and checks the target (recipe file or purl) and returns the build to run. */
async function prepare(target: string, opts: RebuildOptions, dataDir: string): Promise<Build> {
  if (!target.startsWith('pkg:')) {
    const recipe = await loadRecipe(target).catch((e: unknown) => {
      if (isRbqError(e, 'FILE_NOT_FOUND') && !target.endsWith('.toml')) {
        throw new RbqError('USAGE', `${target}: no such recipe file; a package is given as a purl, e.g. pkg:deb/debian/${target}`)
      }
      throw e
    })
    return (how) => rebuildRecipe(recipe, { outDir: how.outputDir, signal: how.signal, onProgress: how.onProgress })
  }
  parsePurl(target, 'target') // a malformed purl is PURL_INVALID naming the argument
  const wanted = debianSourceOfPurl(target)
  if (wanted === undefined) {
    throw new RbqError('USAGE', `rbq rebuild takes a Debian source purl (pkg:deb/debian/NAME[@VERSION][?arch=source]) or a recipe file, not ${target}`)
  }
  return (how) =>
    rebuildDebian(
      wanted,
      {
        cacheDir: join(dataDirLayout(dataDir).cache, 'debian'),
        outDir: how.outputDir,
        signal: how.signal,
        onProgress: how.onProgress,
        ...(opts.mirror === undefined ? {} : { mirror: opts.mirror }),
        ...(opts.suite === undefined ? {} : { suite: opts.suite })
      }
    )
}

interface Signed {
  frame: AttestationFrame
  /** With --publish: the node's answer (stored, duplicate) or `not published: why`. */
  published?: string
  publishError?: unknown
}

/**
 * Signs the result (see the module comment for who signs). Content no attestation can carry is
 * refused here, before any node is asked or any seq reserved.
 */
async function signResult(result: RebuildResult, opts: RebuildOptions, dataDir: string): Promise<Signed> {
  const content = checkedContent(result)
  const keyFile = resolve(opts.key ?? dataDirLayout(dataDir).signingKey)
  const key = await loadKey(keyFile)
  const signHere = () => new StatementSigner(key, seqFileFor(keyFile)).attest(content)
  if (opts.publish !== true) return { frame: await signHere() }
  let nodeError: unknown
  try {
    const signed = await new ApiClient({ dataDir }).publishRebuildResult({ ...rebuildResultRequestOf(content), signer: key.publicKey.keyid })
    return { frame: decodeFrame(canonicalBytes(signed.frame)) as AttestationFrame, published: signed.status }
  } catch (e) {
    if (!isRbqError(e, 'SIGNER_MISMATCH')) nodeError = e
  }
  const frame = await signHere()
  try {
    // The node could not sign it: the frame is still made here and written; it says why it was not published.
    if (nodeError !== undefined) throw nodeError
    // The node runs with another key: it stores and gossips the frame signed here, as any peer's.
    return { frame, published: await submitToRunningNode(frame, dataDir) }
  } catch (e) {
    return { frame, published: `not published: ${(e as Error).message}`, publishError: e }
  }
}

/** Sends a signed frame to the node running on this data dir; returns its answer (stored, duplicate). */
export async function submitToRunningNode(frame: AttestationFrame, dataDir: string): Promise<string> {
  const answer = await new ApiClient({ dataDir }).submitFrame(frame.bytes)
  return answer.status
}

interface FrameInfo {
  id: string
  seq: number
  file: string | undefined
  published: string | undefined
}

function resultJson(r: RebuildResult & { networkIsolation?: string }, outputDir: string, frame: FrameInfo | undefined): Record<string, unknown> {
  return {
    package: r.package,
    outcome: r.outcome,
    backend: r.backend,
    artifacts: r.artifacts,
    upstream: r.upstream,
    inputs: r.inputs,
    log: r.log,
    startedOn: r.startedOn.toISOString(),
    finishedOn: r.finishedOn.toISOString(),
    ...(r.diff === undefined ? {} : { diff: r.diff }),
    ...(r.failure === undefined ? {} : { failure: r.failure }),
    ...(r.networkIsolation === undefined ? {} : { networkIsolation: r.networkIsolation }),
    outputDir,
    ...(frame === undefined ? {} : { frame })
  }
}

export function formatResult(r: RebuildResult & { networkIsolation?: string }, outputDir: string, frame?: FrameInfo): string {
  const row = (label: string, value: string) => `  ${label.padEnd(9)} ${value}\n`
  const seconds = ((r.finishedOn.getTime() - r.startedOn.getTime()) / 1000).toFixed(1)
  let out = `${r.outcome} ${r.package} (${r.backend}, ${seconds} s)\n`
  const upstream = new Map(r.upstream.map((u) => [u.name, u.sha256]))
  for (const a of r.artifacts) {
    const up = upstream.get(a.name)
    const mark = up === undefined ? '' : up === a.sha256 ? '  = upstream' : `  ≠ upstream ${up}`
    out += row(r.outcome === 'failed' ? 'source' : 'artifact', `${a.name} sha256:${a.sha256} (${a.size} bytes)${mark}`)
  }
  const produced = new Set(r.artifacts.map((a) => a.name))
  for (const u of r.upstream) if (!produced.has(u.name)) out += row('upstream', `${u.name} sha256:${u.sha256} (not produced under this name)`)
  out += row('inputs', `sha256:${r.inputs.sha256}`)
  out += row('log', `${r.log.path} sha256:${r.log.sha256} (${r.log.size} bytes)`)
  if (r.networkIsolation !== undefined) out += row('network', r.networkIsolation === 'none' ? 'NOT isolated: the build could reach the network' : `isolated (${r.networkIsolation})`)
  if (r.failure !== undefined) out += row('failure', `${r.failure.reason}${r.failure.code === undefined ? '' : ` [${r.failure.code}]`}`)
  if (r.diff !== undefined) out += row('diff', `[${r.diff.tags.join(', ')}] ${r.diff.summary.split('\n')[0] ?? ''}`)
  out += row('kept in', outputDir)
  if (frame !== undefined) {
    out += row('signed', `frame ${frame.id}, seq ${frame.seq}${frame.file === undefined ? '' : ` → ${frame.file}`}`)
    if (frame.published !== undefined) out += row('published', frame.published)
  }
  return out
}

/**
 * Live progress on stderr. On a terminal: one line redrawn in place (phase, elapsed time,
 * message, last log line), refreshed every second so the clock moves during quiet phases.
 * Otherwise: a plain line per phase change or new message (log lines stay in the build log).
 */
export class ProgressDisplay {
  private readonly started = Date.now()
  private readonly tty: boolean
  private last: ProgressEvent = { phase: 'fetch', message: 'starting' }
  private lastLogLine = ''
  private lastPrinted = ''
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly stream: NodeJS.WriteStream) {
    this.tty = stream.isTTY === true
    if (this.tty) {
      this.timer = setInterval(() => this.draw(), 1000)
      this.timer.unref()
    }
  }

  update(e: ProgressEvent): void {
    if (e.logLine !== undefined && e.logLine.trim() !== '') this.lastLogLine = e.logLine.trim()
    const changed = e.phase !== this.last.phase || e.message !== this.last.message
    this.last = e
    if (this.tty) this.draw()
    else if (changed) this.line(`[${e.phase} ${this.elapsed()}] ${e.message}`)
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    if (this.tty) this.stream.write('\r\x1b[2K')
  }

  private elapsed(): string {
    const s = Math.floor((Date.now() - this.started) / 1000)
    return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`
  }

  private draw(): void {
    const cols = this.stream.columns
    const width = (cols !== undefined && cols >= 20 ? cols : 80) - 1 // a pty may report 0 columns
    const tail = this.lastLogLine === '' ? '' : ` | ${this.lastLogLine}`
    // eslint-disable-next-line no-control-regex
    const text = `[${this.last.phase} ${this.elapsed()}] ${this.last.message}${tail}`.replace(/[\x00-\x1f\x7f]/g, ' ')
    this.stream.write(`\r\x1b[2K${Array.from(text).slice(0, width).join('')}`)
  }

  private line(text: string): void {
    if (text === this.lastPrinted) return
    this.lastPrinted = text
    this.stream.write(`${text}\n`)
  }
}
