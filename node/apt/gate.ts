/**
 * The install gate's decision, separate from I/O on stdin/stderr so it can be tested directly:
 * read the .deb paths apt passes, identify each file, ask the node once for all of them, and
 * allow the installation only when every file is `reproduced` under the verifier's policy — or
 * has a verdict the user chose to allow or only warn about (GatePolicy: `unreproducible`,
 * `insufficient`, `unknown`, `failed`; each `refuse` by default). `mismatch` and `conflict`
 * are always refused.
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
  /** Not reproduced, but the gate policy says `warn`: installed, with a warning. */
  warned: GateEntry[]
}

/** What the gate does with a file of a given verdict. */
export const GATE_ACTIONS = ['refuse', 'warn', 'allow'] as const
export type GateAction = (typeof GATE_ACTIONS)[number]

/**
 * Verdicts whose handling is the user's setting (`rbq apt-hook install --unreproducible allow`):
 * `reproduced` is always allowed; `mismatch`, `conflict` and an unreadable file always refused.
 */
export const GATED_STATUSES = ['unreproducible', 'insufficient', 'unknown', 'failed'] as const
export type GatedStatus = (typeof GATED_STATUSES)[number]
export type GatePolicy = Readonly<Record<GatedStatus, GateAction>>

/** The safe default: refuse everything that is not reproduced. */
export const DEFAULT_GATE_POLICY: GatePolicy = { unreproducible: 'refuse', insufficient: 'refuse', unknown: 'refuse', failed: 'refuse' }

export function parseGateAction(text: string, option: string): GateAction {
  if ((GATE_ACTIONS as readonly string[]).includes(text)) return text as GateAction
  throw new RbqError('USAGE', `${option}: "${text.slice(0, 40)}" is not one of ${GATE_ACTIONS.join(', ')}`)
}

export function gateActionFor(status: GateEntry['status'], policy: GatePolicy): GateAction {
  if (status === 'reproduced') return 'allow'
  return (GATED_STATUSES as readonly string[]).includes(status) ? policy[status as GatedStatus] : 'refuse'
}

/** `--<status> <action>` for every setting that differs from the default (apt-hook run's arguments). */
export function gatePolicyArgs(policy: GatePolicy): string[] {
  return GATED_STATUSES.filter((s) => policy[s] !== DEFAULT_GATE_POLICY[s]).flatMap((s) => [`--${s}`, policy[s]])
}

/** The gate policy from per-status option values (undefined: the default), checked. */
export function gatePolicyOf(options: Partial<Record<GatedStatus, string>>): GatePolicy {
  const policy: Record<GatedStatus, GateAction> = { ...DEFAULT_GATE_POLICY }
  for (const s of GATED_STATUSES) {
    const value = options[s]
    if (value !== undefined) policy[s] = parseGateAction(value, `--${s}`)
  }
  return policy
}

/** One line for humans: what the gate refuses, warns about and allows. */
export function describeGatePolicy(policy: GatePolicy): string {
  const by = (a: GateAction) => GATED_STATUSES.filter((s) => policy[s] === a)
  const refused = ['mismatch', 'conflict', ...by('refuse')]
  const warned = by('warn')
  const allowed = ['reproduced', ...by('allow')]
  return `refuses ${refused.join(', ')}` + (warned.length > 0 ? `; warns about ${warned.join(', ')}` : '') + `; installs ${allowed.join(', ')}`
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

export async function judgeDebs(paths: readonly string[], lookup: VerdictLookup, policy: GatePolicy = DEFAULT_GATE_POLICY): Promise<GateDecision> {
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
  const refused = entries.filter((e) => gateActionFor(e.status, policy) === 'refuse')
  const warned = entries.filter((e) => gateActionFor(e.status, policy) === 'warn')
  return { allowed: refused.length === 0, entries, refused, warned }
}

/** One line per file: who, which file, what verdict and why. */
function entryLine(e: GateEntry): string {
  const who = e.deb === undefined ? e.path : `${displayName(e.deb.control)} (${e.deb.query.artifact}, sha256 ${e.deb.sha256.slice(0, 16)}…)`
  return `  ${who}: ${e.status}${e.reason ? ` — ${e.reason}` : ''}`
}

/**
 * The refused files (and those the gate policy only warns about), one line each; `uninstall`
 * removes this gate, `install` is the command that installed it (to change a setting). Empty
 * when there is nothing to say.
 */
export function formatRefusals(decision: GateDecision, warnOnly: boolean, uninstall = uninstallCommand(), install = 'rbq apt-hook install'): string {
  const out: string[] = []
  const n = decision.refused.length
  if (n > 0) {
    const what = n === 1 ? '1 package does' : `${n} packages do`
    out.push(
      warnOnly
        ? `rbq: warning: ${what} not meet your rebuild policy (warn-only mode: installing anyway):`
        : `rbq: refusing the installation: ${what} not meet your rebuild policy:`,
      ...decision.refused.map(entryLine)
    )
    const first = decision.refused[0]!
    if (!warnOnly) {
      out.push('rbq: apt stopped before dpkg changed anything.', `     Details: rbq verify ${first.path}`)
      if (first.deb !== undefined) out.push(`     Rebuild it yourself and count as a party: rbq rebuild '${first.deb.query.package}' --publish`)
      if (decision.refused.some((e) => e.status === 'unreproducible')) {
        out.push(`     "unreproducible" is not a sign of tampering; to install such packages: ${install} --unreproducible warn (or allow)`)
      }
      out.push(`     Stop gating installations: ${uninstall}`)
    }
  }
  const w = decision.warned.length
  if (w > 0) {
    out.push(`rbq: warning: ${w === 1 ? '1 package is' : `${w} packages are`} not reproduced; installing as your gate settings allow:`, ...decision.warned.map(entryLine))
  }
  return out.length === 0 ? '' : out.join('\n') + '\n'
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
