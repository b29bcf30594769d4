/**
 * In-memory consensus state: a thin wrapper that indexes verified frames and feeds the pure
 * engine (delegation-graph.ts, verdict.ts, equivocation.ts, reevaluate.ts). Used by the offline
 * CLI (`rbq verdict`) and tests; the node feeds the same functions from its LevelDB indexes.
 *
 * Frames of any kind are accepted in any order, idempotently (by frame id). Attestations are
 * indexed by package|artifact, for every name in their subject or upstream (failures by package) and by (keyid, seq) to catch equivocation;
 * the trust graph is rebuilt lazily when delegations, proofs, equivocations or the policy change,
 * or when `now()` passes the earliest expiry of an edge in use.
 */
import {
  canonicalPurl,
  type AttestationFrame,
  type DelegationFrame,
  type EquivocationFrame,
  type KeyId,
  type SigningKey,
  type VerifiedFrame
} from '../../protocol/index.js'
import { buildTrustGraph, type TrustExplanation, type TrustGraph } from './delegation-graph.js'
import { EquivocationDetector, type Equivocation } from './equivocation.js'
import type { Policy } from './policy.js'
import { Reevaluator, type VerdictChange } from './reevaluate.js'
import {
  computePackageVerdict,
  computeVerdicts,
  artifactNamesOf,
  type ArtifactQuery,
  type AttestationSource,
  type PackageQuery,
  type PackageVerdict,
  type Verdict
} from './verdict.js'

export interface ConsensusStateInit {
  readonly policy: Policy
  /** Clock for delegation expiry, ms since the epoch (default Date.now). */
  readonly now?: () => number
  /** When set, detected equivocations come with a proof signed by this key (to publish). */
  readonly reporterKey?: SigningKey
  readonly visitCap?: number
}

export interface AddResult {
  /** Frames that were new (duplicates by frame id are ignored). */
  readonly added: number
  readonly duplicates: number
  /** Equivocations detected among the attestations added (first per key). */
  readonly equivocations: readonly Equivocation[]
  /** Watched verdicts that changed because of these frames. */
  readonly changes: readonly VerdictChange[]
}

export class ConsensusState {
  private policyValue: Policy
  private readonly clock: () => number
  private readonly visitCap: number | undefined
  private readonly ids = new Set<string>()
  private readonly byArtifact = new Map<string, AttestationFrame[]>()
  private readonly failuresByPackage = new Map<string, AttestationFrame[]>()
  private readonly byPackage = new Map<string, AttestationFrame[]>()
  private readonly delegations: DelegationFrame[] = []
  private readonly proofs = new Map<KeyId, EquivocationFrame>()
  private readonly detector: EquivocationDetector
  private readonly detected: Equivocation[] = []
  private graph: TrustGraph | undefined
  private readonly reevaluator: Reevaluator

  constructor(init: ConsensusStateInit) {
    this.policyValue = init.policy
    this.clock = init.now ?? Date.now
    this.visitCap = init.visitCap
    this.detector = new EquivocationDetector(init.reporterKey)
    this.reevaluator = new Reevaluator({ trust: this.trust, source: this.source })
  }

  get policy(): Policy {
    return this.policyValue
  }

  /** Candidate attestations for one artifact: its statements plus the package's failures. */
  readonly source: AttestationSource = ({ package: pkg, artifact }) => {
    const named = this.byArtifact.get(`${pkg}\n${artifact}`) ?? []
    const failures = this.failuresByPackage.get(pkg)
    return failures === undefined ? named : [...named, ...failures]
  }

  /** The current trust graph (rebuilt when stale). */
  get trust(): TrustGraph {
    const g = this.graph
    if (g !== undefined && (g.validUntil === undefined || this.clock() < g.validUntil)) return g
    this.graph = buildTrustGraph({
      policy: this.policyValue,
      delegations: this.delegations,
      proofs: [...this.proofs.values()],
      excluded: this.detector.keys(),
      now: this.clock(),
      visitCap: this.visitCap
    })
    return this.graph
  }

  add(frame: VerifiedFrame): AddResult {
    return this.addAll([frame])
  }

  /** Adds frames (any kind, any order); watched verdicts are re-evaluated once for the batch. */
  addAll(frames: Iterable<VerifiedFrame>): AddResult {
    let added = 0
    let duplicates = 0
    let trustChanged = false
    const equivocations: Equivocation[] = []
    const fresh: VerifiedFrame[] = []
    for (const frame of frames) {
      if (this.ids.has(frame.id)) {
        duplicates++
        continue
      }
      this.ids.add(frame.id)
      added++
      fresh.push(frame)
      switch (frame.kind) {
        case 'attestation': {
          const f = frame as AttestationFrame
          this.index(f)
          const e = this.detector.observe(f)
          if (e !== undefined) {
            equivocations.push(e)
            this.detected.push(e)
            trustChanged = true
          }
          break
        }
        case 'delegation':
          this.delegations.push(frame as DelegationFrame)
          trustChanged = true
          break
        case 'equivocation': {
          const keyid = frame.proof.keyid
          if (!this.proofs.has(keyid)) {
            this.proofs.set(keyid, frame as EquivocationFrame)
            this.detector.convict(keyid)
            trustChanged = true
          }
          break
        }
      }
    }
    if (trustChanged) this.graph = undefined
    // Without watches there is nothing to report; the graph is then rebuilt on the next question.
    const changes = fresh.length === 0 || this.reevaluator.watchCount === 0 ? [] : this.reevaluator.update({ frames: fresh, trust: this.trust })
    return { added, duplicates, equivocations, changes }
  }

  private index(f: AttestationFrame): void {
    const p = f.statement.predicate
    push(this.byPackage, p.package, f)
    if (p.outcome === 'failed') push(this.failuresByPackage, p.package, f)
    else for (const name of artifactNamesOf(f)) push(this.byArtifact, `${p.package}\n${name}`, f)
  }

  /** Replaces the policy; returns the watched verdicts that changed. */
  setPolicy(policy: Policy): VerdictChange[] {
    this.policyValue = policy
    this.graph = undefined
    return this.reevaluator.update({ trust: this.trust })
  }

  /** Re-checks the clock (delegation expiry); returns the watched verdicts that changed. */
  refresh(): VerdictChange[] {
    return this.reevaluator.update({ trust: this.trust })
  }

  verdict(query: ArtifactQuery): Verdict {
    return computeVerdicts(this.trust, this.source, [query])[0]!
  }

  verdicts(queries: readonly ArtifactQuery[]): Verdict[] {
    return computeVerdicts(this.trust, this.source, queries)
  }

  packageVerdict(query: PackageQuery): PackageVerdict {
    const statements = this.byPackage.get(canonicalPurl(query.package, 'package')) ?? []
    return computePackageVerdict(this.trust, statements, query)
  }

  explain(keyid: KeyId, purl?: string): TrustExplanation {
    return this.trust.explain(keyid, purl)
  }

  watch(query: ArtifactQuery): Verdict {
    this.reevaluator.update({ trust: this.trust }) // bring existing watches up to the current graph first
    return this.reevaluator.watch(query)
  }

  unwatch(query: ArtifactQuery): boolean {
    return this.reevaluator.unwatch(query)
  }

  /** Keys out of every effective set: proved by a proof or detected here. */
  equivocators(): KeyId[] {
    return [...new Set([...this.proofs.keys(), ...this.detector.keys()])].sort()
  }

  /** Equivocations detected here (with proofs to publish when a reporter key is set). */
  detectedEquivocations(): readonly Equivocation[] {
    return this.detected
  }

  get size(): number {
    return this.ids.size
  }
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key)
  if (list === undefined) map.set(key, [value])
  else list.push(value)
}
