/**
 * Re-evaluation of watched artifacts (installed packages): each keeps its last verdict and
 * evidence hash; after new frames arrive, only the watched artifacts those frames can affect are
 * recomputed, and those whose evidence hash changed are reported (old → new).
 *
 * Affected by an attestation: the watched artifacts of its package named in its subject or
 * upstream (artifactNamesOf), or every watched artifact of its package when its outcome is
 * `failed` (failures are per package).
 * A new trust graph (delegations, proofs, equivocations, policy, expiry) affects every watched
 * artifact: those are rare, and a delegation can change the builder set of any package.
 */
import type { VerifiedFrame } from '../../protocol/index.js'
import type { TrustGraph } from './delegation-graph.js'
import { artifactNamesOf, computeVerdicts, normalizeQuery, type ArtifactQuery, type AttestationSource, type Verdict, type VerdictStatus } from './verdict.js'

export interface WatchedVerdict {
  readonly query: ArtifactQuery
  readonly status: VerdictStatus
  readonly evidenceHash: string
}

export interface VerdictChange {
  readonly query: ArtifactQuery
  readonly before: { readonly status: VerdictStatus; readonly evidenceHash: string }
  readonly after: Verdict
  /** False when only the evidence changed (e.g. one more supporter). */
  readonly statusChanged: boolean
}

export interface ReevaluatorInit {
  readonly trust: TrustGraph
  /** Must already include the frames passed to update(). */
  readonly source: AttestationSource
}

const artifactKey = (pkg: string, artifact: string) => `${pkg}\n${artifact}`
const watchKey = (q: ArtifactQuery) => `${q.package}\n${q.artifact}\n${q.sha256}`

export class Reevaluator {
  private trustGraph: TrustGraph
  private readonly source: AttestationSource
  private readonly watches = new Map<string, WatchedVerdict>()
  private readonly byArtifact = new Map<string, Set<string>>()
  private readonly byPackage = new Map<string, Set<string>>()
  /** Verdicts computed so far (tests check that updates touch only what they must). */
  evaluations = 0

  constructor(init: ReevaluatorInit) {
    this.trustGraph = init.trust
    this.source = init.source
  }

  get trust(): TrustGraph {
    return this.trustGraph
  }

  /** Starts watching (or refreshes) an artifact and returns its current verdict. */
  watch(query: ArtifactQuery): Verdict {
    const q = normalizeQuery(query)
    const verdict = this.evaluate([q])[0]!
    const key = watchKey(q)
    this.watches.set(key, { query: q, status: verdict.status, evidenceHash: verdict.evidenceHash })
    addTo(this.byArtifact, artifactKey(q.package, q.artifact), key)
    addTo(this.byPackage, q.package, artifactKey(q.package, q.artifact))
    return verdict
  }

  unwatch(query: ArtifactQuery): boolean {
    const q = normalizeQuery(query)
    const key = watchKey(q)
    if (!this.watches.delete(key)) return false
    const ak = artifactKey(q.package, q.artifact)
    const set = this.byArtifact.get(ak)
    set?.delete(key)
    if (set !== undefined && set.size === 0) {
      this.byArtifact.delete(ak)
      const pk = this.byPackage.get(q.package)
      pk?.delete(ak)
      if (pk !== undefined && pk.size === 0) this.byPackage.delete(q.package)
    }
    return true
  }

  get watchCount(): number {
    return this.watches.size
  }

  watched(): WatchedVerdict[] {
    return [...this.watches.keys()].sort().map((k) => this.watches.get(k)!)
  }

  /**
   * Recomputes what `frames` and/or a new `trust` graph can affect; returns the watched verdicts
   * whose evidence hash changed, sorted by (package, artifact, sha256).
   */
  update(change: { readonly frames?: readonly VerifiedFrame[]; readonly trust?: TrustGraph }): VerdictChange[] {
    let keys: Set<string>
    if (change.trust !== undefined && change.trust !== this.trustGraph) {
      this.trustGraph = change.trust
      keys = new Set(this.watches.keys())
    } else {
      keys = this.affectedBy(change.frames ?? [])
    }
    if (keys.size === 0) return []
    const sorted = [...keys].sort()
    const queries = sorted.map((k) => this.watches.get(k)!.query)
    const verdicts = this.evaluate(queries)
    const changes: VerdictChange[] = []
    sorted.forEach((key, i) => {
      const before = this.watches.get(key)!
      const after = verdicts[i]!
      if (after.evidenceHash === before.evidenceHash) return
      this.watches.set(key, { query: before.query, status: after.status, evidenceHash: after.evidenceHash })
      changes.push({
        query: before.query,
        before: { status: before.status, evidenceHash: before.evidenceHash },
        after,
        statusChanged: before.status !== after.status
      })
    })
    return changes
  }

  /** Watch keys a batch of frames can affect (module comment). */
  affectedBy(frames: readonly VerifiedFrame[]): Set<string> {
    const out = new Set<string>()
    for (const f of frames) {
      if (f.kind !== 'attestation') {
        for (const k of this.watches.keys()) out.add(k)
        return out
      }
      const p = f.statement.predicate
      const artifacts = p.outcome === 'failed' ? [...(this.byPackage.get(p.package) ?? [])] : artifactNamesOf(f).map((name) => artifactKey(p.package, name))
      for (const ak of artifacts) for (const k of this.byArtifact.get(ak) ?? []) out.add(k)
    }
    return out
  }

  private evaluate(queries: readonly ArtifactQuery[]): Verdict[] {
    this.evaluations += queries.length
    return computeVerdicts(this.trustGraph, this.source, queries)
  }
}

function addTo(map: Map<string, Set<string>>, key: string, value: string): void {
  let set = map.get(key)
  if (set === undefined) map.set(key, (set = new Set()))
  set.add(value)
}
