/**
 * The verifier's trust policy (node/consensus/README.md): TOML in, a typed, validated `Policy` out, and back
 * to commented TOML for the verbs that write policies (`rbq init`, `rbq trust add`).
 *
 * Every refusal is `RbqError('POLICY_INVALID')` whose message starts with `<source>:<line>:` when
 * the line is known (syntax errors always; field errors when the field can be located) and names
 * the field (`threshold`, `root[1].key`, ...). `field` on the error carries the same path.
 */
import { parse as parseToml, TomlError } from 'smol-toml'
import { checkPattern, parsePublicKey, RbqError, type PublicKey } from '../../protocol/index.js'

export const COUNT_MODES = ['party', 'key'] as const
export type CountMode = (typeof COUNT_MODES)[number]

export interface TrustRoot {
  /** Party name: unique in the policy, shown in verdict evidence. */
  readonly name: string
  readonly key: PublicKey
  /** Purl scope patterns this root is trusted for (protocol/purl.ts checkPattern). */
  readonly scope: readonly string[]
}

export interface Policy {
  /** k: independent parties (or keys) that must have rebuilt exactly the file's digest. */
  readonly threshold: number
  readonly count: CountMode
  /** Trusted parties (or keys) allowed to disagree before the verdict is `conflict`. */
  readonly maxDissent: number
  /** Longest delegation chain followed from a root (0 = roots only). */
  readonly maxDepth: number
  readonly roots: readonly TrustRoot[]
}

export const POLICY_DEFAULTS = { count: 'party' as CountMode, maxDissent: 0, maxDepth: 3, scope: ['*'] as readonly string[] }

/** Bounds that keep a policy's work bounded; anything above is a mistake, not a preference. */
export const POLICY_LIMITS = { threshold: 1000, maxDissent: 1000, maxDepth: 16, roots: 1000, scopePatterns: 64, nameLength: 128 }

const TOP_LEVEL_KEYS = ['threshold', 'count', 'max_dissent', 'max_depth', 'root'] as const
const ROOT_KEYS = ['name', 'key', 'scope'] as const
/** Names appear in one-line verdict reasons, TOML basic strings and hashed evidence: no control characters, no lone surrogates. */
const NAME_RE = /^[^\u0000-\u001f\u007f]+$/

type Locate = (field: string) => string

function invalid(locate: Locate, field: string, message: string, cause?: unknown): RbqError {
  return new RbqError('POLICY_INVALID', `${locate(field)}${field}: ${message}`, { field, cause })
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date)
}

function integerIn(locate: Locate, value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(locate, field, `expected an integer from ${min} to ${max}, got ${describe(value)}`)
  }
  return value
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? v.slice(0, 60) + '…' : v)
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v)
  if (Array.isArray(v)) return 'an array'
  if (v instanceof Date) return 'a date'
  return typeof v === 'object' && v !== null ? 'a table' : String(v)
}

function checkUnknownKeys(locate: Locate, table: Record<string, unknown>, known: readonly string[], prefix: string): void {
  for (const k of Object.keys(table)) {
    if (!known.includes(k)) {
      const field = prefix + k
      throw invalid(locate, field, `unknown key (expected one of: ${known.join(', ')})`)
    }
  }
}

function rethrowAsPolicy(locate: Locate, field: string, e: unknown): never {
  if (e instanceof RbqError) throw new RbqError('POLICY_INVALID', `${locate(field)}${e.message}`, { field, cause: e })
  throw e
}

/**
 * Validates a policy given as a plain object shaped like the TOML (snake_case keys, `root`
 * array of tables): what the API accepts as a JSON policy. `locate` prefixes messages with a
 * line when the caller knows the text.
 */
export function policyFromObject(value: unknown, source = 'policy', locate: Locate = () => `${source}: `, options: PolicyParseOptions = {}): Policy {
  if (!isTable(value)) throw new RbqError('POLICY_INVALID', `${source}: expected a table of settings`)
  checkUnknownKeys(locate, value, TOP_LEVEL_KEYS, '')

  if (value.threshold === undefined) throw invalid(locate, 'threshold', 'missing (k: how many independent parties must agree)')
  const threshold = integerIn(locate, value.threshold, 'threshold', 1, POLICY_LIMITS.threshold)

  let count = POLICY_DEFAULTS.count
  if (value.count !== undefined) {
    if (!COUNT_MODES.includes(value.count as CountMode)) throw invalid(locate, 'count', `expected "party" or "key", got ${describe(value.count)}`)
    count = value.count as CountMode
  }
  const maxDissent = value.max_dissent === undefined ? POLICY_DEFAULTS.maxDissent : integerIn(locate, value.max_dissent, 'max_dissent', 0, POLICY_LIMITS.maxDissent)
  const maxDepth = value.max_depth === undefined ? POLICY_DEFAULTS.maxDepth : integerIn(locate, value.max_depth, 'max_depth', 0, POLICY_LIMITS.maxDepth)

  const rawRoots = value.root ?? []
  if (!Array.isArray(rawRoots)) throw invalid(locate, 'root', 'expected [[root]] tables')
  if (rawRoots.length === 0) throw invalid(locate, 'root', 'no [[root]] entry: the policy would trust nobody')
  if (rawRoots.length > POLICY_LIMITS.roots) throw invalid(locate, 'root', `at most ${POLICY_LIMITS.roots} roots`)

  const roots: TrustRoot[] = []
  const names = new Map<string, number>()
  const keyids = new Map<string, number>()
  rawRoots.forEach((raw: unknown, i) => {
    const at = `root[${i}]`
    if (!isTable(raw)) throw invalid(locate, at, 'expected a table with name, key and scope')
    checkUnknownKeys(locate, raw, ROOT_KEYS, `${at}.`)

    const name = raw.name
    if (typeof name !== 'string' || name.length === 0 || name.length > POLICY_LIMITS.nameLength || !NAME_RE.test(name) || /\p{Cs}/u.test(name)) {
      throw invalid(locate, `${at}.name`, `expected a name of 1 to ${POLICY_LIMITS.nameLength} printable characters, got ${describe(name)}`)
    }
    const sameName = names.get(name)
    if (sameName !== undefined) throw invalid(locate, `${at}.name`, `duplicate root name "${name}" (also root[${sameName}])`)

    if (raw.key === undefined) throw invalid(locate, `${at}.key`, 'missing (the root\'s public key, "ed25519:…")')
    let key: PublicKey
    try {
      key = parsePublicKey(raw.key, `${at}.key`)
    } catch (e) {
      rethrowAsPolicy(locate, `${at}.key`, e)
    }
    const sameKey = keyids.get(key.keyid)
    if (sameKey !== undefined) throw invalid(locate, `${at}.key`, `duplicate root key (also root[${sameKey}]); one key is one party`)

    const rawScope = raw.scope ?? POLICY_DEFAULTS.scope
    if (!Array.isArray(rawScope) || rawScope.length === 0 || rawScope.length > POLICY_LIMITS.scopePatterns) {
      throw invalid(locate, `${at}.scope`, `expected a list of 1 to ${POLICY_LIMITS.scopePatterns} purl patterns like ["pkg:deb/debian/*"]`)
    }
    const scope = rawScope.map((p: unknown, j) => {
      try {
        return checkPattern(p, `${at}.scope[${j}]`)
      } catch (e) {
        rethrowAsPolicy(locate, `${at}.scope`, e)
      }
    })
    names.set(name, i)
    keyids.set(key.keyid, i)
    roots.push({ name, key, scope })
  })

  if (count === 'party' && threshold > roots.length && options.requireReachableThreshold !== false) {
    throw invalid(locate, 'threshold', `${threshold} parties needed but only ${roots.length} [[root]] listed: no verdict could ever be "reproduced"`)
  }
  return { threshold, count, maxDissent, maxDepth, roots }
}

export interface PolicyParseOptions {
  /**
   * false: accept a policy listing fewer parties than its threshold. Such a policy can give no
   * verdict, but its roots still explain a delegation chain (`rbq trust explain`) and it can be
   * edited one root at a time (`rbq trust add`). Default true.
   */
  requireReachableThreshold?: boolean
}

/** Parses a TOML policy file's text. `source` names the file in messages. */
export function parsePolicy(text: string, source = 'policy', options: PolicyParseOptions = {}): Policy {
  let value: unknown
  try {
    value = parseToml(text)
  } catch (e) {
    if (e instanceof TomlError) {
      const what = e.message.split('\n')[0]?.replace(/^Invalid TOML document: /, '') ?? 'syntax error'
      throw new RbqError('POLICY_INVALID', `${source}:${e.line}:${e.column}: TOML syntax: ${what}`, { cause: e })
    }
    throw new RbqError('POLICY_INVALID', `${source}: ${(e as Error).message}`, { cause: e })
  }
  return policyFromObject(
    value,
    source,
    (field) => {
      const line = lineOfField(text, field)
      return line === undefined ? `${source}: ` : `${source}:${line}: `
    },
    options
  )
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
const keyLine = (key: string) => new RegExp(`^\\s*["']?${escapeRe(key)}["']?\\s*=`)
const headerLine = /^\s*\[/
const rootHeader = /^\s*\[\[\s*["']?root["']?\s*\]\]/

/**
 * Best-effort line (1-based) of a field path in the TOML text, for messages only: the i-th
 * `[[root]]` header and the key below it, or a top-level `key =` / `[key]` line.
 */
export function lineOfField(text: string, field: string): number | undefined {
  const lines = text.split(/\r?\n/)
  const rootField = /^root\[(\d+)\](?:\.([A-Za-z0-9_-]+))?/.exec(field)
  if (rootField) {
    const index = Number(rootField[1])
    let seen = -1
    for (let i = 0; i < lines.length; i++) {
      if (!rootHeader.test(lines[i] ?? '')) continue
      if (++seen !== index) continue
      const key = rootField[2]
      if (key === undefined) return i + 1
      for (let j = i + 1; j < lines.length && !headerLine.test(lines[j] ?? ''); j++) {
        if (keyLine(key).test(lines[j] ?? '')) return j + 1
      }
      return i + 1
    }
    return seen < 0 ? lineOfField(text, 'root') : undefined // no header: `root = [ {...} ]` written inline
  }
  const key = field.split(/[.[]/)[0] ?? field
  const tableHeader = new RegExp(`^\\s*\\[{1,2}\\s*["']?${escapeRe(key)}["']?\\s*\\]`)
  let inTopLevel = true
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? ''
    if (tableHeader.test(line)) return i + 1
    if (headerLine.test(line)) inTopLevel = false
    if (inTopLevel && keyLine(key).test(line)) return i + 1
  }
  return undefined
}

/** TOML basic string: JSON escapes are valid TOML for the characters names and keys may hold. */
const tomlString = (s: string) => JSON.stringify(s)

/** Commented TOML that parsePolicy reads back to an equal Policy. */
export function formatPolicy(policy: Policy): string {
  const out = [
    '# rebuild-quorum trust policy: which parties you trust, and how many must agree.',
    '# A file is "reproduced" when `threshold` independent parties rebuilt exactly its sha256.',
    '',
    '# k: parties (or keys, see `count`) that must have rebuilt exactly this digest',
    `threshold = ${policy.threshold}`,
    '# "party": each [[root]] counts once, with every key it delegates to (an institution\'s',
    '# build servers are one party); "key": every trusted key counts',
    `count = ${tomlString(policy.count)}`,
    '# trusted parties allowed to report another digest before the verdict is "conflict"',
    `max_dissent = ${policy.maxDissent}`,
    '# longest delegation chain followed below a root (0 = only the roots themselves)',
    `max_depth = ${policy.maxDepth}`
  ]
  for (const root of policy.roots) out.push('', ...formatRoot(root))
  return out.join('\n') + '\n'
}

/** The lines of one `[[root]]` table (formatPolicy, and `rbq trust add` appending to a file). */
export function formatRoot(root: TrustRoot): string[] {
  return ['[[root]]', `name = ${tomlString(root.name)}`, `key = ${tomlString(root.key.text)}`, `scope = [${root.scope.map(tomlString).join(', ')}]`]
}
