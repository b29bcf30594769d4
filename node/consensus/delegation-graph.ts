/**
 * The delegation walk (protocol/SPEC.md §6, node/consensus/README.md): from the policy's roots through
 * delegation statements to the effective builder set of one package.
 *
 * Built once per (policy, delegations, proofs, now) by `buildTrustGraph`; each package's
 * builder set is then computed on demand and cached by the purl's `pkg:type/namespace/name`
 * (scope patterns ignore version and qualifiers). Pure: `now` is a parameter.
 *
 * Edge rules, applied when the graph is built:
 *   - per (delegator, delegate) the highest `version` wins; older versions are ignored (rollback);
 *   - the winning version is then judged alone: `revoked` cuts the edge, an `expires` at or before
 *     `now` cuts it (freeze) — never a fall-back to an older version;
 *   - two different statements with the same winning version cut the edge (fail closed);
 *   - self-delegations are ignored (protocol/ already refuses them at decode).
 * Walk rules, per package:
 *   - a root is used only when the package matches its scope, and an edge only when the package
 *     matches the edge's scope, so the package matches every scope along a chain;
 *   - a root starts with a budget of `max_depth` edges; crossing an edge leaves
 *     min(budget - 1, edge.maxDepth): edge.maxDepth = 0 means the delegate may not re-delegate;
 *   - a key is re-expanded only when reached again with a larger budget (each key at most
 *     max_depth + 1 times per root), which also breaks cycles;
 *   - keys with an accepted equivocation proof are removed, with everything hanging only from them;
 *   - `visitCap` bounds the edges examined per package (default 100,000); beyond it the walk stops
 *     and the set says `truncated` (deterministic: edges are examined in keyid order).
 * Each root is walked on its own, so every builder knows all the roots (parties) that reach it;
 * verdict.ts counts parties with a matching (a key counts for one party, a party once).
 */
import { parsePurl, patternMatches, type DelegationFrame, type EquivocationFrame, type KeyId, type ParsedPurl } from '../../protocol/index.js'
import type { Policy } from './policy.js'

export const DEFAULT_VISIT_CAP = 100_000
/** Package builder sets kept per graph (oldest dropped first). */
const BUILDER_CACHE_MAX = 4096

export type EdgeState = 'active' | 'expired' | 'revoked' | 'conflicting'

/** The winning statement of one (delegator, delegate) pair and how it was judged. */
export interface DelegationEdge {
  readonly frameId: string
  readonly delegator: KeyId
  readonly delegate: KeyId
  readonly name: string
  readonly scope: readonly string[]
  readonly maxDepth: number
  readonly version: number
  readonly expires: string
  readonly state: EdgeState
  /** Older versions of this pair that were ignored (rollback protection). */
  readonly superseded: number
}

export interface EffectiveBuilder {
  readonly keyid: KeyId
  /** The delegation's name (or the root's name for a root key). */
  readonly name: string
  /** Primary party: the root of the shortest chain, ties broken by root order in the policy. */
  readonly party: string
  /** Every root (party) that reaches this key for the package, in policy order. */
  readonly parties: readonly string[]
  /** Policy indexes of `parties`. */
  readonly rootIndexes: readonly number[]
  /** The primary chain: delegations from the party's root key down to this key ([] for a root). */
  readonly chain: readonly DelegationEdge[]
}

export interface BuilderSet {
  /** The `pkg:type/namespace/name` the set was computed for. */
  readonly base: string
  readonly builders: ReadonlyMap<KeyId, EffectiveBuilder>
  /** The walk hit the visit cap: some keys may be missing (fail closed). */
  readonly truncated: boolean
  /** Edges examined (bounded by the visit cap). */
  readonly visits: number
}

export type TrustDiagnosticCode = 'self-delegation' | 'conflicting-versions' | 'visit-cap'

export interface TrustDiagnostic {
  readonly code: TrustDiagnosticCode
  readonly message: string
  readonly frameIds: readonly string[]
}

export interface TrustExplanation {
  readonly keyid: KeyId
  /** Trusted for the package asked about, or for some package when none was given. */
  readonly trusted: boolean
  readonly package: string | undefined
  /** The key has an accepted equivocation proof. */
  readonly excluded: boolean
  readonly root: { readonly name: string; readonly scope: readonly string[] } | undefined
  readonly builder: EffectiveBuilder | undefined
  /** Every delegation that names this key as delegate (winning versions), sorted by delegator. */
  readonly incoming: readonly DelegationEdge[]
  /** One line for humans. */
  readonly reason: string
}

export interface TrustGraphInit {
  readonly policy: Policy
  readonly delegations?: readonly DelegationFrame[]
  /** Accepted equivocation proofs: their keys are removed. */
  readonly proofs?: readonly EquivocationFrame[]
  /** Further keys to remove (equivocations detected locally, before a proof circulates). */
  readonly excluded?: Iterable<KeyId>
  /** Milliseconds since the epoch at which expiry is judged. */
  readonly now: number
  readonly visitCap?: number
}

export interface TrustGraph {
  readonly policy: Policy
  readonly now: number
  /** Earliest expiry among active edges: the graph must be rebuilt at that time. */
  readonly validUntil: number | undefined
  readonly excluded: ReadonlySet<KeyId>
  readonly diagnostics: readonly TrustDiagnostic[]
  /** All edges by their winning version, any state, sorted by (delegator, delegate). */
  readonly edges: readonly DelegationEdge[]
  /** Effective builder set for a package purl (string or parsed); cached per package name. */
  buildersFor(purl: string | ParsedPurl): BuilderSet
  /** How a key is (or is not) trusted, for `rbq trust explain KEY [--package PURL]`. */
  explain(keyid: KeyId, purl?: string | ParsedPurl): TrustExplanation
}

type ScopeMatcher = (scope: readonly string[]) => boolean

/** Scope matcher for one package, memoised per pattern (edges share a handful of patterns). */
function matcherFor(purl: ParsedPurl): ScopeMatcher {
  const memo = new Map<string, boolean>()
  return (scope) => {
    for (const pattern of scope) {
      let hit = memo.get(pattern)
      if (hit === undefined) {
        hit = patternMatches(pattern, purl)
        memo.set(pattern, hit)
      }
      if (hit) return true
    }
    return false
  }
}

const matchAll: ScopeMatcher = () => true

/** Selects the winning version per edge and judges it (module comment). */
function selectEdges(delegations: readonly DelegationFrame[], now: number, diagnostics: TrustDiagnostic[]): DelegationEdge[] {
  const groups = new Map<string, { newest: DelegationFrame[]; older: number }>()
  const seen = new Set<string>()
  for (const f of delegations) {
    if (seen.has(f.id)) continue
    seen.add(f.id)
    const s = f.statement
    if (s.delegator === s.delegate.keyid) {
      diagnostics.push({ code: 'self-delegation', message: `delegation ${f.id} from ${s.delegator} to itself ignored`, frameIds: [f.id] })
      continue
    }
    const pair = `${s.delegator}|${s.delegate.keyid}`
    const g = groups.get(pair)
    if (g === undefined) {
      groups.set(pair, { newest: [f], older: 0 })
      continue
    }
    const top = g.newest[0]!.statement.version
    if (s.version > top) {
      g.older += g.newest.length
      g.newest = [f]
    } else if (s.version === top) {
      if (!g.newest.some((o) => o.payloadDigest === f.payloadDigest)) g.newest.push(f)
    } else {
      g.older++
    }
  }
  const edges: DelegationEdge[] = []
  for (const g of groups.values()) {
    const newest = [...g.newest].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    const f = newest[0]!
    const s = f.statement
    let state: EdgeState
    if (newest.length > 1) {
      state = 'conflicting'
      diagnostics.push({
        code: 'conflicting-versions',
        message: `${s.delegator} signed ${newest.length} different delegations to ${s.delegate.keyid} with version ${s.version}; edge cut`,
        frameIds: newest.map((x) => x.id)
      })
    } else if (s.revoked) state = 'revoked'
    else if (Date.parse(s.expires) <= now) state = 'expired'
    else state = 'active'
    edges.push({
      frameId: f.id,
      delegator: s.delegator,
      delegate: s.delegate.keyid,
      name: s.name,
      scope: s.scope,
      maxDepth: s.maxDepth,
      version: s.version,
      expires: s.expires,
      state,
      superseded: g.older + newest.length - 1
    })
  }
  return edges.sort((a, b) => cmp(a.delegator, b.delegator) || cmp(a.delegate, b.delegate))
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

interface Reach {
  rootIndex: number
  depth: number
  chain: readonly DelegationEdge[]
}

class TrustGraphImpl implements TrustGraph {
  readonly policy: Policy
  readonly now: number
  readonly validUntil: number | undefined
  readonly excluded: ReadonlySet<KeyId>
  readonly diagnostics: TrustDiagnostic[]
  readonly edges: readonly DelegationEdge[]
  private readonly out = new Map<KeyId, DelegationEdge[]>()
  private readonly incoming = new Map<KeyId, DelegationEdge[]>()
  private readonly visitCap: number
  private readonly cache = new Map<string, BuilderSet>()
  private readonly capReported = new Set<string>()

  constructor(init: TrustGraphInit) {
    this.policy = init.policy
    this.now = init.now
    this.visitCap = init.visitCap ?? DEFAULT_VISIT_CAP
    const excluded = new Set<KeyId>(init.excluded ?? [])
    for (const p of init.proofs ?? []) excluded.add(p.proof.keyid)
    this.excluded = excluded
    this.diagnostics = []
    this.edges = selectEdges(init.delegations ?? [], init.now, this.diagnostics)
    let validUntil: number | undefined
    for (const e of this.edges) {
      let list = this.incoming.get(e.delegate)
      if (list === undefined) this.incoming.set(e.delegate, (list = []))
      list.push(e)
      if (e.state !== 'active') continue
      let outList = this.out.get(e.delegator)
      if (outList === undefined) this.out.set(e.delegator, (outList = []))
      outList.push(e) // already in delegate-keyid order
      const t = Date.parse(e.expires)
      if (validUntil === undefined || t < validUntil) validUntil = t
    }
    this.validUntil = validUntil
  }

  buildersFor(purl: string | ParsedPurl): BuilderSet {
    const parsed = typeof purl === 'string' ? parsePurl(purl) : purl
    const base = parsed.base
    let set = this.cache.get(base)
    if (set === undefined) {
      set = this.walk(base, matcherFor(parsed), true)
      if (this.cache.size >= BUILDER_CACHE_MAX) {
        const oldest = this.cache.keys().next().value
        if (oldest !== undefined) this.cache.delete(oldest)
      }
      this.cache.set(base, set)
    }
    return set
  }

  /**
   * One breadth-first walk per root (module comment). `useRootScope` false is the scope-free
   * walk used by explain() without a package.
   */
  private walk(base: string, matches: ScopeMatcher, useRootScope: boolean): BuilderSet {
    const reached = new Map<KeyId, Reach[]>()
    let visits = 0
    let truncated = false
    const roots = this.policy.roots
    for (let r = 0; r < roots.length && !truncated; r++) {
      const root = roots[r]!
      const rootId = root.key.keyid
      if (this.excluded.has(rootId) || (useRootScope && !matches(root.scope))) continue
      const best = new Map<KeyId, number>([[rootId, this.policy.maxDepth]])
      addReach(reached, rootId, { rootIndex: r, depth: 0, chain: [] })
      type Entry = { keyid: KeyId; budget: number; chain: readonly DelegationEdge[] }
      const queue: Entry[] = [{ keyid: rootId, budget: this.policy.maxDepth, chain: [] }]
      for (let head = 0; head < queue.length; head++) {
        const entry = queue[head]!
        if (entry.budget <= 0) continue
        for (const edge of this.out.get(entry.keyid) ?? []) {
          if (++visits > this.visitCap) {
            truncated = true
            break
          }
          if (this.excluded.has(edge.delegate) || !matches(edge.scope)) continue
          const budget = Math.min(entry.budget - 1, edge.maxDepth)
          const prev = best.get(edge.delegate)
          if (prev !== undefined && prev >= budget) continue
          const chain = [...entry.chain, edge]
          if (prev === undefined) addReach(reached, edge.delegate, { rootIndex: r, depth: chain.length, chain })
          best.set(edge.delegate, budget)
          queue.push({ keyid: edge.delegate, budget, chain })
        }
        if (truncated) break
      }
    }
    if (truncated && !this.capReported.has(base)) {
      this.capReported.add(base)
      this.diagnostics.push({ code: 'visit-cap', message: `delegation walk for ${base} stopped after ${this.visitCap} edges; some keys may be missing`, frameIds: [] })
    }
    const builders = new Map<KeyId, EffectiveBuilder>()
    for (const keyid of [...reached.keys()].sort()) {
      const reaches = reached.get(keyid)!
      // Primary: shortest chain, then root order (reaches are pushed in root order).
      let primary = reaches[0]!
      for (const x of reaches) if (x.depth < primary.depth) primary = x
      const rootIndexes = reaches.map((x) => x.rootIndex)
      const last = primary.chain[primary.chain.length - 1]
      builders.set(keyid, {
        keyid,
        name: last === undefined ? roots[primary.rootIndex]!.name : last.name,
        party: roots[primary.rootIndex]!.name,
        parties: rootIndexes.map((i) => roots[i]!.name),
        rootIndexes,
        chain: primary.chain
      })
    }
    return { base, builders, truncated, visits: Math.min(visits, this.visitCap) }
  }

  explain(keyid: KeyId, purl?: string | ParsedPurl): TrustExplanation {
    const parsed = purl === undefined ? undefined : typeof purl === 'string' ? parsePurl(purl) : purl
    const rootIndex = this.policy.roots.findIndex((r) => r.key.keyid === keyid)
    const rootEntry = rootIndex < 0 ? undefined : this.policy.roots[rootIndex]!
    const root = rootEntry === undefined ? undefined : { name: rootEntry.name, scope: rootEntry.scope }
    const incoming = this.incoming.get(keyid) ?? []
    const excluded = this.excluded.has(keyid)
    const base = { keyid, package: parsed?.canonical, excluded, root, incoming }
    if (excluded) {
      return { ...base, trusted: false, builder: undefined, reason: `key ${keyid} has an accepted equivocation proof: it is trusted for nothing` }
    }
    const anywhere = this.walk('*', matchAll, false).builders.get(keyid)
    const here = parsed === undefined ? anywhere : this.buildersFor(parsed).builders.get(keyid)
    if (here !== undefined) {
      const where = parsed === undefined ? '' : ` for ${parsed.base}`
      const also = here.parties.length > 1 ? ` (also reached from ${here.parties.filter((p) => p !== here.party).map((p) => `"${p}"`).join(', ')})` : ''
      const via = here.chain.length === 0 ? 'as a trust root' : `through ${describeChain(this.policy, here)}`
      return { ...base, trusted: true, builder: here, reason: `trusted${where} as party "${here.party}" ${via}${also}` }
    }
    let reason: string
    if (anywhere !== undefined && parsed !== undefined) {
      reason = `trusted as party "${anywhere.party}" through ${describeChain(this.policy, anywhere)}, but ${parsed.base} is outside a scope on every chain`
    } else if (root !== undefined) {
      reason = `trust root "${root.name}" but its scope [${root.scope.join(', ')}] does not cover ${parsed?.base ?? 'it'}`
    } else if (incoming.length === 0) {
      reason = 'not a trust root, and no delegation names this key'
    } else {
      const states = incoming.map((e) => `${e.state === 'active' ? 'from an untrusted or too deep delegator' : e.state} (${e.delegator.slice(0, 12)}…, v${e.version})`)
      reason = `no usable chain from a trust root: delegations to it are ${states.join('; ')}`
    }
    return { ...base, trusted: false, builder: undefined, reason }
  }
}

function addReach(map: Map<KeyId, Reach[]>, keyid: KeyId, reach: Reach): void {
  const list = map.get(keyid)
  if (list === undefined) map.set(keyid, [reach])
  else list.push(reach)
}

function describeChain(policy: Policy, b: EffectiveBuilder): string {
  const root = policy.roots.find((r) => r.name === b.party)
  const hops = b.chain.map((e) => `"${e.name}" (v${e.version}, scope ${e.scope.join(' ')}, maxDepth ${e.maxDepth}, expires ${e.expires})`)
  return [`root "${b.party}" (scope ${root?.scope.join(' ') ?? '?'})`, ...hops].join(' → ')
}

export function buildTrustGraph(init: TrustGraphInit): TrustGraph {
  return new TrustGraphImpl(init)
}

/**
 * Every key trusted for *some* package: the roots plus keys reachable over active edges, scope
 * and depth ignored (an upper bound of every per-package builder set), minus excluded keys.
 * The node exempts these keys from the per-key storage quota that protects it from strangers.
 */
export function reachableKeys(graph: TrustGraph): Set<KeyId> {
  const out = new Set<KeyId>()
  const byDelegator = new Map<KeyId, KeyId[]>()
  for (const e of graph.edges) {
    if (e.state !== 'active') continue
    const list = byDelegator.get(e.delegator)
    if (list === undefined) byDelegator.set(e.delegator, [e.delegate])
    else list.push(e.delegate)
  }
  const queue = graph.policy.roots.map((r) => r.key.keyid).filter((k) => !graph.excluded.has(k))
  for (const k of queue) out.add(k)
  while (queue.length > 0) {
    const k = queue.pop() as KeyId
    for (const d of byDelegator.get(k) ?? []) {
      if (out.has(d) || graph.excluded.has(d)) continue
      out.add(d)
      queue.push(d)
    }
  }
  return out
}
