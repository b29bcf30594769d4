/**
 * rebuilderd's package lists (https://github.com/kpcyrd/rebuilderd), as served by its HTTP API:
 *
 *   v0  GET /api/v0/pkgs/list      a JSON array of `PkgRelease`
 *       { name, version, status: "GOOD"|"BAD"|"UNKWN", distro, suite, architecture,
 *         artifact_url (older servers: url), build_id?, built_at?, has_diffoscope?, has_attestation? }
 *   v1  GET /api/v1/packages/binary  a page `{ total, records: [BinaryPackage] }`
 *       { id, name, version, distribution, release, component, architecture, url,
 *         status: "GOOD"|"BAD"|null, build_id, built_at?, ... }
 *
 * Rows are *binary* packages. Neither version carries the artifact's digest; an optional
 * `sha256` (or `digest: { sha256 }`) per row is honoured when an exporter adds one. Unknown
 * fields are ignored (rebuilderd adds fields over time); the fields we use are checked strictly
 * and every error names its row.
 */
import { parseJson, RbqError } from '../../protocol/index.js'
import { isSha256 } from '../apt/binary-package.js'

export const REBUILDERD_STATUSES = ['GOOD', 'BAD', 'FAIL', 'UNKWN'] as const
export type RebuilderdStatus = (typeof REBUILDERD_STATUSES)[number]

export type RebuilderdApiVersion = 'v0' | 'v1'

/** One binary package row, normalised across API versions. */
export interface RebuilderdArtifact {
  name: string
  version: string
  architecture: string
  status: RebuilderdStatus
  distribution: string
  /** v0 `suite`, v1 `release` (may be empty). */
  suite: string
  /** URL of the archive's .deb (what rebuilderd compared with). */
  url: string | undefined
  buildId: number | undefined
  builtAt: Date | undefined
  sha256: string | undefined
}

export interface RebuilderdList {
  api: RebuilderdApiVersion
  artifacts: RebuilderdArtifact[]
}

/** A rebuilderd list is shallow; anything deeper than this is not one. */
const MAX_DEPTH = 8
const NAME_RE = /^[a-z0-9][a-z0-9+.-]*$/
const VERSION_RE = /^(?:[0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~-]*$/
const ARCH_RE = /^[a-z0-9][a-z0-9-]*$/

function fail(field: string, message: string): never {
  throw new RbqError('SCHEMA_INVALID', `${field}: ${message}`, { field })
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function str(row: Record<string, unknown>, key: string, at: string, re?: RegExp): string {
  const v = row[key]
  if (typeof v !== 'string' || v === '' || v.length > 512) fail(`${at}.${key}`, 'expected a non-empty string')
  if (re !== undefined && !re.test(v)) fail(`${at}.${key}`, `${JSON.stringify(v.slice(0, 80))} is not a valid value`)
  return v
}

function optionalStr(row: Record<string, unknown>, key: string, at: string): string | undefined {
  const v = row[key]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string' || v.length > 4096) fail(`${at}.${key}`, 'expected a string')
  return v
}

/** GOOD/BAD/UNKWN as rebuilderd serialises them; v1 `null` = not built yet; any case accepted. */
function status(v: unknown, at: string): RebuilderdStatus {
  if (v === null || v === undefined) return 'UNKWN'
  if (typeof v !== 'string') fail(`${at}.status`, 'expected "GOOD", "BAD", "FAIL", "UNKWN" or null')
  const s = v.toUpperCase()
  if (s === 'UNKNOWN') return 'UNKWN'
  if (!(REBUILDERD_STATUSES as readonly string[]).includes(s)) fail(`${at}.status`, `unknown status ${JSON.stringify(v.slice(0, 40))}`)
  return s as RebuilderdStatus
}

/** rebuilderd timestamps are chrono NaiveDateTime (UTC, no zone): "2024-11-20T12:34:56.123456". */
function timestamp(v: unknown, at: string): Date | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?$/.test(v)) fail(`${at}.built_at`, 'expected a date-time')
  const iso = v.replace(' ', 'T').replace(/(\.\d{3})\d+/, '$1')
  const ms = Date.parse(/(Z|[+-]\d{2}:?\d{2})$/.test(iso) ? iso : `${iso}Z`)
  if (Number.isNaN(ms)) fail(`${at}.built_at`, 'not a real date')
  return new Date(ms)
}

function digest(row: Record<string, unknown>, at: string): string | undefined {
  const flat = row.sha256
  const nested = isObject(row.digest) ? row.digest.sha256 : undefined
  const v = flat ?? nested
  if (v === undefined || v === null) return undefined
  const lower = typeof v === 'string' ? v.toLowerCase() : v
  if (!isSha256(lower)) fail(`${at}.${flat !== undefined ? 'sha256' : 'digest.sha256'}`, 'expected 64 hex characters')
  return lower
}

function artifactOf(row: unknown, at: string, api: RebuilderdApiVersion): RebuilderdArtifact {
  if (!isObject(row)) fail(at, 'expected an object')
  const buildId = row.build_id
  if (buildId !== undefined && buildId !== null && !Number.isSafeInteger(buildId)) fail(`${at}.build_id`, 'expected an integer')
  return {
    name: str(row, 'name', at, NAME_RE),
    version: str(row, 'version', at, VERSION_RE),
    architecture: str(row, 'architecture', at, ARCH_RE),
    status: status(row.status, at),
    distribution: (api === 'v0' ? optionalStr(row, 'distro', at) : optionalStr(row, 'distribution', at)) ?? '',
    suite: (api === 'v0' ? optionalStr(row, 'suite', at) : optionalStr(row, 'release', at)) ?? '',
    url: optionalStr(row, 'artifact_url', at) ?? optionalStr(row, 'url', at),
    buildId: typeof buildId === 'number' ? buildId : undefined,
    builtAt: timestamp(row.built_at, at),
    sha256: digest(row, at)
  }
}

/**
 * Parses a v0 list (array) or a v1 page (`{ total, records }`). A v1 page whose `total`
 * exceeds its records is accepted (one page of many) but reported through `total`.
 */
export function parseRebuilderdList(text: string, source = 'rebuilderd list'): RebuilderdList & { total: number } {
  const value = parseJson(text, source, MAX_DEPTH)
  if (Array.isArray(value)) {
    // v1 rows carry `distribution`; v0 rows carry `distro`.
    const api: RebuilderdApiVersion = isObject(value[0]) && 'distribution' in value[0] ? 'v1' : 'v0'
    const artifacts = value.map((row, i) => artifactOf(row, `${source}[${i}]`, api))
    return { api, artifacts, total: artifacts.length }
  }
  if (isObject(value) && Array.isArray(value.records)) {
    const total = value.total
    if (total !== undefined && (!Number.isSafeInteger(total) || (total as number) < 0)) fail(`${source}.total`, 'expected a non-negative integer')
    const artifacts = value.records.map((row, i) => artifactOf(row, `${source}.records[${i}]`, 'v1'))
    return { api: 'v1', artifacts, total: typeof total === 'number' ? Math.max(total, artifacts.length) : artifacts.length }
  }
  fail(source, 'expected a rebuilderd v0 package list (a JSON array) or a v1 page ({ "total", "records": [...] })')
}
