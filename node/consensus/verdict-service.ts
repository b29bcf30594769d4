/**
 * Verdicts over the node's LevelDB store: feeds node/consensus's pure engine (buildTrustGraph,
 * computeVerdicts) with the frames the store's indexes name, for the API's verdict, batch,
 * trust-explain and watch routes.
 *
 * - Trust graph: the node policy's comes from TrustState (node/trust/trust-state.ts), which owns
 *   the policy, the stored delegations and proofs, their invalidation and the decoded frame
 *   cache; a policy sent with the request gets a graph over the same delegations and proofs.
 * - Candidates for (package, artifact): the attestations of the package signed by a key the
 *   trust graph reaches for it (buildersFor; the store's (package, signer) index), whose subject
 *   or upstream names the artifact (artifactNamesOf), and their build failures; decoded frames
 *   come from TrustState's cache. Statements of keys no policy trusts are never read nor decoded, so a
 *   verdict costs what the trusted statements about the package cost, however many strangers
 *   wrote about it (the engine would ignore them anyway: untrusted keys never change a verdict).
 * - A question with only a digest (or a digest and one of package/artifact): the (package,
 *   artifact) pairs come from the subject and the upstream sha256 indexes, read only under the
 *   keys the policy reaches (the index key is digest then signer) — so asking about an
 *   archive file by digest finds what builders saw the archive publish, and gives the verdict
 *   asking by file gives. A pair counts only when a key trusted for that package rebuilt this
 *   digest or saw it published under that name — so an untrusted key that attests a digest
 *   under some other package cannot drag the answer to `mismatch` or `unknown` (untrusted keys
 *   never change a verdict: node/consensus/README.md). The answer is the worst of the pairs'.
 */
import {
  artifactNamesOf,
  computeVerdicts,
  verdictJson,
  worstOf,
  type ArtifactQuery,
  type AttestationSource,
  type TrustGraph,
  type Verdict
} from './index.js'
import type { Store } from '../db/store.js'
import { canonicalPurl, parsePublicKey, type AttestationFrame, type VerifiedFrame } from '../../protocol/index.js'
import type { ArtifactVerdict, TrustExplanation, VerdictEvidenceMode, VerdictQuery, VerdictResult } from '../../protocol/api.js'
import { parseRequestPolicy } from '../trust/policy-file.js'
import type { TrustState } from '../trust/trust-state.js'
import { mapLimit } from '../../common/concurrency.js'

/** Readonly engine types → the wire types (same fields, mutable arrays). */
type DeepMutable<T> = T extends readonly (infer U)[] ? DeepMutable<U>[] : T extends object ? { -readonly [K in keyof T]: DeepMutable<T[K]> } : T

/** The engine's verdict is the wire verdict: the compiler checks the two stay in step. */
export function toWireVerdict(v: Verdict): ArtifactVerdict {
  return v as DeepMutable<Verdict>
}

/** Index scans run at the same time while answering a batch. */
const PREFETCH_CONCURRENCY = 16

const short = (d: string) => d.slice(0, 12)

export interface VerdictServiceComponents {
  store: Store
  /** The node's trust state (started): policy, delegations, proofs, decoded frames. */
  trust: TrustState
}

/** A normalised question: lowercase digest, canonical purl. */
interface Question {
  sha256: string
  package: string | undefined
  artifact: string | undefined
}

/** Candidates of one package, by artifact name; failures kept apart (they concern every artifact). */
interface PackageFrames {
  byArtifact: Map<string, AttestationFrame[]>
  failures: AttestationFrame[]
}

export class VerdictService {
  private readonly store: Store
  private readonly trustState: TrustState

  constructor(components: VerdictServiceComponents) {
    this.store = components.store
    this.trustState = components.trust
  }

  /** Forgets decoded frames and the built trust graph (benchmarks measure cold answers with it). */
  dropCaches(): void {
    this.trustState.dropCaches()
  }

  /** Answers questions in order; `policyText` replaces the node policy for this call. */
  async answer(queries: readonly VerdictQuery[], policyText?: string, fieldOf: (i: number, f: string) => string = (_i, f) => f): Promise<VerdictResult[]> {
    const trust = await this.trust(policyText)
    const questions = queries.map((q, i) => normalize(q, (f) => fieldOf(i, f)))
    // Pairs to evaluate per question: given directly, or found through the sha256 index.
    const pairs = await mapLimit(questions, PREFETCH_CONCURRENCY, async (q) =>
      q.package !== undefined && q.artifact !== undefined ? [{ package: q.package, artifact: q.artifact }] : this.pairsFor(q, trust)
    )
    const packages = new Set<string>()
    for (const list of pairs) for (const p of list) packages.add(p.package)
    const frames = await this.loadPackages([...packages], trust)
    const source: AttestationSource = ({ package: pkg, artifact }) => {
      const pf = frames.get(pkg)
      if (pf === undefined) return []
      const named = pf.byArtifact.get(artifact) ?? []
      return pf.failures.length === 0 ? named : [...named, ...pf.failures]
    }
    const flat: ArtifactQuery[] = []
    questions.forEach((q, i) => {
      for (const p of pairs[i]!) flat.push({ package: p.package, artifact: p.artifact, sha256: q.sha256 })
    })
    const verdicts = computeVerdicts(trust, source, flat)
    let at = 0
    return questions.map((q, i) => {
      const mine = verdicts.slice(at, (at += pairs[i]!.length))
      const direct = q.package !== undefined && q.artifact !== undefined
      // Found through the indexes: keep pairs where a trusted key rebuilt or saw published this very digest.
      const kept = direct ? mine : mine.filter((v) => v.evidence.claims.some((c) => c.sha256 === q.sha256 || c.upstream === q.sha256))
      return resultOf(q, kept)
    })
  }

  /** How a key is trusted under the node policy (or `policyText`), for `rbq trust explain`. */
  async explain(key: string, pkg: string | undefined, policyText?: string): Promise<TrustExplanation> {
    const keyid = /^[0-9a-fA-F]{64}$/.test(key) ? key.toLowerCase() : parsePublicKey(key, 'key').keyid
    const purl = pkg === undefined ? undefined : canonicalPurl(pkg, 'package')
    const trust = await this.explainGraph(policyText)
    return trust.explain(keyid, purl) as DeepMutable<ReturnType<TrustGraph['explain']>>
  }

  /** Explaining a chain needs only the roots: a policy whose threshold cannot be met yet still explains. */
  private async explainGraph(policyText?: string): Promise<TrustGraph> {
    let policy = policyText === undefined ? undefined : parseRequestPolicy(policyText, { requireReachableThreshold: false })
    if (policy === undefined) {
      const state = await this.trustState.policy()
      if (state.policy !== undefined) return this.trustState.graph()
      if (state.explainable === undefined) throw state.error
      policy = state.explainable
    }
    return this.trustState.graphFor(policy)
  }

  /** The trust graph for the node policy or a request's policy text. */
  async trust(policyText?: string): Promise<TrustGraph> {
    return policyText === undefined ? this.trustState.graph() : this.trustState.graphFor(parseRequestPolicy(policyText))
  }

  /** Decoded stored frames by id, in the order asked (TrustState's cache); unknown ids are skipped. */
  frames(ids: readonly string[]): Promise<VerifiedFrame[]> {
    return this.trustState.frames(ids)
  }

  /**
   * (package, artifact) pairs attested with this digest, as a subject or as an upstream entry,
   * narrowed by the part of the pair given.
   */
  private async pairsFor(q: Question, trust: TrustGraph): Promise<{ package: string; artifact: string }[]> {
    const entries = await this.store.digestEntries(q.sha256, this.trustState.reachable(trust))
    const trusted = entries.filter((e) => (q.package === undefined || e.package === q.package) && isBuilderFor(trust, e.package, e.keyid))
    const frames = await this.trustState.frames(trusted.map((e) => e.id))
    const seen = new Map<string, { package: string; artifact: string }>()
    for (const f of frames) {
      if (f.kind !== 'attestation') continue
      const { predicate, subject } = f.statement
      const pkg = predicate.package
      if (q.package !== undefined && pkg !== q.package) continue
      for (const s of [...subject, ...(predicate.outcome === 'failed' ? [] : predicate.upstream)]) {
        if (s.digest.sha256 !== q.sha256 || (q.artifact !== undefined && s.name !== q.artifact)) continue
        seen.set(`${pkg}\n${s.name}`, { package: pkg, artifact: s.name })
      }
    }
    return [...seen.keys()].sort().map((k) => seen.get(k)!)
  }

  /**
   * The trusted keys' attestations of each package, indexed by every artifact name they speak
   * about: the (package, signer) ranges of all packages read through one iterator, the frames
   * in one multi-get.
   */
  private async loadPackages(packages: readonly string[], trust: TrustGraph): Promise<Map<string, PackageFrames>> {
    const pairs: { package: string; keyid: string }[] = []
    for (const pkg of packages) for (const keyid of builderSetOf(trust, pkg)) pairs.push({ package: pkg, keyid })
    const ids = (await this.store.frameIdsByPackageKeys(pairs)).flat()
    const out = new Map<string, PackageFrames>()
    for (const pkg of packages) out.set(pkg, { byArtifact: new Map(), failures: [] })
    for (const f of await this.trustState.frames(ids)) {
      if (f.kind !== 'attestation') continue
      const a = f as AttestationFrame
      const pf = out.get(a.statement.predicate.package)
      if (pf === undefined) continue
      if (a.statement.predicate.outcome === 'failed') {
        pf.failures.push(a)
        continue
      }
      for (const name of artifactNamesOf(a)) {
        const list = pf.byArtifact.get(name)
        if (list === undefined) pf.byArtifact.set(name, [a])
        else list.push(a)
      }
    }
    return out
  }
}

/** Keys the trust graph reaches for this package (stored purls passed the frame schema). */
function builderSetOf(trust: TrustGraph, pkg: string): Iterable<string> {
  return trust.buildersFor(pkg).builders.keys()
}

function isBuilderFor(trust: TrustGraph, pkg: string, keyid: string): boolean {
  return trust.buildersFor(pkg).builders.has(keyid)
}

function normalize(q: VerdictQuery, field: (f: string) => string): Question {
  return {
    sha256: q.sha256.toLowerCase(),
    package: q.package === undefined ? undefined : canonicalPurl(q.package, field('package')),
    artifact: q.artifact
  }
}

/** The answer to one question from the verdicts of its pairs (worst first: VERDICT_SEVERITY). */
export function resultOf(q: Question, verdicts: readonly Verdict[]): VerdictResult {
  const query: VerdictResult['query'] = { sha256: q.sha256 }
  if (q.package !== undefined) query.package = q.package
  if (q.artifact !== undefined) query.artifact = q.artifact
  const sorted = [...verdicts].sort((a, b) => cmp(a.evidence.package, b.evidence.package) || cmp(a.evidence.artifact, b.evidence.artifact))
  const status = worstOf(sorted.map((v) => v.status))
  if (status === undefined) {
    const narrowed = q.package !== undefined ? ` for ${q.package}` : q.artifact !== undefined ? ` as ${q.artifact}` : ''
    const hint = q.package === undefined || q.artifact === undefined ? ' (give the package and artifact name to compare it with the digests others rebuilt)' : ''
    return { query, status: 'unknown', reason: `no trusted statement names sha256 ${short(q.sha256)}${narrowed}${hint}`, verdicts: [] }
  }
  const worst = sorted.find((v) => v.status === status)!
  const reason = sorted.length > 1 ? `${worst.evidence.package} ${worst.evidence.artifact}: ${worst.reason} (worst of ${sorted.length})` : worst.reason
  return { query, status, reason, verdicts: sorted.map(toWireVerdict) }
}

/**
 * An answer as the API sends it (`{ query, status, reason, verdicts }`): each verdict's evidence
 * is the text the engine wrote for its hash (verdictJson), not serialised again; `brief` leaves
 * the evidence out (BriefVerdictResult).
 */
export function resultJson(r: VerdictResult, mode: VerdictEvidenceMode): string {
  const brief = mode === 'brief'
  let verdicts = ''
  for (let i = 0; i < r.verdicts.length; i++) verdicts += (i === 0 ? '' : ',') + verdictJson(r.verdicts[i] as Verdict, brief)
  return `{"query":${JSON.stringify(r.query)},"status":"${r.status}","reason":${JSON.stringify(r.reason)},"verdicts":[${verdicts}]}`
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)


