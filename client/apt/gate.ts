/**
 * The install gate's decision, separate from I/O on stdin/stderr so it can be tested directly:
 * identify each .deb apt is about to unpack (dpkg-deb, checked against what apt announced in
 * hook protocol 3), ask the node once for all of them, and apply the gate settings
 * (client/apt/gate-config.ts): `reproduced` is installed; `mismatch`, `conflict`, an unreadable
 * file or a file that is not what apt announced are refused; every other verdict gets its
 * mode/per-verdict action, and an allowlisted package or origin turns a refusal into a warning.
 *
 * Fail closed: a file that cannot be read, a node that does not answer, or an answer that does
 * not fit the question refuses the installation (`warn` mode reports and allows).
 */
import type { VerdictQuery, VerdictResult } from '../../protocol/api.js'
import { RbqError } from '../../protocol/index.js'
import { uninstallCommand } from './apt-conf.js'
import { displayName } from '../../debian/binary-package.js'
import { mapLimit } from '../../common/concurrency.js'
import { inspectDeb, type DebFile } from '../../debian/deb-file.js'
import { allowlistedPackage, DEFAULT_GATE_CONFIG, DEFAULT_GATE_SETTINGS, effectivePolicy, GATED_STATUSES, type GateAction, type GatedStatus, type GatePolicy, type GateSettings } from './gate-config.js'
import type { HookAction } from './hook-input.js'
import { describeOrigin, originMatches, originsOfFiles } from './origin.js'
import { DEFAULT_APT_LISTS } from '../../debian/packages-index.js'

/** Asks the node for verdicts in one batch (answers in request order); query, status and reason are all the gate reads (the CLI asks `evidence: 'brief'`). */
export type VerdictLookup = (queries: VerdictQuery[]) => Promise<Pick<VerdictResult, 'query' | 'status' | 'reason'>[]>

export interface GateEntry {
  path: string
  /** What apt said it is installing (hook protocol 3). */
  announced?: HookAction
  /** Undefined when the file could not be read. */
  deb?: DebFile
  /** `mislabelled`: the file's control fields are not the package apt announced. */
  status: VerdictResult['status'] | 'unreadable' | 'mislabelled'
  reason: string
  action: GateAction
  /** Why a refusal became a warning: the allowlist entry that matched. */
  allowlisted?: string
}

export interface GateDecision {
  allowed: boolean
  entries: GateEntry[]
  refused: GateEntry[]
  /** Not reproduced, but the gate settings say `warn` (or an allowlist matched): installed, with a warning. */
  warned: GateEntry[]
}

export function gateActionFor(status: GateEntry['status'], policy: GatePolicy): GateAction {
  if (status === 'reproduced') return 'allow'
  return (GATED_STATUSES as readonly string[]).includes(status) ? policy[status as GatedStatus] : 'refuse'
}

/** Concurrent dpkg-deb + hashing: I/O bound, and the machine is shared. */
const INSPECT_CONCURRENCY = 4

export interface JudgeOptions {
  settings?: GateSettings
  /** apt's lists dir, for `allow_origins` (default /var/lib/apt/lists; apt names it in protocol 3). */
  listsDir?: string
}

function announcedMismatch(a: HookAction, deb: DebFile): string | undefined {
  const c = deb.control
  if (a.package === c.package && a.newVersion === c.version && a.newArchitecture === c.architecture) return undefined
  return `apt announced ${a.package}:${a.newArchitecture} ${a.newVersion}, the file is ${displayName(c)}`
}

export async function judgeDebs(items: readonly (string | { path: string; announced?: HookAction })[], lookup: VerdictLookup, options: JudgeOptions = {}): Promise<GateDecision> {
  const settings = options.settings ?? DEFAULT_GATE_SETTINGS
  const policy = effectivePolicy(settings)
  const entries: GateEntry[] = await mapLimit(items.map((i) => (typeof i === 'string' ? { path: i } : i)), INSPECT_CONCURRENCY, async ({ path, announced }) => {
    const base = { path, ...(announced === undefined ? {} : { announced }), action: 'refuse' as GateAction }
    try {
      const deb = await inspectDeb(path)
      const wrong = announced === undefined ? undefined : announcedMismatch(announced, deb)
      if (wrong !== undefined) return { ...base, deb, status: 'mislabelled' as const, reason: wrong }
      return { ...base, deb, status: 'unknown' as const, reason: '' }
    } catch (e) {
      if (!(e instanceof RbqError)) throw e
      return { ...base, status: 'unreadable' as const, reason: e.message }
    }
  })
  const readable = entries.filter((e): e is GateEntry & { deb: DebFile } => e.deb !== undefined && e.status !== 'mislabelled')
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
  for (const e of entries) e.action = gateActionFor(e.status, policy)
  // The allowlists lift refusals for lack of evidence only, never the tampering alarm.
  const liftable = entries.filter((e): e is GateEntry & { deb: DebFile } => e.action === 'refuse' && e.deb !== undefined && (GATED_STATUSES as readonly string[]).includes(e.status))
  for (const e of liftable) {
    const pattern = allowlistedPackage(settings, e.deb.control.package)
    if (pattern !== undefined) Object.assign(e, { action: 'warn', allowlisted: `allow_packages "${pattern}"` })
  }
  const byOrigin = liftable.filter((e) => e.allowlisted === undefined)
  if (settings.allowOrigins.length > 0 && byOrigin.length > 0) {
    const origins = await originsOfFiles(byOrigin.map((e) => ({ control: e.deb.control, sha256: e.deb.sha256 })), options.listsDir ?? DEFAULT_APT_LISTS)
    byOrigin.forEach((e, i) => {
      for (const o of origins[i] ?? []) {
        const pattern = settings.allowOrigins.find((p) => originMatches(p, o))
        if (pattern !== undefined) return Object.assign(e, { action: 'warn', allowlisted: `allow_origins "${pattern.text}": from ${describeOrigin(o)}` })
      }
      return undefined
    })
  }
  const refused = entries.filter((e) => e.action === 'refuse')
  const warned = entries.filter((e) => e.action === 'warn')
  return { allowed: refused.length === 0, entries, refused, warned }
}

/** One line per file: who (and what apt does with it), which file, what verdict and why. */
function entryLine(e: GateEntry): string {
  const a = e.announced
  const change = a?.oldVersion == null ? '' : a.direction === '<' ? `upgrade from ${a.oldVersion}; ` : a.direction === '>' ? `downgrade from ${a.oldVersion}; ` : 'reinstall; '
  const who = e.deb === undefined ? e.path : `${displayName(e.deb.control)} (${change}${e.deb.query.artifact}, sha256 ${e.deb.sha256.slice(0, 16)}…)`
  return `  ${who}: ${e.status}${e.reason ? ` — ${e.reason}` : ''}${e.allowlisted === undefined ? '' : ` [installed: ${e.allowlisted}]`}`
}

export interface RefusalHints {
  /** Refusals are reported, the installation goes ahead (`warn` mode). */
  warnOnly?: boolean
  /** The command that removes this gate. */
  uninstall?: string
  /** The gate settings file (where to change a setting). */
  config?: string
}

/**
 * The refused files (and those the gate settings only warn about), one line each, with what to
 * do about them. Empty when there is nothing to say.
 */
export function formatRefusals(decision: GateDecision, hints: RefusalHints = {}): string {
  const warnOnly = hints.warnOnly === true
  const config = hints.config ?? DEFAULT_GATE_CONFIG
  const out: string[] = []
  const n = decision.refused.length
  if (n > 0) {
    const what = n === 1 ? '1 package does' : `${n} packages do`
    out.push(
      warnOnly
        ? `rbq: warning: ${what} not meet your rebuild policy (warn mode: installing anyway):`
        : `rbq: refusing the installation: ${what} not meet your rebuild policy:`,
      ...decision.refused.map(entryLine)
    )
    const first = decision.refused[0]!
    if (!warnOnly) {
      out.push('rbq: apt stopped before dpkg changed anything.', `     Details: rbq verify ${first.path}`)
      if (first.deb !== undefined) out.push(`     Rebuild it yourself and count as a party: rbq rebuild '${first.deb.query.package}' --publish`)
      if (decision.refused.some((e) => e.status === 'unreproducible')) {
        out.push(`     "unreproducible" is not a sign of tampering; to install such packages: set unreproducible = "warn" (or "allow") in ${config}`)
      }
      if (decision.refused.some((e) => e.status === 'insufficient' || e.status === 'unknown' || e.status === 'failed')) {
        out.push(`     Not rebuilt by enough trusted parties yet (no sign of tampering either); to install such files: mode = "tampering-only", or allow_packages / allow_origins, in ${config}`)
      }
      out.push(`     Stop gating installations: ${hints.uninstall ?? uninstallCommand()}`)
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
    ? 'rbq: warning: the local rebuild-quorum node is not answering; packages were NOT checked (warn mode: installing anyway).'
    : 'rbq: refusing the installation: the local rebuild-quorum node is not answering, so no package can be checked.'
  return (
    `${head}\n  ${cause}\n` +
    `  Start it with \`systemctl start rbq\` (installed by \`rbq init --systemd\`) or \`${startCommand}\`,\n` +
    `  then run apt again. To install without the gate: \`${uninstall}\`.\n`
  )
}
