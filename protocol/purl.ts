/**
 * Package URLs (purl) through packageurl-js — never parsed by hand — and the scope patterns
 * that delegations and trust roots use.
 */
import { PackageURL } from 'packageurl-js'
import { remember } from './bounded-cache.js'
import { RbqError } from './errors.js'

export const MAX_PURL_LENGTH = 512

export interface ParsedPurl {
  readonly type: string
  readonly namespace: string | undefined
  readonly name: string
  readonly version: string | undefined
  readonly qualifiers: Readonly<Record<string, string>>
  /** `pkg:type/namespace/name`: the part scope patterns match against. */
  readonly base: string
  readonly canonical: string
}

export function parsePurl(text: unknown, field = 'package'): ParsedPurl {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_PURL_LENGTH) {
    throw new RbqError('PURL_INVALID', `${field}: expected a package URL of at most ${MAX_PURL_LENGTH} characters`, { field })
  }
  let p: PackageURL
  try {
    p = PackageURL.fromString(text)
  } catch (e) {
    throw new RbqError('PURL_INVALID', `${field}: ${(e as Error).message}`, { field })
  }
  const base = new PackageURL(p.type, p.namespace, p.name, undefined, undefined, undefined).toString()
  return {
    type: p.type,
    namespace: p.namespace ?? undefined,
    name: p.name,
    version: p.version ?? undefined,
    qualifiers: { ...(p.qualifiers ?? {}) },
    base,
    canonical: p.toString()
  }
}

/** Canonical spelling of a purl typed by a user (normalises case and escaping). */
export function canonicalPurl(text: string, field = 'package'): string {
  return parsePurl(text, field).canonical
}

/**
 * Wire purls that passed the check, by text. Every rebuilder of a package attests the same purl,
 * and parsing one costs about a tenth of a signature check. Bounded, oldest evicted first; only
 * accepted purls are cached, so a refusal always runs the full check.
 */
const ACCEPTED_PURL_CACHE_MAX = 20_000
const acceptedPurls = new Map<string, ParsedPurl>()

/** On the wire a purl must already be canonical, so equal packages have equal strings. */
export function checkWirePurl(text: string, field: string): ParsedPurl {
  const cached = acceptedPurls.get(text)
  if (cached !== undefined) return cached
  const p = parsePurl(text, field)
  if (p.canonical !== text) {
    throw new RbqError('PURL_INVALID', `${field}: purl is not canonical (expected "${p.canonical}")`, { field })
  }
  const accepted = Object.freeze({ ...p, qualifiers: Object.freeze(p.qualifiers) })
  remember(acceptedPurls, ACCEPTED_PURL_CACHE_MAX, text, accepted)
  return accepted
}

/**
 * Scope pattern: `pkg:` + type, optional namespace and name, where `*` matches any run of
 * characters (including `/`). It is matched against the purl's `pkg:type/namespace/name`
 * (version and qualifiers ignored). Examples: `pkg:deb/debian/*`, `pkg:deb/debian/lib*`,
 * `pkg:generic/myapp`, `*` (everything).
 */
const PATTERN_RE = /^(?:\*|pkg:[a-z0-9.+*-]+(?:\/[A-Za-z0-9._~%+*:-]+){0,8})$/
export const MAX_PATTERN_LENGTH = 256

export function checkPattern(pattern: unknown, field = 'scope'): string {
  if (typeof pattern !== 'string' || pattern.length > MAX_PATTERN_LENGTH || !PATTERN_RE.test(pattern)) {
    throw new RbqError('PATTERN_INVALID', `${field}: "${String(pattern).slice(0, 80)}" is not a purl scope pattern like "pkg:deb/debian/*"`, { field })
  }
  return pattern
}

/** Glob match with `*` only; linear-time two-pointer algorithm (no regex backtracking). */
function globMatch(pattern: string, text: string): boolean {
  let p = 0
  let t = 0
  let star = -1
  let mark = 0
  while (t < text.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === text[t]) {
      p++
      t++
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++
      mark = t
    } else if (star !== -1) {
      p = star + 1
      t = ++mark
    } else {
      return false
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++
  return p === pattern.length
}

export function patternMatches(pattern: string, purl: ParsedPurl): boolean {
  return globMatch(pattern, purl.base)
}

export function scopeMatches(scope: readonly string[], purl: ParsedPurl): boolean {
  return scope.some((pattern) => patternMatches(pattern, purl))
}
