/**
 * The apt gate's settings: a commented TOML file (default /etc/rbq/apt-gate.toml) that
 * `rbq apt-hook install` writes and the hook reads on every apt run, so an administrator
 * changes the gate by editing one file (or re-running install), never the apt configuration.
 *
 *   mode            strict (default): refuse every file not reproduced;
 *                   tampering-only: refuse only mismatch and conflict, install files the network
 *                   has no or too little evidence about;
 *                   warn: report everything, refuse nothing (not even when the node is down).
 *   unreproducible, insufficient, unknown, failed
 *                   refuse | warn | allow: override the mode for one verdict.
 *   allow_packages  binary package names (`*` matches any characters) installed whatever the
 *                   evidence says, with a warning; mismatch and conflict are still refused.
 *   allow_origins   archives (Release fields, unattended-upgrades syntax, client/apt/origin.ts)
 *                   whose files are installed with a warning until the network has rebuilt
 *                   them; mismatch and conflict are still refused.
 *   api, data, policy  how the hook finds the node, and an optional policy file.
 *
 * `mismatch` (a trusted party rebuilt other bytes than the archive's file: the tampering alarm)
 * and `conflict` (trusted parties disagree) are refused in every mode but `warn`.
 */
import { promises as fs } from 'node:fs'
import { dirname, isAbsolute } from 'node:path'
import { parse as parseToml, TomlError } from 'smol-toml'
import { RbqError } from '../../protocol/index.js'
import { parseOriginPattern, type OriginPattern } from './origin.js'

export const DEFAULT_GATE_CONFIG = '/etc/rbq/apt-gate.toml'

export const GATE_MODES = ['strict', 'tampering-only', 'warn'] as const
export type GateMode = (typeof GATE_MODES)[number]

/** What the gate does with a file of a given verdict. */
export const GATE_ACTIONS = ['refuse', 'warn', 'allow'] as const
export type GateAction = (typeof GATE_ACTIONS)[number]

/**
 * Verdicts whose handling is the administrator's choice: `reproduced` is always allowed;
 * `mismatch`, `conflict` and a file that cannot be read or is not what apt announced are
 * always refused (reported in `warn` mode).
 */
export const GATED_STATUSES = ['unreproducible', 'insufficient', 'unknown', 'failed'] as const
export type GatedStatus = (typeof GATED_STATUSES)[number]
export type GatePolicy = Readonly<Record<GatedStatus, GateAction>>

const all = (a: GateAction): GatePolicy => ({ unreproducible: a, insufficient: a, unknown: a, failed: a })
export const MODE_POLICIES: Readonly<Record<GateMode, GatePolicy>> = { strict: all('refuse'), 'tampering-only': all('allow'), warn: all('warn') }

export interface GateSettings {
  mode: GateMode
  /** Per-verdict settings given explicitly (they win over the mode). */
  overrides: Partial<Record<GatedStatus, GateAction>>
  allowPackages: string[]
  allowOrigins: OriginPattern[]
  api?: string
  data?: string
  policy?: string
}

export const DEFAULT_GATE_SETTINGS: GateSettings = { mode: 'strict', overrides: {}, allowPackages: [], allowOrigins: [] }

/** The action for each gated verdict: the mode's, then the overrides. `warn` mode never refuses. */
export function effectivePolicy(s: Pick<GateSettings, 'mode' | 'overrides'>): GatePolicy {
  const p = { ...MODE_POLICIES[s.mode], ...s.overrides }
  if (s.mode === 'warn') for (const k of GATED_STATUSES) if (p[k] === 'refuse') p[k] = 'warn'
  return p
}

function oneOf<T extends string>(values: readonly T[], text: unknown, where: string): T {
  if (typeof text === 'string' && (values as readonly string[]).includes(text)) return text as T
  throw new RbqError('CONFIG_INVALID', `${where}: ${JSON.stringify(text)?.slice(0, 40)} is not one of ${values.join(', ')}`)
}
export const parseGateAction = (text: unknown, where: string): GateAction => oneOf(GATE_ACTIONS, text, where)
export const parseGateMode = (text: unknown, where: string): GateMode => oneOf(GATE_MODES, text, where)

const PACKAGE_PATTERN_RE = /^[a-z0-9*][a-z0-9+.*-]*$/

export function parsePackagePattern(text: unknown, where: string): string {
  if (typeof text !== 'string' || !PACKAGE_PATTERN_RE.test(text) || text.length > 100) {
    throw new RbqError('CONFIG_INVALID', `${where}: ${JSON.stringify(text)?.slice(0, 60)} is not a binary package name (lower case, digits, + . - and * as a wildcard)`)
  }
  return text
}

export function packageMatches(pattern: string, name: string): boolean {
  if (!pattern.includes('*')) return pattern === name
  const re = new RegExp(`^${pattern.replace(/[.+]/g, '\\$&').replace(/\*/g, '.*')}$`)
  return re.test(name)
}

/** A file that matches no pattern is judged on its verdict alone. */
export function allowlistedPackage(settings: Pick<GateSettings, 'allowPackages'>, name: string): string | undefined {
  return settings.allowPackages.find((p) => packageMatches(p, name))
}

const KEYS = new Set(['mode', ...GATED_STATUSES, 'allow_packages', 'allow_origins', 'api', 'data', 'policy'])

/** Settings from a parsed TOML table (or command-line values), checked; `where` names the source. */
export function gateSettingsFrom(value: Record<string, unknown>, where: string): GateSettings {
  for (const k of Object.keys(value)) {
    if (!KEYS.has(k)) throw new RbqError('CONFIG_INVALID', `${where}: unknown setting "${k.slice(0, 40)}" (known: ${[...KEYS].join(', ')})`)
  }
  const settings: GateSettings = { mode: value.mode === undefined ? 'strict' : parseGateMode(value.mode, `${where}: mode`), overrides: {}, allowPackages: [], allowOrigins: [] }
  for (const s of GATED_STATUSES) if (value[s] !== undefined) settings.overrides[s] = parseGateAction(value[s], `${where}: ${s}`)
  const list = (key: string): unknown[] => {
    const v = value[key] ?? []
    if (!Array.isArray(v)) throw new RbqError('CONFIG_INVALID', `${where}: ${key} must be a list of strings`)
    return v
  }
  settings.allowPackages = list('allow_packages').map((p, i) => parsePackagePattern(p, `${where}: allow_packages[${i}]`))
  settings.allowOrigins = list('allow_origins').map((o, i) => {
    if (typeof o !== 'string') throw new RbqError('CONFIG_INVALID', `${where}: allow_origins[${i}] must be a string`)
    return parseOriginPattern(o, `${where}: allow_origins[${i}]`)
  })
  for (const key of ['api', 'data', 'policy'] as const) {
    const v = value[key]
    if (v === undefined) continue
    if (typeof v !== 'string' || v === '') throw new RbqError('CONFIG_INVALID', `${where}: ${key} must be a non-empty string`)
    if (key !== 'api' && !isAbsolute(v)) throw new RbqError('CONFIG_INVALID', `${where}: ${key} must be an absolute path (apt runs the hook from any directory)`)
    settings[key] = v
  }
  return settings
}

export function parseGateConfig(text: string, source: string): GateSettings {
  let value: Record<string, unknown>
  try {
    value = parseToml(text) as Record<string, unknown>
  } catch (e) {
    if (e instanceof TomlError) throw new RbqError('CONFIG_INVALID', `${source}:${e.line}:${e.column}: TOML syntax: ${e.message.split('\n')[0]}`, { cause: e })
    throw new RbqError('CONFIG_INVALID', `${source}: ${(e as Error).message}`, { cause: e })
  }
  return gateSettingsFrom(value, source)
}

const MARKER = '# rebuild-quorum apt gate settings: read by `rbq apt-hook run` on every apt installation.'
const q = (s: string) => JSON.stringify(s)

/** The file `install` writes: every setting, with what it does; edit it by hand as well. */
export function formatGateConfig(s: GateSettings): string {
  const policy = effectivePolicy(s)
  const status = (k: GatedStatus) => (s.overrides[k] === undefined ? `# ${k} = ${q(policy[k])}` : `${k} = ${q(s.overrides[k] as string)}`)
  return [
    MARKER,
    '# Written by `rbq apt-hook install`; edit freely (apt reads it at the next installation).',
    '# The gate never sees `dpkg -i FILE.deb`: dpkg alone runs no apt hooks. Install local files with',
    '# `apt install ./FILE.deb` to have them checked.',
    '',
    '# strict: refuse every file not reproduced under your policy.',
    '# tampering-only: refuse only mismatch (a trusted party rebuilt other bytes: the tampering',
    '#   alarm) and conflict (trusted parties disagree); install files nobody has rebuilt yet.',
    '# warn: report everything, refuse nothing (even when the node is not running).',
    `mode = ${q(s.mode)}`,
    '',
    '# Per-verdict settings override the mode: "refuse", "warn" (install, with a warning) or "allow".',
    '# mismatch and conflict are always refused (except in warn mode).',
    ...GATED_STATUSES.map(status),
    '',
    '# Binary package names (* as a wildcard) installed whatever the evidence, with a warning;',
    '# mismatch and conflict are still refused.',
    `allow_packages = [${s.allowPackages.map(q).join(', ')}]`,
    '',
    '# Archives whose files are installed with a warning until the network has rebuilt them,',
    '# in unattended-upgrades\' Origins-Pattern syntax (origin=, label=, suite=, codename=) or a bare',
    '# Origin/Label; e.g. "origin=Debian,label=Debian-Security" lets security updates (and',
    '# unattended-upgrades) through on day one. mismatch and conflict are still refused.',
    `allow_origins = [${s.allowOrigins.map((o) => q(o.text)).join(', ')}]`,
    '',
    '# How the hook finds the node (default: the api.url file in the default data dir), and a',
    '# policy file to judge with instead of the node\'s.',
    s.api === undefined ? '# api = "http://127.0.0.1:4778"' : `api = ${q(s.api)}`,
    s.data === undefined ? '# data = "/var/lib/rbq"' : `data = ${q(s.data)}`,
    s.policy === undefined ? '# policy = "/etc/rbq/policy.toml"' : `policy = ${q(s.policy)}`,
    ''
  ].join('\n')
}

/** Reads the gate settings; a missing file is an error naming the command that writes it. */
export async function readGateConfig(path: string): Promise<GateSettings> {
  let text: string
  try {
    text = await fs.readFile(path, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new RbqError('FILE_NOT_FOUND', `gate settings ${path} not found (written by \`rbq apt-hook install\`)`, { cause: e })
    throw new RbqError('FILE_UNREADABLE', `${path}: ${(e as Error).message}`, { cause: e })
  }
  return parseGateConfig(text, path)
}

/** Writes the file atomically, mode 0644 (apt runs as root; anyone may read what it enforces). */
export async function writeGateConfig(path: string, settings: GateSettings): Promise<void> {
  try {
    await fs.mkdir(dirname(path), { recursive: true })
    const tmp = `${path}.rbq-tmp-${process.pid}`
    await fs.writeFile(tmp, formatGateConfig(settings), { mode: 0o644 })
    await fs.chmod(tmp, 0o644)
    await fs.rename(tmp, path)
  } catch (e) {
    throw new RbqError('FILE_UNREADABLE', `cannot write ${path}: ${(e as Error).message}`, { cause: e })
  }
}

/** One line for humans: what the gate refuses, warns about and installs. */
export function describeGateSettings(s: GateSettings): string {
  if (s.mode === 'warn') return 'warn: reports every file not reproduced, refuses nothing'
  const policy = effectivePolicy(s)
  const by = (a: GateAction) => GATED_STATUSES.filter((k) => policy[k] === a)
  const refused = ['mismatch', 'conflict', ...by('refuse')]
  const warned = by('warn')
  const allowed = ['reproduced', ...by('allow')]
  const lists = [
    ...(s.allowPackages.length > 0 ? [`packages ${s.allowPackages.join(', ')}`] : []),
    ...(s.allowOrigins.length > 0 ? [`origins ${s.allowOrigins.map((o) => o.text).join('; ')}`] : [])
  ]
  return (
    `${s.mode}: refuses ${refused.join(', ')}` +
    (warned.length > 0 ? `; warns about ${warned.join(', ')}` : '') +
    `; installs ${allowed.join(', ')}` +
    (lists.length > 0 ? `; allowlisted (with a warning, never mismatch or conflict): ${lists.join('; ')}` : '')
  )
}
