/**
 * Recipe files: a declarative build in TOML (README.md §Recipes documents the format).
 *
 *   purl = "pkg:generic/hello@1.0"
 *   command = ["make", "dist"]          # argv; or a string, run as /bin/sh -c '<string>'
 *   outputs = ["dist/*.tar.gz"]         # globs relative to the build dir
 *   timeout = 600                       # seconds (default 600)
 *   source_date_epoch = 1700000000      # default 315532800 (1980-01-01, zip-safe)
 *   [env]
 *   CFLAGS = "-O2"
 *   [[source]]
 *   path = "hello-1.0.tar.gz"           # or url = "file:///…" | "https://…"
 *   sha256 = "…"
 *   dest = "hello.tar.gz"               # optional; default: the file name
 *
 * Parsing is strict: unknown keys, wrong types, bad digests and paths that could leave the build
 * dir are RECIPE_INVALID errors naming the field (and its line when it can be found).
 */
import { readFile } from 'node:fs/promises'
import { basename, dirname, isAbsolute, posix, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseToml, TomlError } from 'smol-toml'
import { canonicalJson, canonicalPurl, RbqError, sha256Hex } from '../../../protocol/index.js'

/** Version of how rbq interprets a recipe; part of the inputs digest. */
export const RECIPE_FORMAT_VERSION = 1
export const DEFAULT_RECIPE_TIMEOUT_SECONDS = 600
/** 1980-01-01T00:00:00Z: the earliest date a zip file can hold, so archivers never choke on it. */
export const DEFAULT_SOURCE_DATE_EPOCH = 315_532_800
/** An attestation carries at most 64 materials and 64 subjects (protocol limits). */
export const MAX_RECIPE_SOURCES = 64
export const MAX_RECIPE_OUTPUTS = 64
const MAX_RECIPE_BYTES = 256 * 1024
const MAX_TIMEOUT_SECONDS = 7 * 86_400

/** Variables rbq sets itself; a recipe may not override them (SOURCE_DATE_EPOCH has its own key). */
export const RESERVED_ENV = ['HOME', 'TZ', 'LC_ALL', 'SOURCE_DATE_EPOCH'] as const

export type SourceLocation = { kind: 'file'; path: string } | { kind: 'http'; url: string }

export interface RecipeSource {
  /** Where the bytes come from: a local file (path or file:// URL) or http(s). */
  location: SourceLocation
  sha256: string
  /** Relative path inside the build dir, normalised (no `..`, not absolute). */
  dest: string
  /** What the attestation lists as the material's uri: the URL, or the dest name for local files. */
  uri: string
}

export interface Recipe {
  purl: string // canonical
  sources: RecipeSource[]
  /** argv; the string form is normalised to ["/bin/sh", "-c", string]. */
  command: string[]
  env: Record<string, string>
  outputs: string[]
  timeoutSeconds: number
  sourceDateEpoch: number
  /** The recipe file itself: the subject of a `failed` attestation. */
  origin: { name: string; sha256: string; size: number; path?: string }
}

const TOP_KEYS = ['purl', 'source', 'command', 'env', 'outputs', 'timeout', 'source_date_epoch'] as const
const SOURCE_KEYS = ['url', 'path', 'sha256', 'dest'] as const
const SHA256_RE = /^[0-9a-f]{64}$/
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/

export interface ParseRecipeOptions {
  /** Relative source paths are resolved against this directory (default: cwd). */
  baseDir?: string
  /** Shown in errors and used as the recipe's subject name (default "recipe.toml"). */
  fileName?: string
  /** Absolute path of the file, when the text came from one. */
  path?: string
}

/** Reads and parses a recipe file; relative source paths are relative to its directory. */
export async function loadRecipe(path: string): Promise<Recipe> {
  const abs = resolve(path)
  let bytes: Buffer
  try {
    bytes = await readFile(abs)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new RbqError('FILE_NOT_FOUND', `recipe ${abs} does not exist`, { cause: e })
    throw new RbqError('FILE_UNREADABLE', `recipe ${abs}: ${(e as Error).message}`, { cause: e })
  }
  if (bytes.length > MAX_RECIPE_BYTES) throw new RbqError('RECIPE_INVALID', `recipe ${abs} is over ${MAX_RECIPE_BYTES} bytes`)
  return parseRecipe(bytes.toString('utf8'), { baseDir: dirname(abs), fileName: basename(abs), path: abs })
}

export function parseRecipe(text: string, opts: ParseRecipeOptions = {}): Recipe {
  const fileName = opts.fileName ?? 'recipe.toml'
  const fail = (field: string, what: string): never => {
    const line = lineOf(text, field)
    throw new RbqError('RECIPE_INVALID', `${fileName}${line === undefined ? '' : ` line ${line}`}: ${field}: ${what}`, { field })
  }
  let toml: Record<string, unknown>
  try {
    toml = parseToml(text) as Record<string, unknown>
  } catch (e) {
    if (e instanceof TomlError) {
      throw new RbqError('RECIPE_INVALID', `${fileName} line ${e.line}, column ${e.column}: TOML syntax error: ${e.message.split('\n')[0]}`, { cause: e })
    }
    throw e
  }
  for (const key of Object.keys(toml)) {
    if (!(TOP_KEYS as readonly string[]).includes(key)) fail(key, `unknown key (known: ${TOP_KEYS.join(', ')})`)
  }

  if (typeof toml.purl !== 'string') fail('purl', 'required: the package URL of what this recipe builds, e.g. "pkg:generic/hello@1.0"')
  let purl = ''
  try {
    purl = canonicalPurl(toml.purl as string, 'purl')
  } catch (e) {
    fail('purl', (e as Error).message.replace(/^purl: /, ''))
  }

  const command = parseCommand(toml.command, fail)
  const env = parseEnv(toml.env, fail)
  const outputs = parseOutputs(toml.outputs, fail)
  const timeoutSeconds = parseNumber(toml.timeout, 'timeout', DEFAULT_RECIPE_TIMEOUT_SECONDS, 0, MAX_TIMEOUT_SECONDS, false, fail)
  const sourceDateEpoch = parseNumber(toml.source_date_epoch, 'source_date_epoch', DEFAULT_SOURCE_DATE_EPOCH, 0, 253_402_300_799, true, fail)
  const sources = parseSources(toml.source, opts.baseDir ?? process.cwd(), fail)

  const origin = {
    name: fileName,
    sha256: sha256Hex(text),
    size: Buffer.byteLength(text),
    ...(opts.path === undefined ? {} : { path: opts.path })
  }
  return { purl, sources, command, env, outputs, timeoutSeconds, sourceDateEpoch, origin }
}

type Fail = (field: string, what: string) => never

function parseCommand(value: unknown, fail: Fail): string[] {
  if (typeof value === 'string') {
    if (value.trim() === '') fail('command', 'must not be empty')
    return ['/bin/sh', '-c', value]
  }
  if (!Array.isArray(value) || value.length === 0) {
    fail('command', 'required: an argv array like ["make", "dist"] or a shell string run with /bin/sh -c')
  }
  const argv = value as unknown[]
  argv.forEach((a, i) => {
    if (typeof a !== 'string' || a.includes('\0')) fail(`command[${i}]`, 'expected a string without NUL')
  })
  if ((argv[0] as string) === '') fail('command[0]', 'the program must not be empty')
  return argv as string[]
}

function parseEnv(value: unknown, fail: Fail): Record<string, string> {
  if (value === undefined) return {}
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Date) fail('env', 'expected a table of strings')
  const env: Record<string, string> = {}
  for (const [name, v] of Object.entries(value as Record<string, unknown>)) {
    if (!ENV_NAME_RE.test(name)) fail(`env.${name}`, 'not a valid environment variable name')
    if ((RESERVED_ENV as readonly string[]).includes(name)) {
      fail(`env.${name}`, name === 'SOURCE_DATE_EPOCH' ? 'use the top-level source_date_epoch key' : 'set by rbq for every build; a recipe cannot override it')
    }
    if (typeof v !== 'string' || v.includes('\0')) fail(`env.${name}`, 'expected a string without NUL')
    env[name] = v as string
  }
  return env
}

/**
 * A path inside the build dir as the recipe spells it: relative, `/`-separated, and never
 * climbing out (`..` segments are refused even when they would stay inside: no guessing).
 */
function checkInsidePath(value: string, field: string, fail: Fail): string {
  if (value === '' || value.includes('\0') || value.includes('\\')) fail(field, 'expected a non-empty relative path without NUL or backslash')
  if (isAbsolute(value) || value.startsWith('~')) fail(field, `"${value}" is absolute: paths are relative to the build dir`)
  if (value.split('/').includes('..')) fail(field, `"${value}" contains "..": it would escape the build dir`)
  const normalised = posix.normalize(value).replace(/\/+$/, '')
  if (normalised === '.' || normalised === '') fail(field, `"${value}" names the build dir itself`)
  return normalised
}

function parseOutputs(value: unknown, fail: Fail): string[] {
  if (!Array.isArray(value) || value.length === 0) fail('outputs', 'required: a non-empty array of glob patterns relative to the build dir, e.g. ["dist/*.tar.gz"]')
  const list = value as unknown[]
  if (list.length > MAX_RECIPE_OUTPUTS) fail('outputs', `at most ${MAX_RECIPE_OUTPUTS} patterns`)
  return list.map((p, i) => {
    if (typeof p !== 'string') fail(`outputs[${i}]`, 'expected a string')
    return checkInsidePath(p as string, `outputs[${i}]`, fail)
  })
}

function parseNumber(value: unknown, field: string, fallback: number, min: number, max: number, integer: boolean, fail: Fail): number {
  if (value === undefined) return fallback
  const n = typeof value === 'bigint' ? Number(value) : value
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= min - (integer ? 1 : 0) || n > max || (integer && !Number.isInteger(n))) {
    fail(field, integer ? `expected an integer from ${min} to ${max}` : `expected a number of seconds above ${min} and at most ${max}`)
  }
  return n as number
}

function parseSources(value: unknown, baseDir: string, fail: Fail): RecipeSource[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) fail('source', 'expected [[source]] tables')
  const list = value as unknown[]
  if (list.length > MAX_RECIPE_SOURCES) fail('source', `at most ${MAX_RECIPE_SOURCES} sources`)
  const sources = list.map((entry, i) => parseSource(entry, i, baseDir, fail))
  // Two sources landing on one path (or one inside the other) would overwrite each other.
  const dests = sources.map((s) => s.dest)
  dests.forEach((d, i) => {
    const clash = dests.findIndex((o, j) => j < i && (o === d || o.startsWith(`${d}/`) || d.startsWith(`${o}/`)))
    if (clash !== -1) fail(`source[${i}].dest`, `"${d}" collides with source[${clash}].dest "${dests[clash]}"`)
  })
  return sources
}

function parseSource(entry: unknown, i: number, baseDir: string, fail: Fail): RecipeSource {
  const f = `source[${i}]`
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry) || entry instanceof Date) fail(f, 'expected a table')
  const t = entry as Record<string, unknown>
  for (const key of Object.keys(t)) {
    if (!(SOURCE_KEYS as readonly string[]).includes(key)) fail(`${f}.${key}`, `unknown key (known: ${SOURCE_KEYS.join(', ')})`)
  }
  if (typeof t.sha256 !== 'string') fail(`${f}.sha256`, 'required: the SHA-256 of the file, 64 lowercase hex characters')
  const sha256 = t.sha256 as string
  if (!SHA256_RE.test(sha256)) fail(`${f}.sha256`, `"${sha256.slice(0, 80)}" is not 64 lowercase hex characters`)
  if ((t.url === undefined) === (t.path === undefined)) fail(f, 'needs exactly one of url or path')

  let location: SourceLocation
  let defaultName: string
  let uri: string | undefined
  if (t.path !== undefined) {
    if (typeof t.path !== 'string' || t.path === '' || t.path.includes('\0')) fail(`${f}.path`, 'expected a non-empty path')
    const path = resolve(baseDir, t.path as string)
    location = { kind: 'file', path }
    defaultName = basename(path)
  } else {
    if (typeof t.url !== 'string') fail(`${f}.url`, 'expected a string')
    let url: URL
    try {
      url = new URL(t.url as string)
    } catch {
      return fail(`${f}.url`, `"${String(t.url).slice(0, 200)}" is not a URL`)
    }
    if (url.protocol === 'file:') {
      const path = fileURLToPath(url)
      location = { kind: 'file', path }
      defaultName = basename(path)
    } else if (url.protocol === 'http:' || url.protocol === 'https:') {
      location = { kind: 'http', url: url.href }
      defaultName = decodeURIComponent(posix.basename(url.pathname))
      uri = url.href
    } else {
      return fail(`${f}.url`, `scheme ${url.protocol} not supported (file:, http:, https:)`)
    }
  }
  let dest: string
  if (t.dest !== undefined) {
    if (typeof t.dest !== 'string') fail(`${f}.dest`, 'expected a string')
    dest = checkInsidePath(t.dest as string, `${f}.dest`, fail)
  } else {
    if (defaultName === '' || defaultName === '.' || defaultName === '..') fail(`${f}.dest`, 'required: the source has no file name to default to')
    dest = checkInsidePath(defaultName, `${f}.dest`, fail)
  }
  return { location, sha256, dest, uri: uri ?? dest }
}

/**
 * The recipe's inputs digest: SHA-256 of the JCS form of everything that decides what the build
 * does — format version, sources by destination and digest (not by URL: the same bytes from
 * another mirror are the same input), argv, the recipe's env, SOURCE_DATE_EPOCH. The purl is
 * carried beside it in the attestation; outputs and timeout select and bound, they do not build.
 */
export function recipeInputsDigest(r: Recipe): string {
  return sha256Hex(canonicalJson(normalisedRecipe(r)))
}

export function normalisedRecipe(r: Recipe): Record<string, unknown> {
  return {
    format: `rbq-recipe/${RECIPE_FORMAT_VERSION}`,
    sources: r.sources.map((s) => ({ dest: s.dest, sha256: s.sha256 })),
    command: r.command,
    env: r.env,
    sourceDateEpoch: r.sourceDateEpoch
  }
}

/**
 * Best-effort line of a field for error messages: `key` at top level, `source[i].key` inside
 * the i-th [[source]] table, `env.NAME` in [env]. Undefined when the text is shaped otherwise.
 */
function lineOf(text: string, field: string): number | undefined {
  const lines = text.split('\n')
  const keyLine = (key: string, from: number, to: number): number | undefined => {
    const re = new RegExp(`^\\s*["']?${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}["']?\\s*=`)
    for (let n = from; n < to; n++) if (re.test(lines[n] ?? '')) return n + 1
    return undefined
  }
  const headers = lines.flatMap((l, n) => (/^\s*\[/.test(l) ? [n] : []))
  const tableEnd = (start: number) => headers.find((h) => h > start) ?? lines.length
  const m = /^source\[(\d+)\](?:\.(\w+))?$/.exec(field)
  if (m !== null) {
    const starts = lines.flatMap((l, n) => (/^\s*\[\[\s*source\s*\]\]/.test(l) ? [n] : []))
    const start = starts[Number(m[1])]
    if (start === undefined) return keyLine('source', 0, lines.length)
    return m[2] === undefined ? start + 1 : (keyLine(m[2], start + 1, tableEnd(start)) ?? start + 1)
  }
  const e = /^env\.(\w+)$/.exec(field)
  if (e !== null) {
    const start = lines.findIndex((l) => /^\s*\[\s*env\s*\]/.test(l))
    if (start !== -1) return keyLine(e[1] as string, start + 1, tableEnd(start))
    return keyLine('env', 0, lines.length)
  }
  const top = /^(\w+)/.exec(field)?.[1]
  if (top === undefined) return undefined
  return keyLine(top, 0, headers[0] ?? lines.length) ?? (lines.findIndex((l) => new RegExp(`^\\s*\\[\\s*${top}\\s*\\]`).test(l)) + 1 || undefined)
}
