/**
 * The verdict for one file in hand (package purl, artifact name N, sha256 H). The rules and why
 * they are so: node/consensus/README.md (§Verdict). Pure functions over plain arrays of verified
 * attestation frames; the caller (ConsensusState, or the node over its LevelDB indexes) supplies
 * a superset: statements about other packages, other artifacts or from untrusted keys are
 * ignored here.
 *
 * A trusted key's claim about (package, N): among its statements for the package (not `failed`)
 * whose `subject` or `upstream` names N, the one with the highest `builder.seq`. It carries
 *   X   its subject digest for N (null when only its upstream names N: the rebuild made no file
 *       of that name, e.g. a binNMU rebuilt without its +bN version),
 *   U   its upstream digest for N (what the archive published; null without an archive),
 *   env predicate.environment ?? 'current', and the diff's cause tags and summary.
 * `failed` statements concern the whole package and never supersede a digest claim; a key with
 * only failures counts as failed. A key with two different statements under one seq here is
 * dropped (equivocation). A newer seq with another X is a flip (evidence only).
 *
 * Stance of a claim towards H:
 *   supports     X = H;
 *   contradicts  X ≠ H and (U ≠ null and U ≠ H: the archive published another file under this
 *                name, "published-other"; or env = faithful and X ≠ null: a rebuild in the
 *                archive's own environment got other bytes, "faithful-differs"; or U = null: no
 *                archive to compare with, the file is not what its source builds to,
 *                "not-from-source");
 *   drift        otherwise (U = H, env current): the archive published exactly H and today's
 *                toolchain builds other bytes (or no file of that name). Never dissent.
 * S, C, D = counted units (below) of supporters, contradictors, drifters; k = threshold,
 * m = max_dissent:
 *   unknown / failed   no claim (only failures → failed);
 *   conflict           S ≥ k and C ≥ k (both sides reach the threshold, whatever m);
 *   reproduced         S ≥ k, C ≤ m (else conflict);
 *   mismatch           S < k, C ≥ k, S ≤ m (else conflict): the tampering alarm;
 *   conflict           S < k, C < k, C > m;
 *   unreproducible     D ≥ k (S < k, C ≤ m): not reproducible with today's toolchain;
 *   insufficient       otherwise.
 * Counting (`count = "party"`): the size of a maximum matching between the keys of one stance
 * and the roots that reach them, so a key counts for one party and a party counts once, and the
 * count never depends on the order of [[root]] entries. `count = "key"`: keys are counted.
 */
import type { ArtifactQuery } from '../../protocol/api.js'
import {
  parsePurl,
  RbqError,
  Sha256Hex,
  sha256Hex,
  type AttestationFrame,
  type BuildEnvironment,
  type KeyId,
  type Outcome,
  type ParsedPurl
} from '../../protocol/index.js'
import type { EffectiveBuilder, TrustGraph } from './delegation-graph.js'
import type { CountMode, Policy } from './policy.js'

export const VERDICT_STATUSES = ['reproduced', 'unreproducible', 'mismatch', 'conflict', 'insufficient', 'failed', 'unknown'] as const
export type VerdictStatus = (typeof VERDICT_STATUSES)[number]

/**
 * Worst first, for a package version and for batches: a tampering alarm, then inconsistent
 * evidence, then builds that do not finish, then no evidence, then too little, then honest
 * rebuilds that got other bytes with today's toolchain, then success.
 */
export const VERDICT_SEVERITY: readonly VerdictStatus[] = ['mismatch', 'conflict', 'failed', 'unknown', 'insufficient', 'unreproducible', 'reproduced']

/** How a claim stands towards the file's digest H (module comment). */
export const CLAIM_STANCES = ['supports', 'contradicts', 'drift'] as const
export type ClaimStance = (typeof CLAIM_STANCES)[number]

/** Why a claim contradicts H (module comment); the order is the precedence when several apply. */
export type Contradiction = 'published-other' | 'faithful-differs' | 'not-from-source'

/** Characters of a claim's diff summary kept in the evidence (the frame has all of it). */
export const CLAIM_SUMMARY_MAX = 300

/** Flips kept per key in the evidence (the newest ones). */
const MAX_FLIPS_PER_KEY = 8

/** The question (protocol/api.ts): this sha256, as this artifact of this package. */
export type { ArtifactQuery }

export interface PartyKey {
  readonly party: string
  readonly keyid: KeyId
}

export interface KeyClaim {
  readonly keyid: KeyId
  /** Primary party (shortest chain); `parties` lists every root that reaches the key. */
  readonly party: string
  readonly parties: readonly string[]
  /** X: the subject digest for the artifact; null when the rebuild made no file of this name, or the key only reports failures. */
  readonly sha256: string | null
  /** U: the upstream (archive) digest the builder saw for this name, or null. */
  readonly upstream: string | null
  readonly outcome: Outcome
  readonly environment: BuildEnvironment
  /** Towards the file's digest; null for a key that only reports failures. */
  readonly stance: ClaimStance | null
  /** The statement's diff cause tags (e.g. build-id, changelog), sorted. */
  readonly tags: readonly string[]
  /** The first CLAIM_SUMMARY_MAX characters of the diff summary, or null without a diff. */
  readonly summary: string | null
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
  /** X at that seq (null: no file of this name in that rebuild). */
  readonly sha256: string | null
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
  /** S: counted supporters of the file's digest. */
  readonly have: number
  /** C: counted units whose claim contradicts the file's digest (only these are dissent). */
  readonly dissenting: number
  /** D: counted units that saw the archive publish this file and rebuilt other bytes in a current environment (drift, never dissent). */
  readonly drifted: number
  readonly maxDissent: number
  /** Counted supporters of the file's digest. */
  readonly support: readonly PartyKey[]
  /** Other digests rebuilt (any stance), with their own counted claimants; sorted by digest. */
  readonly dissent: readonly DigestSupport[]
  /** Trusted keys that only report failures for this package. */
  readonly failed: readonly PartyKey[]
  /** Distinct inputs digests behind the claims of the file's digest. */
  readonly inputs: readonly string[]
  /** Cause tags of the contradicting and drifted claims, sorted, each once. */
  readonly tags: readonly string[]
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

/**
 * Candidate statements for one artifact (a superset is fine): those whose subject or upstream
 * names it (artifactNamesOf), and the package's failures.
 */
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
  ...['package', 'artifact', 'sha256', 'count', 'need', 'have', 'dissenting', 'drifted', 'maxDissent', 'support', 'dissent', 'failed', 'inputs', 'tags', 'flips', 'equivocators', 'claims', 'frames', 'truncated'],
  ...['party', 'keyid', 'parties', 'upstream', 'outcome', 'environment', 'stance', 'summary', 'seq', 'frame', 'from', 'to', 'sameInputs']
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
  return [...rootToKey].map(([r, i]) => ({ keyid: keys[i]!.keyid, party: roots[r]!.name })).sort(byPartyKey)
}

function countUnits(keys: readonly Counted[], mode: CountMode, roots: readonly { name: string }[]): PartyKey[] {
  if (mode === 'key') return keys.map((k) => ({ keyid: k.keyid, party: k.builder.party })).sort(byPartyKey)
  return matchParties(keys, roots)
}

interface NamedStatement {
  seq: number
  /** X: subject digest for the artifact, or null. */
  sha256: string | null
  /** U: upstream digest for the artifact, or null. */
  upstream: string | null
  frame: AttestationFrame
}

interface KeyStatements {
  builder: EffectiveBuilder
  /** Statements whose subject or upstream names the artifact. */
  named: NamedStatement[]
  failures: AttestationFrame[]
  payloadBySeq: Map<number, string>
  equivocates: boolean
}

/**
 * The artifact names a statement speaks about: its subject and upstream names (a rebuild that
 * made no file of an upstream name still says something about it); none for a failure, which
 * concerns every artifact of its package. Indexes and candidate sources use this one rule.
 */
export function artifactNamesOf(frame: AttestationFrame): string[] {
  const { subject, predicate } = frame.statement
  if (predicate.outcome === 'failed') return []
  const names = new Set(subject.map((s) => s.name))
  for (const u of predicate.upstream) names.add(u.name)
  return [...names]
}

/** A claim's stance towards H and, when it contradicts, why (module comment). */
export function stanceOf(
  claim: { readonly sha256: string | null; readonly upstream: string | null; readonly environment: BuildEnvironment },
  h: string
): { stance: ClaimStance; contradiction?: Contradiction } {
  const { sha256: x, upstream: u } = claim
  if (x === h) return { stance: 'supports' }
  if (u !== null && u !== h) return { stance: 'contradicts', contradiction: 'published-other' }
  if (claim.environment === 'faithful' && x !== null) return { stance: 'contradicts', contradiction: 'faithful-differs' }
  if (u === null) return { stance: 'contradicts', contradiction: 'not-from-source' }
  return { stance: 'drift' }
}

/** Cut at a code point boundary. */
function clip(text: string, max: number): string {
  if (text.length <= max) return text
  return Array.from(text).slice(0, max).join('')
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

/**
 * One claims row, its properties written in JCS order (see verdictOf). `h` is the file's
 * digest, or null for a key that only reports failures (stance null).
 */
function claimRow(keyid: KeyId, builder: EffectiveBuilder, f: AttestationFrame, x: string | null, u: string | null, h: string | null): KeyClaim {
  const p = f.statement.predicate
  const environment = p.environment ?? 'current'
  const diffTags = p.diff?.tags
  return {
    environment,
    frame: f.id,
    inputs: p.inputs.digest.sha256,
    keyid,
    outcome: p.outcome,
    parties: builder.parties,
    party: builder.party,
    seq: p.builder.seq,
    sha256: x,
    stance: h === null ? null : stanceOf({ sha256: x, upstream: u, environment }, h).stance,
    summary: p.diff === undefined ? null : clip(p.diff.summary, CLAIM_SUMMARY_MAX),
    tags: diffTags === undefined || diffTags.length === 0 ? [] : [...new Set(diffTags)].sort(),
    upstream: u
  }
}

/**
 * The engine proper, on a normalised query, in three steps named as in the module comment:
 * collect the trusted statements about the question, claim (each key's claim and its stance),
 * decide (count, status and reason); then the evidence.
 */
function evaluate(trust: TrustGraph, attestations: readonly AttestationFrame[], q: ArtifactQuery, purl: ParsedPurl): Verdict {
  const set = trust.buildersFor(purl)
  const claimed = claimsOf(collect(set.builders, attestations, q), q)
  const tally = tallyOf(trust.policy, claimed)
  const { status, reason } = decide(trust.policy, q, claimed, tally)
  return verdictOf(trust.policy, q, claimed, tally, set.truncated, status, reason)
}

/**
 * Collect: each trusted key's statements about the question (its package, naming the artifact
 * in subject or upstream, or a failure of the package), each frame once; untrusted keys never
 * change a verdict. Marks keys with two different statements under one seq.
 */
function collect(builders: ReadonlyMap<KeyId, EffectiveBuilder>, attestations: readonly AttestationFrame[], q: ArtifactQuery): Map<KeyId, KeyStatements> {
  const perKey = new Map<KeyId, KeyStatements>()
  const seen = new Set<string>()
  for (const f of attestations) {
    const p = f.statement.predicate
    if (p.package !== q.package || seen.has(f.id)) continue
    const builder = builders.get(f.signer.keyid)
    if (builder === undefined) continue
    const isFailure = p.outcome === 'failed'
    let x: string | null = null
    let u: string | null = null
    if (!isFailure) {
      x = f.statement.subject.find((s) => s.name === q.artifact)?.digest.sha256 ?? null
      u = p.upstream.find((s) => s.name === q.artifact)?.digest.sha256 ?? null
      if (x === null && u === null) continue
    }
    seen.add(f.id)
    let ks = perKey.get(builder.keyid)
    if (ks === undefined) {
      ks = { builder, named: [], failures: [], payloadBySeq: new Map(), equivocates: false }
      perKey.set(builder.keyid, ks)
    }
    const prior = ks.payloadBySeq.get(p.builder.seq)
    if (prior !== undefined && prior !== f.payloadDigest) ks.equivocates = true
    ks.payloadBySeq.set(p.builder.seq, f.payloadDigest)
    if (isFailure) ks.failures.push(f)
    else ks.named.push({ seq: p.builder.seq, sha256: x, upstream: u, frame: f })
  }
  return perKey
}

/** What the trusted keys claim about the question, grouped for counting (the claim step). */
interface Claimed {
  /** One row per key with a claim or a failure, in keyid order. */
  readonly claims: KeyClaim[]
  readonly equivocators: KeyId[]
  /** Keys with only failures, in keyid order (the evidence sorts them by party). */
  readonly failed: PartyKey[]
  readonly flips: Flip[]
  readonly frames: Set<string>
  readonly byStance: Record<ClaimStance, Counted[]>
  /** Keys per digest X ≠ H they rebuilt, whatever their stance. */
  readonly byDigest: Map<string, Counted[]>
  readonly contradictions: Map<Contradiction, { keys: Counted[]; digests: string[] }>
  /** Inputs digests behind the supporting claims. */
  readonly supportInputs: Set<string>
  /** Cause tags of the contradicting and drifted claims. */
  readonly tags: Set<string>
}

/**
 * Claim: per key (keyid order), equivocators dropped; the claim is the highest-seq statement
 * naming the artifact, with its stance towards H (stanceOf); a key with only failures counts as
 * failed, shown by its newest failure.
 */
function claimsOf(perKey: ReadonlyMap<KeyId, KeyStatements>, q: ArtifactQuery): Claimed {
  const c: Claimed = {
    claims: [],
    equivocators: [],
    failed: [],
    flips: [],
    frames: new Set(),
    byStance: { supports: [], contradicts: [], drift: [] },
    byDigest: new Map(),
    contradictions: new Map(),
    supportInputs: new Set(),
    tags: new Set()
  }
  for (const keyid of [...perKey.keys()].sort()) {
    const ks = perKey.get(keyid)!
    if (ks.equivocates) {
      c.equivocators.push(keyid)
      continue
    }
    const { builder } = ks
    if (ks.named.length > 0) {
      ks.named.sort((a, b) => a.seq - b.seq)
      const current = ks.named[ks.named.length - 1]!
      const claim = claimRow(keyid, builder, current.frame, current.sha256, current.upstream, q.sha256)
      const { stance, contradiction } = stanceOf(claim, q.sha256)
      c.claims.push(claim)
      c.frames.add(current.frame.id)
      const counted = { keyid, builder }
      c.byStance[stance].push(counted)
      if (stance === 'supports') c.supportInputs.add(claim.inputs)
      else for (const t of claim.tags) c.tags.add(t)
      if (current.sha256 !== null && current.sha256 !== q.sha256) {
        let list = c.byDigest.get(current.sha256)
        if (list === undefined) c.byDigest.set(current.sha256, (list = []))
        list.push(counted)
      }
      if (contradiction !== undefined) {
        let why = c.contradictions.get(contradiction)
        if (why === undefined) c.contradictions.set(contradiction, (why = { keys: [], digests: [] }))
        why.keys.push(counted)
        const shown = contradiction === 'published-other' ? current.upstream : current.sha256
        if (shown !== null) why.digests.push(shown)
      }
      c.flips.push(...flipsOf(keyid, builder.party, ks.named))
    } else {
      let latest = ks.failures[0]!
      for (const f of ks.failures) if (f.statement.predicate.builder.seq > latest.statement.predicate.builder.seq) latest = f
      c.claims.push(claimRow(keyid, builder, latest, null, null, null))
      c.frames.add(latest.id)
      c.failed.push({ keyid, party: builder.party })
    }
  }
  return c
}

/** The counted units (policy `count`): S, C, D and the other digests' claimants. */
interface Tally {
  readonly count: (keys: readonly Counted[]) => PartyKey[]
  /** Counted supporters of H (S = its length). */
  readonly support: PartyKey[]
  readonly S: number
  readonly C: number
  readonly D: number
  readonly dissent: DigestSupport[]
}

function tallyOf(policy: Policy, c: Claimed): Tally {
  const count = (keys: readonly Counted[]) => countUnits(keys, policy.count, policy.roots)
  const support = count(c.byStance.supports)
  const dissent: DigestSupport[] = [...c.byDigest.keys()].sort().map((d) => {
    const s = count(c.byDigest.get(d)!)
    return { have: s.length, sha256: d, support: s }
  })
  return { count, support, S: support.length, C: count(c.byStance.contradicts).length, D: count(c.byStance.drift).length, dissent }
}

/** Decide: the status by the rules table (module comment, in that order) and its one-line reason. */
function decide(policy: Policy, q: ArtifactQuery, c: Claimed, t: Tally): { status: VerdictStatus; reason: string } {
  const { S, C, D, support } = t
  const k = policy.threshold
  const m = policy.maxDissent
  const unit = (n: number) => (policy.count === 'party' ? (n === 1 ? 'party' : 'parties') : n === 1 ? 'key' : 'keys')
  /** "1 party contradicts", "2 parties contradict". */
  const contradict = (n: number) => (n === 1 ? 'contradicts' : 'contradict')
  const names = (pk: readonly PartyKey[]) => [...new Set(pk.map((x) => (policy.count === 'party' ? x.party : `${x.party}/${short(x.keyid)}`)))].join(', ')
  const tagList = [...c.tags].sort()
  const tagText = tagList.length > 0 ? ` (${tagList.join(', ')})` : ''
  const tolerance = `max_dissent ${m}`
  const driftNote = D > 0 ? `; ${D} ${unit(D)} rebuilt other bytes with today's toolchain${tagText}, not dissent` : ''
  const claimCount = c.byStance.supports.length + c.byStance.contradicts.length + c.byStance.drift.length
  if (claimCount === 0) {
    if (c.failed.length > 0) {
      return { status: 'failed', reason: `trusted builders only report build failures for ${q.package} (${c.failed.length} ${c.failed.length === 1 ? 'key' : 'keys'}: ${names(c.failed)})` }
    }
    return { status: 'unknown', reason: `no trusted statement about ${q.artifact} in ${q.package}` }
  }
  if (S >= k && C >= k) {
    return { status: 'conflict', reason: `trusted ${unit(2)} disagree: ${S} rebuilt ${short(q.sha256)} and ${C} ${contradict(C)} it, each reaching the threshold ${k}` }
  }
  if (S >= k) {
    if (C <= m) {
      return { status: 'reproduced', reason: `${S} ${unit(S)} rebuilt ${short(q.sha256)} (${names(support)}; ${k} needed)` + (C > 0 ? `; ${C} dissent, within ${tolerance}` : '') + driftNote }
    }
    return { status: 'conflict', reason: `${S} ${unit(S)} rebuilt ${short(q.sha256)} but ${C} ${unit(C)} ${contradict(C)} it (${tolerance})` }
  }
  if (C >= k) {
    const why = contradictionText(q, c.contradictions, t.count, unit)
    if (S <= m) return { status: 'mismatch', reason: why }
    return { status: 'conflict', reason: `${why}; but ${S} ${unit(S)} rebuilt ${short(q.sha256)} (${tolerance})` }
  }
  if (C > m) {
    return { status: 'conflict', reason: `${C} ${unit(C)} ${contradict(C)} ${short(q.sha256)} (${tolerance}); ${S} of ${k} rebuilt it` }
  }
  if (D >= k) {
    const xs = c.byStance.drift.map((d) => c.claims.find((r) => r.keyid === d.keyid)!.sha256)
    const what = xs.every((x) => x === null) ? `built no file named ${q.artifact}` : xs.some((x) => x === null) ? 'rebuilt other bytes or no file of this name' : 'rebuilt other bytes'
    return {
      status: 'unreproducible',
      reason:
        `not reproducible with today's toolchain: ${D} ${unit(D)} ${what}${tagText}; the archive published this file; not a sign of tampering` +
        (S > 0 ? `; ${S} of ${k} rebuilt it exactly` : '') +
        (C > 0 ? `; ${C} dissent, within ${tolerance}` : '')
    }
  }
  return {
    status: 'insufficient',
    reason: `${S} of ${k} ${unit(k)} rebuilt ${short(q.sha256)}` + (S > 0 ? ` (${names(support)})` : '') + (C > 0 ? `; ${C} dissent, within ${tolerance}` : '') + driftNote
  }
}

/** The verdict: the evidence in JCS order, its canonical text written once, and its hash. */
function verdictOf(policy: Policy, q: ArtifactQuery, c: Claimed, t: Tally, truncated: boolean, status: VerdictStatus, reason: string): Verdict {
  // Properties in JCS order (sorted by UTF-16 code units), here and in every object inside.
  const rest = {
    count: policy.count,
    dissent: t.dissent,
    dissenting: t.C,
    drifted: t.D,
    equivocators: c.equivocators,
    failed: c.failed.sort(byPartyKey),
    flips: c.flips,
    frames: [...c.frames].sort(),
    have: t.S,
    inputs: [...c.supportInputs].sort(),
    maxDissent: policy.maxDissent,
    need: policy.threshold,
    package: q.package,
    sha256: q.sha256,
    support: t.support,
    tags: [...c.tags].sort(),
    truncated
  }
  const { claims } = c
  const evidence: VerdictEvidence = { artifact: q.artifact, claims, ...rest }
  // The claims rows (most of the text) are written by claimJson; the rest by JSON.stringify.
  let claimsText = '['
  for (let i = 0; i < claims.length; i++) claimsText += (i === 0 ? '' : ',') + claimJson(claims[i]!, partyTexts.get(claims[i]!))
  const evidenceText = `{"artifact":${JSON.stringify(q.artifact)},"claims":${claimsText}],${JSON.stringify(rest).slice(1)}`
  const verdict: Verdict = { status, reason, evidence, evidenceHash: sha256Hex(hashInputOf(status, reason, evidenceText)) }
  evidenceTexts.set(verdict, evidenceText)
  return verdict
}

/**
 * The canonical JSON of `{ status, reason, evidence }` (what evidenceHash hashes) from the
 * evidence's own canonical text. `evaluate` builds every evidence object with its properties in
 * JCS order and only well-formed strings, safe integers, booleans, null and arrays inside, so
 * plain JSON.stringify (V8's fast path, no property list) writes its JCS form; the unit and
 * property tests pin evidenceHash = sha256(protocol canonicalJson(...)).
 */
function hashInputOf(status: VerdictStatus, reason: string, evidenceText: string): string {
  return `{"evidence":${evidenceText},"reason":${JSON.stringify(reason)},"status":"${status}"}`
}

/**
 * `"parties":[…],"party":"…"` of a claims row (its builder's). Builder objects are made per
 * package walk, so the text is remembered by the party names themselves (a policy has few
 * roots; bounded anyway).
 */
const PARTY_TEXTS_MAX = 4096
const partyTextMemo = new Map<string, string>()
const partyTexts = {
  get(builder: { readonly party: string; readonly parties: readonly string[] }): string {
    const key = builder.parties.length === 1 && builder.parties[0] === builder.party ? builder.party : `${builder.party}\n${builder.parties.join('\n')}`
    let text = partyTextMemo.get(key)
    if (text === undefined) {
      if (partyTextMemo.size >= PARTY_TEXTS_MAX) partyTextMemo.clear()
      partyTextMemo.set(key, (text = `"parties":${JSON.stringify(builder.parties)},"party":${JSON.stringify(builder.party)}`))
    }
    return text
  }
}

const hexOrNull = (v: string | null) => (v === null ? 'null' : `"${v}"`)

/**
 * JCS text of one claims row, by hand: most of a verdict's evidence is claims rows, and this is
 * several times faster than JSON.stringify. Digests, key and frame ids are lowercase hex and
 * outcome, environment and stance are fixed words (the frame schema's patterns and enums), so
 * they need no escaping; free text (party names, summary, tags) goes through JSON.stringify.
 */
function claimJson(c: KeyClaim, partyText: string): string {
  return (
    `{"environment":"${c.environment}","frame":"${c.frame}","inputs":"${c.inputs}","keyid":"${c.keyid}","outcome":"${c.outcome}",${partyText}` +
    `,"seq":${c.seq},"sha256":${hexOrNull(c.sha256)},"stance":${c.stance === null ? 'null' : `"${c.stance}"`}` +
    `,"summary":${c.summary === null ? 'null' : JSON.stringify(c.summary)},"tags":${c.tags.length === 0 ? '[]' : JSON.stringify(c.tags)},"upstream":${hexOrNull(c.upstream)}}`
  )
}

/** Canonical JSON text of each verdict's evidence, written once while hashing: answers reuse it. */
const evidenceTexts = new WeakMap<Verdict, string>()

/**
 * The JSON of a verdict `{ status, reason, evidence, evidenceHash }` as the API sends it, reusing
 * the evidence text written for the hash (the evidence is serialised once per verdict). With
 * `brief`, the evidence is left out: `{ package, artifact, status, reason, evidenceHash }`.
 */
export function verdictJson(v: Verdict, brief = false): string {
  const head = `{"status":"${v.status}","reason":${JSON.stringify(v.reason)}`
  if (brief) return `{"package":${JSON.stringify(v.evidence.package)},"artifact":${JSON.stringify(v.evidence.artifact)},${head.slice(1)},"evidenceHash":"${v.evidenceHash}"}`
  const evidence = evidenceTexts.get(v) ?? evidenceJson(v.evidence)
  return `${head},"evidence":${evidence},"evidenceHash":"${v.evidenceHash}"}`
}

const CONTRADICTION_ORDER: readonly Contradiction[] = ['published-other', 'faithful-differs', 'not-from-source']

/** The most frequent digest (ties: the smallest), for a reason line. */
function mostCommon(digests: readonly string[]): string | undefined {
  const n = new Map<string, number>()
  for (const d of digests) n.set(d, (n.get(d) ?? 0) + 1)
  let best: string | undefined
  for (const [d, c] of n) if (best === undefined || c > n.get(best)! || (c === n.get(best)! && d < best)) best = d
  return best
}

/** Why the contradicting claims say this file is not trustworthy, one clause per cause. */
function contradictionText(
  q: ArtifactQuery,
  contradictions: ReadonlyMap<Contradiction, { keys: Counted[]; digests: string[] }>,
  count: (keys: readonly Counted[]) => PartyKey[],
  unit: (n: number) => string
): string {
  const h = short(q.sha256)
  const clauses: string[] = []
  for (const cause of CONTRADICTION_ORDER) {
    const c = contradictions.get(cause)
    if (c === undefined) continue
    const n = count(c.keys).length
    const d = mostCommon(c.digests)
    const digest = d === undefined ? 'no file of this name' : short(d)
    if (cause === 'published-other') clauses.push(`${n} ${unit(n)} saw the archive publish ${digest} as ${q.artifact}; this file (${h}) was never published`)
    else if (cause === 'faithful-differs') clauses.push(`${n} ${unit(n)} rebuilt ${q.artifact} in the archive's own build environment and got ${digest}, not ${h}: the archive's binary does not come from its source`)
    else clauses.push(`${n} ${unit(n)} rebuilt ${digest} for ${q.artifact}, not ${h}: this file is not what its source builds to`)
  }
  return clauses.join('; ')
}

/** Consecutive statements (by seq) of one key that report different digests X; newest kept. */
function flipsOf(keyid: KeyId, party: string, named: readonly NamedStatement[]): Flip[] {
  const out: Flip[] = []
  for (let i = 1; i < named.length; i++) {
    const a = named[i - 1]!
    const b = named[i]!
    if (a.sha256 === b.sha256) continue
    const at = (x: NamedStatement): ClaimAt => ({ frame: x.frame.id, inputs: x.frame.statement.predicate.inputs.digest.sha256, seq: x.seq, sha256: x.sha256 })
    const from = at(a)
    const to = at(b)
    out.push({ from, keyid, party, sameInputs: from.inputs === to.inputs, to })
  }
  return out.slice(-MAX_FLIPS_PER_KEY)
}
