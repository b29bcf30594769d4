/**
 * `rbq verify FILE|SHA256 [--package PURL] [--artifact NAME]`: asks the local node whether this
 * exact file meets your policy. Exit 0 reproduced; 3 unreproducible (the archive published it,
 * rebuilds with today's toolchain differ: not a sign of tampering); 1 any other verdict, with its
 * reason on one line; 2 usage or I/O error (missing file, node not running).
 *
 * For a .deb without --package, the source package and artifact name come from its control
 * fields (`dpkg-deb --field`, debian/deb-file.ts), as the apt gate names them. Without a
 * package, the node finds the (package, artifact) pairs where builders rebuilt the file's digest
 * or saw the archive publish it.
 */
import { promises as fs } from 'node:fs'
import { basename, resolve } from 'node:path'
import type { Command } from 'commander'
import type { ApiClient } from '../../client/api-client.js'
import type { VerdictQuery, VerdictResult } from '../../protocol/api.js'
import { RbqError } from '../../protocol/errors.js'
import { CliExit, EXIT_OK, printJson, verdictExitCode } from '../exit.js'
import { parsePurlOption } from '../options.js'
import { withNode, type NodeOptions } from '../../client/node-session.js'
import { withNodeOptions } from '../options.js'

interface VerifyOptions extends NodeOptions {
  package?: string
  artifact?: string
  policy?: string
  json?: boolean
}

const SHA256_RE = /^[0-9a-fA-F]{64}$/
/** The artifact names attestations carry: a file name, never a path. */
const ARTIFACT_RE = /^(?!\.{1,2}$)[^/\\\u0000-\u001f\u007f]{1,255}$/

function checkArtifact(name: string, what: string): string {
  if (!ARTIFACT_RE.test(name)) throw new RbqError('USAGE', `${what}: "${name.slice(0, 80)}" is not a file name (no "/", not "." or "..")`)
  return name
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await fs.stat(path)).isFile()
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw new RbqError('FILE_UNREADABLE', `${path}: ${(e as Error).message}`, { cause: e })
  }
}

/** The question for a file or digest argument (module comment). */
async function questionFor(target: string, opts: VerifyOptions): Promise<VerdictQuery> {
  const artifact = opts.artifact === undefined ? undefined : checkArtifact(opts.artifact, '--artifact')
  const pkg = opts.package
  if (SHA256_RE.test(target) && !(await isFile(target))) {
    return { sha256: target.toLowerCase(), ...(pkg === undefined ? {} : { package: pkg }), ...(artifact === undefined ? {} : { artifact }) }
  }
  const path = resolve(target)
  try {
    const st = await fs.stat(path)
    if (!st.isFile()) throw new RbqError('FILE_UNREADABLE', `${target} is not a regular file`)
  } catch (e) {
    if (e instanceof RbqError) throw e
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new RbqError('FILE_NOT_FOUND', `${target} does not exist (give a file or a 64-hex SHA-256)`)
    throw new RbqError('FILE_UNREADABLE', `${target}: ${(e as Error).message}`, { cause: e })
  }
  if (pkg === undefined && /\.u?deb$/.test(path)) {
    const { inspectDeb } = await import('../../debian/deb-file.js')
    try {
      const deb = await inspectDeb(path)
      return { ...deb.query, ...(artifact === undefined ? {} : { artifact }) }
    } catch (e) {
      if (!(e instanceof RbqError && e.code === 'BUILDER_UNAVAILABLE')) throw e
      process.stderr.write(`rbq: note: ${e.message}; asking by digest only\n`)
    }
  }
  const { sha256File } = await import('../../common/files.js')
  const { sha256 } = await sha256File(path)
  if (pkg === undefined) return { sha256, ...(artifact === undefined ? {} : { artifact }) }
  return { sha256, package: pkg, artifact: artifact ?? checkArtifact(basename(path), 'file name') }
}

/**
 * What to suggest when the evidence is too thin. The node's own key may already count (its
 * rebuild is in the evidence) or already be trusted for the package (e.g. through an
 * organisation's delegation): then `rbq trust add me self` would be wrong advice.
 */
async function rebuildHint(result: VerdictResult, client: ApiClient, policy: string | undefined): Promise<string | undefined> {
  if (result.status !== 'insufficient') return undefined
  const insufficient = result.verdicts.find((v) => v.status === 'insufficient')
  const purl = insufficient?.evidence.package ?? result.query.package
  if (purl === undefined) return undefined
  const own = await client.status().then((s) => s.keyid, () => null)
  const ownSupport = own === null ? undefined : insufficient?.evidence.support.find((s) => s.keyid === own)
  if (ownSupport !== undefined) {
    return `rbq: hint: this node's own rebuild already counts (party "${ownSupport.party}"); other parties must rebuild it too: trust more rebuilders with rbq trust add NAME ed25519:…`
  }
  const ownTrusted = own !== null && (await client.explainTrust(own, { package: purl, ...(policy === undefined ? {} : { policy }) }).then((t) => t.trusted, () => false))
  const trustHint = ownTrusted ? '' : ' (with your own key as a root: rbq trust add me self)'
  return `rbq: hint: rebuild it yourself and count as one more party: rbq rebuild '${purl}' --publish${trustHint}`
}

export function registerVerify(program: Command): void {
  withNodeOptions(
    program
      .command('verify')
      .description('does this exact file meet your policy? exit 0 reproduced, 3 unreproducible (not reproducible with today\'s toolchain, not tampering), 1 any other verdict (reason on one line), 2 usage/IO error')
      .argument('<file-or-sha256>', 'the file (e.g. a .deb) or its SHA-256')
      .option('--package <purl>', 'the source package it was built from, e.g. pkg:deb/debian/hello@2.10-3?arch=source (default for a .deb: from its control fields)', parsePurlOption)
      .option('--artifact <name>', 'its artifact name (default: the file name; for a .deb: <package>_<version>_<arch>.deb)')
      .option('--policy <file>', 'judge with this policy file instead of the node\'s')
  )
    .option('--json', 'print the verdict and its evidence as JSON')
    .action(async (target: string, opts: VerifyOptions) => {
      const question = await questionFor(target, opts)
      let policy: string | undefined
      if (opts.policy !== undefined) {
        const { readFileBounded } = await import('../../common/files.js')
        policy = Buffer.from(await readFileBounded(resolve(opts.policy), 128 * 1024, 'policy file')).toString('utf8')
      }
      const { result, hint } = await withNode(opts, async (c) => {
        const result = policy === undefined ? await c.verdict(question) : (await c.verdicts([question], { policy }))[0]!
        return { result, hint: opts.json ? undefined : await rebuildHint(result, c, policy) }
      })
      if (opts.json) printJson(result)
      else process.stdout.write(`${result.status}: ${result.reason}\n`)
      if (hint !== undefined) process.stderr.write(hint + '\n')
      const code = verdictExitCode(result.status)
      if (code !== EXIT_OK) throw new CliExit(code)
    })
}
