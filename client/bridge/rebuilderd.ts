/**
 * rebuilderd's package lists (https://github.com/kpcyrd/rebuilderd), as served by its HTTP API
 * (field names from rebuilderd-common's `api::v0::PkgRelease` and `api::v1::BinaryPackage`):
 *
 *   v0  GET /api/v0/pkgs/list      a JSON array of `PkgRelease`
 *       { name, version, status: "GOOD"|"BAD"|"UNKWN", distro, suite, architecture,
 *         artifact_url (older servers: url), build_id?, built_at?, has_diffoscope, has_attestation }
 *   v1  GET /api/v1/packages/binary  a page `ResultPage { total, records: [BinaryPackage] }`
 *       { id, name, version, distribution, release?, component?, architecture, url,
 *         status: "GOOD"|"BAD"|"UNKWN"|null, build_id?, artifact_id?, diffoscope_log_id?,
 *         attestation_log_id?, last_seen, seen_in_last_sync }
 *
 * Rows are *binary* packages. Neither version carries the artifact's digest; the signed in-toto
 * link a row's attestation points to does (client/bridge/in-toto-link.ts). An optional `sha256`
 * (or `digest: { sha256 }`) per row is honoured when an exporter adds one. Unknown fields are
 * ignored (rebuilderd adds fields over time).
 *
 * One instance often rebuilds several distributions (Arch `x86_64`, Fedora `PackageKit`, …) whose
 * rows do not fit Debian's name/version/architecture rules: the distribution is looked at first
 * and other distributions' rows are skipped and counted without being validated. A Debian row
 * that does not validate is skipped and counted too, its problem kept (the first few are shown):
 * one odd row never aborts the import. Only a body that is not a rebuilderd list at all is an error.
 */
import { parseJson, RbqError } from '../../protocol/index.js'
import { isSha256 } from '../../debian/binary-package.js'

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
  /** v1 row id (the paging cursor); undefined in v0. */
  id: number | undefined
  buildId: number | undefined
  /** v1 `artifact_id`: with buildId it names the attestation. */
  artifactId: number | undefined
  /** v1 `attestation_log_id` set, or v0 `has_attestation`. */
  hasAttestation: boolean
  builtAt: Date | undefined
  sha256: string | undefined
}

/** Why a row was left out before planning. */
export const ROW_SKIP_REASONS = ['other-distribution', 'invalid-row'] as const
export type RowSkipReason = (typeof ROW_SKIP_REASONS)[number]

export interface RebuilderdList {
  api: RebuilderdApiVersion
  artifacts: RebuilderdArtifact[]
  /** Every row of the body, kept or not. */
  rows: number
  /** v1: the server's `total` for the whole query; v0: the row count. */
  total: number
  /** v1: the largest row id on this page (the next page's `after`); rows skipped count too. */
  lastId: number | undefined
  skipped: Partial<Record<RowSkipReason, number>>
  /** The first few invalid rows' problems, each naming its row and field. */
  problems: string[]
}

/** A rebuilderd list is shallow; anything deeper than this is not one. */
const MAX_DEPTH = 8
const MAX_PROBLEMS_KEPT = 5
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

function optionalId(row: Record<string, unknown>, key: string, at: string): number | undefined {
  const v = row[key]
  if (v === undefined || v === null) return undefined
  if (!Number.isSafeInteger(v) || (v as number) < 0) fail(`${at}.${key}`, 'expected a non-negative integer')
  return v as number
}

/** GOOD/BAD/FAIL/UNKWN as rebuilderd serialises them; v1 `null` = not built yet; any case accepted. */
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

/** The row's distribution as the server names it ('' when absent: exporters of Debian-only lists). */
function distributionOf(row: Record<string, unknown>, api: RebuilderdApiVersion): unknown {
  return (api === 'v0' ? row.distro : row.distribution) ?? ''
}

function artifactOf(row: Record<string, unknown>, at: string, api: RebuilderdApiVersion): RebuilderdArtifact {
  const v0Attestation = row.has_attestation
  if (v0Attestation !== undefined && v0Attestation !== null && typeof v0Attestation !== 'boolean') fail(`${at}.has_attestation`, 'expected a boolean')
  const attestationLogId = optionalId(row, 'attestation_log_id', at)
  return {
    name: str(row, 'name', at, NAME_RE),
    version: str(row, 'version', at, VERSION_RE),
    architecture: str(row, 'architecture', at, ARCH_RE),
    status: status(row.status, at),
    distribution: (api === 'v0' ? optionalStr(row, 'distro', at) : optionalStr(row, 'distribution', at)) ?? '',
    suite: (api === 'v0' ? optionalStr(row, 'suite', at) : optionalStr(row, 'release', at)) ?? '',
    url: optionalStr(row, 'artifact_url', at) ?? optionalStr(row, 'url', at),
    id: optionalId(row, 'id', at),
    buildId: optionalId(row, 'build_id', at),
    artifactId: optionalId(row, 'artifact_id', at),
    hasAttestation: v0Attestation === true || attestationLogId !== undefined,
    builtAt: timestamp(row.built_at, at),
    sha256: digest(row, at)
  }
}

function collect(rows: unknown[], at: (i: number) => string, api: RebuilderdApiVersion): Omit<RebuilderdList, 'api' | 'total'> {
  const out: Omit<RebuilderdList, 'api' | 'total'> = { artifacts: [], rows: rows.length, lastId: undefined, skipped: {}, problems: [] }
  const skip = (r: RowSkipReason) => (out.skipped[r] = (out.skipped[r] ?? 0) + 1)
  rows.forEach((row, i) => {
    if (isObject(row) && Number.isSafeInteger(row.id)) out.lastId = Math.max(out.lastId ?? 0, row.id as number)
    // The distribution first: another distribution's rows need not fit Debian's rules.
    if (isObject(row)) {
      const d = distributionOf(row, api)
      if (typeof d === 'string' && d !== '' && d.toLowerCase() !== 'debian') return skip('other-distribution')
    }
    try {
      if (!isObject(row)) fail(at(i), 'expected an object')
      out.artifacts.push(artifactOf(row, at(i), api))
    } catch (e) {
      if (!(e instanceof RbqError)) throw e
      skip('invalid-row')
      if (out.problems.length < MAX_PROBLEMS_KEPT) out.problems.push(e.message)
    }
  })
  return out
}

/**
 * Parses a v0 list (array) or a v1 page (`{ total, records }`). Rows are judged one by one
 * (skipped and counted, see above); only a body of another shape throws.
 */
export function parseRebuilderdList(text: string, source = 'rebuilderd list'): RebuilderdList {
  const value = parseJson(text, source, MAX_DEPTH)
  if (Array.isArray(value)) {
    // v1 rows carry `distribution`; v0 rows carry `distro`.
    const api: RebuilderdApiVersion = isObject(value[0]) && 'distribution' in value[0] ? 'v1' : 'v0'
    const list = collect(value, (i) => `${source}[${i}]`, api)
    return { api, ...list, total: value.length }
  }
  if (isObject(value) && Array.isArray(value.records)) {
    const total = value.total
    if (total !== undefined && (!Number.isSafeInteger(total) || (total as number) < 0)) fail(`${source}.total`, 'expected a non-negative integer')
    const list = collect(value.records, (i) => `${source}.records[${i}]`, 'v1')
    return { api: 'v1', ...list, total: typeof total === 'number' ? Math.max(total, value.records.length) : value.records.length }
  }
  fail(source, 'expected a rebuilderd v0 package list (a JSON array) or a v1 page ({ "total", "records": [...] })')
}
