/**
 * The verdict for one file in hand (package purl, artifact name, sha256 H), DESIGN.md §4.
 * Pure functions over plain arrays of verified attestation frames; the caller (ConsensusState,
 * or the node over its LevelDB indexes) supplies a superset: statements about other packages,
 * other artifacts or from untrusted keys are ignored here.
 *
 * A trusted key's claim about (package, artifact):
 *   - its statement with the highest `builder.seq` among those for that package whose `subject`
 *     names the artifact — whatever the `outcome`: `reproduced`, `mismatch` and `built` all claim
 *     "I built this artifact and got the subject digest" (for `mismatch`, the builder's own
 *     rebuilt digest X; its upstream digest is what it compared with, and is not its claim);
 *   - `failed` statements (subject = the source descriptor) concern the whole package. They never
 *     supersede a digest claim (a failure says nothing about what the source builds to); a key
 *     with no digest claim but a failure for the package counts as "failed".
 *   - a key that signed two different statements with one seq here is dropped (equivocation).
 * Counting (`count = "party"`): support(D) is the size of a maximum matching between keys claiming
 * D and the roots that reach them, so a key counts for one party and a party counts once —
 * however many of its keys agree — and the count never depends on the order of [[root]] entries
 * (and never grows when a root or a delegation is removed). `count = "key"`: keys are counted.
 * Rules, with k = threshold, reached = digests with support ≥ k, dissent(D) = units claiming ≠ D:
 *   unknown      no trusted claim and no trusted failure;
 *   failed       no trusted claim, only failures;
 *   conflict     two digests reach k; or the one reached digest has dissent > max_dissent;
 *                or nothing reaches k and dissent(H) > max_dissent;
 *   reproduced   H reached, dissent(H) ≤ max_dissent;
 *   mismatch     X ≠ H reached, dissent(X) ≤ max_dissent (the tampering alarm);
 *   insufficient nothing reached, dissent(H) ≤ max_dissent (have/need in the evidence).
 */
import {
  parsePurl,
  RbqError,
  Sha256Hex,
  sha256Hex,
  type AttestationFrame,
  type KeyId,
  type Outcome,
  type ParsedPurl
} from '../../protocol/index.js'
import type { EffectiveBuilder, TrustGraph } from './delegation-graph.js'
import type { CountMode } from './policy.js'

export const VERDICT_STATUSES = ['reproduced', 'mismatch', 'conflict', 'insufficient', 'failed', 'unknown'] as const
export type VerdictStatus = (typeof VERDICT_STATUSES)[number]

/**
 * Worst first, for a package version and for batches: a tampering alarm, then inconsistent
 * evidence, then builds that do not finish, then no evidence, then too little, then success.
 */
export const VERDICT_SEVERITY: readonly VerdictStatus[] = ['mismatch', 'conflict', 'failed', 'unknown', 'insufficient', 'reproduced']

/** Flips kept per key in the evidence (the newest ones). */
const MAX_FLIPS_PER_KEY = 8

export interface ArtifactQuery {
  readonly package: string
  readonly artifact: string
  readonly sha256: string
}

export interface PartyKey {
  readonly party: string
  readonly keyid: KeyId
}

export interface KeyClaim {
  readonly keyid: KeyId
  /** Primary party (shortest chain); `parties` lists every root that reaches the key. */
  readonly party: string
  readonly parties: readonly string[]
  /** Subject digest claimed, or null when the key only reports build failures. */
  readonly sha256: string | null
  readonly outcome: Outcome
  readonly seq: number
  /** Inputs digest of the statement behind the claim. */
  readonly inputs: string
  readonly frame: string
}

export interface DigestSupport {
  readonly sha256: string
  readonly have: number
  /** Counted (party, key) pairs: the matching in party mode, every key in key mode. */
  readonly support: readonly PartyKey[]
}

export interface ClaimAt {
  readonly sha256: string
  readonly seq: number
  readonly inputs: string
  readonly frame: string
}

/** A trusted key's newer statement reports another digest: an unstable build, not a lie. */
export interface Flip {
  readonly keyid: KeyId
  readonly party: string
  readonly from: ClaimAt
  readonly to: ClaimAt
  /** Same inputs digest: the build itself is unstable (not a changed environment). */
  readonly sameInputs: boolean
}

export interface VerdictEvidence {
  readonly package: string
  readonly artifact: string
  readonly sha256: string
  readonly count: CountMode
  readonly need: number
  readonly have: number
  /** Units (parties or keys) whose claim differs from the file's digest. */
  readonly dissenting: number
  readonly maxDissent: number
  /** Counted supporters of the file's digest. */
  readonly support: readonly PartyKey[]
  /** Other digests claimed, with their own counted supporters; sorted by digest. */
  readonly dissent: readonly DigestSupport[]
  /** Trusted keys that only report failures for this package. */
  readonly failed: readonly PartyKey[]
  /** Distinct inputs digests behind the claims of the file's digest. */
  readonly inputs: readonly string[]
  readonly flips: readonly Flip[]
  /** Trusted keys dropped because two of their statements here share a seq. */
  readonly equivocators: readonly KeyId[]
  /** One row per trusted key with a claim or a failure, sorted by keyid. */
  readonly claims: readonly KeyClaim[]
  /** Frame ids the verdict rests on, sorted. */
  readonly frames: readonly string[]
  /** The delegation walk hit its visit cap (some trusted keys may be missing). */
  readonly truncated: boolean
}

export interface Verdict {
  readonly status: VerdictStatus
  /** One line for humans. */
  readonly reason: string
  readonly evidence: VerdictEvidence
  /** sha256 of the canonical JSON of { status, reason, evidence }: changes iff the verdict does. */
  readonly evidenceHash: string
}

export interface PackageQuery {
  readonly package: string
  readonly artifacts: readonly { readonly name: string; readonly sha256: string }[]
}

export interface PackageVerdict {
  readonly package: string
  /** Worst of the artifacts' statuses (VERDICT_SEVERITY); `unknown` with no artifacts. */
  readonly status: VerdictStatus
  readonly reason: string
  /** Sorted by artifact name, then digest. */
  readonly artifacts: readonly Verdict[]
  readonly evidenceHash: string
}

/** Candidate statements for one artifact (a superset is fine); failures of the package included. */
export type AttestationSource = (query: { readonly package: string; readonly artifact: string }) => readonly AttestationFrame[]

const SHA256_RE = new RegExp(Sha256Hex.pattern as string)
const ARTIFACT_RE = /^(?!\.{1,2}$)[^/\\\u0000-\u001f\u007f]{1,255}$/
const LONE_SURROGATE_RE = /\p{Cs}/u

/** Parsed purls of recent queries: a batch asks about the same package once per artifact. */
const PURL_MEMO_MAX = 10_000
const purlMemo = new Map<string, ParsedPurl>()
function parsePurlMemo(text: string): ParsedPurl {
  let p = purlMemo.get(text)
  if (p === undefined) {
    p = parsePurl(text, 'package')
    if (purlMemo.size >= PURL_MEMO_MAX) purlMemo.clear()
    purlMemo.set(text, p)
  }
  return p
}

function normalize(q: ArtifactQuery): { query: ArtifactQuery; purl: ParsedPurl } {
  const sha256 = typeof q.sha256 === 'string' ? q.sha256.toLowerCase() : ''
  if (!SHA256_RE.test(sha256)) throw new RbqError('SCHEMA_INVALID', 'sha256: expected 64 hex characters', { field: 'sha256' })
  if (typeof q.artifact !== 'string' || !ARTIFACT_RE.test(q.artifact) || LONE_SURROGATE_RE.test(q.artifact)) {
    throw new RbqError('SCHEMA_INVALID', 'artifact: expected a file name (no "/", no control characters)', { field: 'artifact' })
  }
  if (typeof q.package !== 'string') throw new RbqError('PURL_INVALID', 'package: expected a package URL', { field: 'package' })
  const purl = parsePurlMemo(q.package)
  return { query: { package: purl.canonical, artifact: q.artifact, sha256 }, purl }
}

/** Canonical purl, lowercase digest, plausible file name; typed errors naming the field. */
export function normalizeQuery(q: ArtifactQuery): ArtifactQuery {
  return normalize(q).query
}

/**
 * Every property name in a Verdict (and the PackageVerdict hash input), sorted by UTF-16 code
 * units as JCS sorts them. Add new evidence fields here: a unit test compares evidenceJson with
 * protocol canonicalJson on verdicts that use every field, so a forgotten name fails loudly.
 */
const EVIDENCE_KEYS = [
  ...['status', 'reason', 'evidence', 'artifacts'],
  ...['package', 'artifact', 'sha256', 'count', 'need', 'have', 'dissenting', 'maxDissent', 'support', 'dissent', 'failed', 'inputs', 'flips', 'equivocators', 'claims', 'frames', 'truncated'],
  ...['party', 'keyid', 'parties', 'outcome', 'seq', 'frame', 'from', 'to', 'sameInputs']
].sort()

/**
 * JCS (RFC 8785) of a verdict, natively: JSON.stringify with a property list emits the listed
 * keys in list order at every depth, which is JCS order here, and the values are well-formed
 * strings, safe integers, booleans, null and arrays, which JSON.stringify writes as JCS does.
 * Several times faster than a generic canonicaliser; evidence hashing dominated batch verdicts.
 */
export function evidenceJson(value: unknown): string {
  return JSON.stringify(value, EVIDENCE_KEYS)
}

export function worstOf(statuses: Iterable<VerdictStatus>): VerdictStatus | undefined {
  let worst: number | undefined
  for (const s of statuses) {
    const i = VERDICT_SEVERITY.indexOf(s)
    if (worst === undefined || i < worst) worst = i
  }
  return worst === undefined ? undefined : VERDICT_SEVERITY[worst]
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)
const byPartyKey = (a: PartyKey, b: PartyKey) => cmp(a.party, b.party) || cmp(a.keyid, b.keyid)
const short = (digest: string) => digest.slice(0, 12)

interface Counted {
  keyid: KeyId
  builder: EffectiveBuilder
}

/**
 * Maximum matching keys ↔ roots (Kuhn's augmenting paths). Keys are tried in keyid order and
 * roots in policy order, so the pairs shown are deterministic; the size is order-free.
 */
function matchParties(keys: readonly Counted[], roots: readonly { name: string }[]): PartyKey[] {
  const rootToKey = new Map<number, number>()
  const distinctRoots = new Set<number>()
  for (const k of keys) for (const r of k.builder.rootIndexes) distinctRoots.add(r)
  const augment = (i: number, seen: Set<number>): boolean => {
    for (const r of keys[i]!.builder.rootIndexes) {
      if (seen.has(r)) continue
      seen.add(r)
      const holder = rootToKey.get(r)
      if (holder === undefined || augment(holder, seen)) {
        rootToKey.set(r, i)
        return true
      }
    }
    return false
  }
  for (let i = 0; i < keys.length && rootToKey.size < distinctRoots.size; i++) augment(i, new Set())
  return [...rootToKey].map(([r, i]) => ({ party: roots[r]!.name, keyid: keys[i]!.keyid })).sort(byPartyKey)
}

function countUnits(keys: readonly Counted[], mode: CountMode, roots: readonly { name: string }[]): PartyKey[] {
  if (mode === 'key') return keys.map((k) => ({ party: k.builder.party, keyid: k.keyid })).sort(byPartyKey)
  return matchParties(keys, roots)
}

interface KeyStatements {
  builder: EffectiveBuilder
  /** Statements naming the artifact, by seq. */
  digests: { seq: number; sha256: string; frame: AttestationFrame }[]
  failures: AttestationFrame[]
  payloadBySeq: Map<number, string>
  equivocates: boolean
}

/** The verdict for one file. `attestations` may hold anything; see the module comment. */
export function computeVerdict(trust: TrustGraph, attestations: readonly AttestationFrame[], query: ArtifactQuery): Verdict {
  const { query: q, purl } = normalize(query)
  return evaluate(trust, attestations, q, purl)
}

/** Batch of verdicts in the order asked; each package's builder set is computed once. */
export function computeVerdicts(trust: TrustGraph, source: AttestationSource, queries: readonly ArtifactQuery[]): Verdict[] {
  return queries.map((query) => {
    const { query: q, purl } = normalize(query)
    return evaluate(trust, source({ package: q.package, artifact: q.artifact }), q, purl)
  })
}

/** A whole package version: every artifact in hand, worst-of (VERDICT_SEVERITY). */
export function computePackageVerdict(trust: TrustGraph, attestations: readonly AttestationFrame[], query: PackageQuery): PackageVerdict {
  const verdicts = query.artifacts
    .map((a) => computeVerdict(trust, attestations, { package: query.package, artifact: a.name, sha256: a.sha256 }))
    .sort((a, b) => cmp(a.evidence.artifact, b.evidence.artifact) || cmp(a.evidence.sha256, b.evidence.sha256))
  return packageVerdictOf(parsePurlMemo(query.package).canonical, verdicts)
}

/** Combines per-artifact verdicts of one package (also used by ConsensusState). */
export function packageVerdictOf(pkg: string, verdicts: readonly Verdict[]): PackageVerdict {
  const status = worstOf(verdicts.map((v) => v.status)) ?? 'unknown'
  const worst = verdicts.find((v) => v.status === status)
  const reason =
    worst === undefined
      ? `no artifacts of ${pkg} were given`
      : `${worst.evidence.artifact}: ${worst.reason}` + (verdicts.length > 1 ? ` (worst of ${verdicts.length} artifacts)` : '')
  const evidenceHash = sha256Hex(evidenceJson({ package: pkg, status, reason, artifacts: verdicts.map((v) => v.evidenceHash) }))
  return { package: pkg, status, reason, artifacts: verdicts, evidenceHash }
}

/** The engine proper, on a normalised query. */
function evaluate(trust: TrustGraph, attestations: readonly AttestationFrame[], q: ArtifactQuery, purl: ParsedPurl): Verdict {
  const policy = trust.policy
  const set = trust.buildersFor(purl)
  const perKey = new Map<KeyId, KeyStatements>()
  const seen = new Set<string>()
  for (const f of attestations) {
    const p = f.statement.predicate
    if (p.package !== q.package || seen.has(f.id)) continue
    const builder = set.builders.get(f.signer.keyid)
    if (builder === undefined) continue // untrusted for this package: never changes a verdict
    const isFailure = p.outcome === 'failed'
    const subject = isFailure ? undefined : f.statement.subject.find((s) => s.name === q.artifact)
    if (!isFailure && subject === undefined) continue
    seen.add(f.id)
    let ks = perKey.get(builder.keyid)
    if (ks === undefined) {
      ks = { builder, digests: [], failures: [], payloadBySeq: new Map(), equivocates: false }
      perKey.set(builder.keyid, ks)
    }
    const prior = ks.payloadBySeq.get(p.builder.seq)
    if (prior !== undefined && prior !== f.payloadDigest) ks.equivocates = true
    ks.payloadBySeq.set(p.builder.seq, f.payloadDigest)
    if (subject !== undefined) ks.digests.push({ seq: p.builder.seq, sha256: subject.digest.sha256, frame: f })
    else ks.failures.push(f)
  }

  const claims: KeyClaim[] = []
  const equivocators: KeyId[] = []
  const failed: PartyKey[] = []
  const flips: Flip[] = []
  const frames = new Set<string>()
  const byDigest = new Map<string, Counted[]>()
  const claimInputs = new Map<KeyId, string>()
  for (const keyid of [...perKey.keys()].sort()) {
    const ks = perKey.get(keyid)!
    if (ks.equivocates) {
      equivocators.push(keyid)
      continue
    }
    const { builder } = ks
    if (ks.digests.length > 0) {
      ks.digests.sort((a, b) => a.seq - b.seq)
      const current = ks.digests[ks.digests.length - 1]!
      const p = current.frame.statement.predicate
      claims.push({ keyid, party: builder.party, parties: builder.parties, sha256: current.sha256, outcome: p.outcome, seq: current.seq, inputs: p.inputs.digest.sha256, frame: current.frame.id })
      frames.add(current.frame.id)
      claimInputs.set(keyid, p.inputs.digest.sha256)
      let list = byDigest.get(current.sha256)
      if (list === undefined) byDigest.set(current.sha256, (list = []))
      list.push({ keyid, builder })
      flips.push(...flipsOf(keyid, builder.party, ks.digests))
    } else {
      let latest = ks.failures[0]!
      for (const f of ks.failures) if (f.statement.predicate.builder.seq > latest.statement.predicate.builder.seq) latest = f
      const p = latest.statement.predicate
      claims.push({ keyid, party: builder.party, parties: builder.parties, sha256: null, outcome: p.outcome, seq: p.builder.seq, inputs: p.inputs.digest.sha256, frame: latest.id })
      frames.add(latest.id)
      failed.push({ party: builder.party, keyid })
    }
  }

  const roots = policy.roots
  const k = policy.threshold
  const supportOf = (digest: string) => countUnits(byDigest.get(digest) ?? [], policy.count, roots)
  const othersThan = (digest: string) => [...byDigest].filter(([d]) => d !== digest).flatMap(([, keys]) => keys).sort((a, b) => cmp(a.keyid, b.keyid))
  const dissentCount = (digest: string) => countUnits(othersThan(digest), policy.count, roots).length

  const support = supportOf(q.sha256)
  const dissent: DigestSupport[] = [...byDigest.keys()]
    .filter((d) => d !== q.sha256)
    .sort()
    .map((d) => {
      const s = supportOf(d)
      return { sha256: d, have: s.length, support: s }
    })
  const dissenting = dissentCount(q.sha256)
  const inputs = [...new Set((byDigest.get(q.sha256) ?? []).map((c) => claimInputs.get(c.keyid)!))].sort()

  const unit = (n: number) => (policy.count === 'party' ? (n === 1 ? 'party' : 'parties') : n === 1 ? 'key' : 'keys')
  const have = support.length
  const names = (pk: readonly PartyKey[]) => [...new Set(pk.map((x) => (policy.count === 'party' ? x.party : `${x.party}/${short(x.keyid)}`)))].join(', ')
  const tolerance = `max_dissent ${policy.maxDissent}`
  let status: VerdictStatus
  let reason: string
  if (byDigest.size === 0) {
    if (failed.length > 0) {
      status = 'failed'
      reason = `trusted builders only report build failures for ${q.package} (${failed.length} ${failed.length === 1 ? 'key' : 'keys'}: ${names(failed)})`
    } else {
      status = 'unknown'
      reason = `no trusted statement about ${q.artifact} in ${q.package}`
    }
  } else {
    const reached = [...(have >= k ? [{ sha256: q.sha256, have }] : []), ...dissent.filter((d) => d.have >= k)]
    if (reached.length >= 2) {
      status = 'conflict'
      reason = `trusted ${unit(2)} disagree: ${reached.map((r) => `${short(r.sha256)} (${r.have})`).join(' and ')} each reach the threshold ${k}`
    } else if (reached.length === 1 && reached[0]!.sha256 === q.sha256) {
      if (dissenting <= policy.maxDissent) {
        status = 'reproduced'
        reason = `${have} ${unit(have)} rebuilt ${short(q.sha256)} (${names(support)}; ${k} needed)` + (dissenting > 0 ? `; ${dissenting} dissent, within ${tolerance}` : '')
      } else {
        status = 'conflict'
        reason = `${have} ${unit(have)} rebuilt ${short(q.sha256)} but ${dissenting} ${unit(dissenting)} report other digests (${tolerance})`
      }
    } else if (reached.length === 1) {
      const x = reached[0]!
      const against = dissentCount(x.sha256)
      if (against <= policy.maxDissent) {
        status = 'mismatch'
        reason = `${x.have} ${unit(x.have)} rebuilt ${short(x.sha256)} for ${q.artifact}, not ${short(q.sha256)}: this file is not what its source builds to`
      } else {
        status = 'conflict'
        reason = `${x.have} ${unit(x.have)} rebuilt ${short(x.sha256)} but ${against} ${unit(against)} report other digests (${tolerance})`
      }
    } else if (dissenting <= policy.maxDissent) {
      status = 'insufficient'
      reason = `${have} of ${k} ${unit(k)} rebuilt ${short(q.sha256)}` + (have > 0 ? ` (${names(support)})` : '') + (dissenting > 0 ? `; ${dissenting} dissent, within ${tolerance}` : '')
    } else {
      status = 'conflict'
      reason = `${dissenting} ${unit(dissenting)} report digests other than ${short(q.sha256)} (${tolerance}); ${have} of ${k} attest it`
    }
  }

  const evidence: VerdictEvidence = {
    package: q.package,
    artifact: q.artifact,
    sha256: q.sha256,
    count: policy.count,
    need: k,
    have,
    dissenting,
    maxDissent: policy.maxDissent,
    support,
    dissent,
    failed: failed.sort(byPartyKey),
    inputs,
    flips,
    equivocators,
    claims,
    frames: [...frames].sort(),
    truncated: set.truncated
  }
  return { status, reason, evidence, evidenceHash: sha256Hex(evidenceJson({ status, reason, evidence })) }
}

/** Consecutive statements (by seq) of one key that report different digests; newest kept. */
function flipsOf(keyid: KeyId, party: string, digests: readonly { seq: number; sha256: string; frame: AttestationFrame }[]): Flip[] {
  const out: Flip[] = []
  for (let i = 1; i < digests.length; i++) {
    const a = digests[i - 1]!
    const b = digests[i]!
    if (a.sha256 === b.sha256) continue
    const at = (x: typeof a): ClaimAt => ({ sha256: x.sha256, seq: x.seq, inputs: x.frame.statement.predicate.inputs.digest.sha256, frame: x.frame.id })
    const from = at(a)
    const to = at(b)
    out.push({ keyid, party, from, to, sameInputs: from.inputs === to.inputs })
  }
  return out.slice(-MAX_FLIPS_PER_KEY)
}
