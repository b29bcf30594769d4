/**
 * The install gate's decision, separate from I/O on stdin/stderr so it can be tested directly:
 * read the .deb paths apt passes, identify each file, ask the node once for all of them, and
 * allow the installation only when every file is `reproduced` under the verifier's policy.
 *
 * Fail closed: a file that cannot be read, a node that does not answer, or an answer that does
 * not fit the question refuses the installation (warn-only mode reports and allows).
 */
import type { VerdictQuery, VerdictResult } from '../../protocol/api.js'
import { RbqError } from '../../protocol/index.js'
import { uninstallCommand } from './apt-conf.js'
import { displayName } from './binary-package.js'
import { mapLimit } from '../concurrency.js'
import { inspectDeb, type DebFile } from './deb-file.js'

/** Asks the node for verdicts in one batch (answers in request order). */
export type VerdictLookup = (queries: VerdictQuery[]) => Promise<VerdictResult[]>

export interface GateEntry {
  path: string
  /** Undefined when the file could not be read. */
  deb?: DebFile
  status: VerdictResult['status'] | 'unreadable'
  reason: string
}

export interface GateDecision {
  allowed: boolean
  entries: GateEntry[]
  refused: GateEntry[]
}

/**
 * Pre-Install-Pkgs protocol version 1: one path per line. A `VERSION n` first line means the
 * hook was configured for protocol 2 or 3, whose lines this parser would misread: refuse.
 */
export function parseHookInput(text: string): string[] {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''))
  if (/^VERSION \d+$/.test(lines[0] ?? '')) {
    throw new RbqError('USAGE', `apt sent hook protocol "${lines[0]}"; rbq apt-hook run speaks version 1 (remove DPkg::Tools::Options for this command)`)
  }
  return lines.filter((l) => l.trim() !== '')
}

/** Concurrent dpkg-deb + hashing: I/O bound, and the machine is shared. */
const INSPECT_CONCURRENCY = 4

export async function judgeDebs(paths: readonly string[], lookup: VerdictLookup): Promise<GateDecision> {
  const entries: GateEntry[] = await mapLimit(paths, INSPECT_CONCURRENCY, async (path) => {
    try {
      const deb = await inspectDeb(path)
      return { path, deb, status: 'unknown' as const, reason: '' }
    } catch (e) {
      if (!(e instanceof RbqError)) throw e
      return { path, status: 'unreadable' as const, reason: e.message }
    }
  })
  const readable = entries.filter((e): e is GateEntry & { deb: DebFile } => e.deb !== undefined)
  if (readable.length > 0) {
    const results = await lookup(readable.map((e) => ({ ...e.deb.query })))
    if (results.length !== readable.length) {
      throw new RbqError('API_ERROR', `the node answered ${results.length} verdicts for ${readable.length} questions`)
    }
    readable.forEach((e, i) => {
      const r = results[i] as VerdictResult
      if (r.query.sha256 !== e.deb.sha256) throw new RbqError('API_ERROR', `the node answered for another digest than ${e.path}'s`)
      e.status = r.status
      e.reason = r.reason
    })
  }
  const refused = entries.filter((e) => e.status !== 'reproduced')
  return { allowed: refused.length === 0, entries, refused }
}

/** One line per refused file: who, which file, what verdict and why; `uninstall` removes this gate. */
export function formatRefusals(decision: GateDecision, warnOnly: boolean, uninstall = uninstallCommand()): string {
  const n = decision.refused.length
  const what = n === 1 ? '1 package does' : `${n} packages do`
  const head = warnOnly
    ? `rbq: warning: ${what} not meet your rebuild policy (warn-only mode: installing anyway):`
    : `rbq: refusing the installation: ${what} not meet your rebuild policy:`
  const lines = decision.refused.map((e) => {
    const who = e.deb === undefined ? e.path : `${displayName(e.deb.control)} (${e.deb.query.artifact}, sha256 ${e.deb.sha256.slice(0, 16)}…)`
    return `  ${who}: ${e.status}${e.reason ? ` — ${e.reason}` : ''}`
  })
  const first = decision.refused[0]
  const tail =
    warnOnly || first === undefined
      ? []
      : [
          'rbq: apt stopped before dpkg changed anything.',
          `     Details: rbq verify ${first.path}`,
          ...(first.deb === undefined ? [] : [`     Rebuild it yourself and count as a party: rbq rebuild '${first.deb.query.package}' --publish`]),
          `     Stop gating installations: ${uninstall}`
        ]
  return [head, ...lines, ...tail].join('\n') + '\n'
}

/** What to print when the node does not answer. */
export function formatNodeDown(cause: string, warnOnly: boolean, startCommand = 'rbq node start', uninstall = uninstallCommand()): string {
  const head = warnOnly
    ? 'rbq: warning: the local rebuild-quorum node is not answering; packages were NOT checked (warn-only mode: installing anyway).'
    : 'rbq: refusing the installation: the local rebuild-quorum node is not answering, so no package can be checked.'
  return (
    `${head}\n  ${cause}\n` +
    `  Start it with \`systemctl start rbq\` (installed by \`rbq init --systemd\`) or \`${startCommand}\`,\n` +
    `  then run apt again. To install without the gate: \`${uninstall}\`.\n`
  )
}
