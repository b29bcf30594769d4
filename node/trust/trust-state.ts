/**
 * The node's trust state, owned in one place (node/trust/README.md): the policy (the node's
 * policy file), every stored delegation and equivocation proof, the trust graph they make
 * under the policy, the keys that graph reaches, and the cache of decoded stored frames.
 * The ingest quota (isTrusted, trustedKeys), the verdict routes (VerdictService), the watch
 * list and sync's delegation and proof sets all read it; nobody else loads delegations or proofs.
 *
 * Invalidation is event-driven:
 * - the store's `changed` events (a frame stored or evicted): delegations and proofs are added
 *   or removed in memory, never reloaded; evicted frames leave the decoded cache;
 * - the policy file: a watch on its directory (`rbq trust add|remove` and editors write it),
 *   and a stat on every verdict question (as before: an edit is seen by the next question);
 * - delegation expiry: a timer set to the earliest expiry of an edge the graph uses.
 * Each of these bumps `generation` and emits `changed` (the watch list re-evaluates on it).
 *
 * One slow timer stays as a safety net: every minute the policy file is stat-ed again, because a
 * directory watch can miss changes (network file systems, the inotify watch limit, a directory
 * created after start) and the ingest quota has no request of its own to notice an edit.
 */
import { EventEmitter } from 'node:events'
import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import { buildTrustGraph, reachableKeys, type Policy, type TrustGraph } from '../consensus/index.js'
import type { StoreChanges } from '../db/store.js'
import { frameId, openStoredFrame, type DelegationFrame, type EquivocationFrame, type KeyId, type VerifiedFrame } from '../../protocol/index.js'
import { errorFields, silentLogger, type Logger } from '../../common/logger.js'
import type { PolicyFile, PolicyState } from './policy-file.js'

/** Decoded frames kept, least recently used dropped first (≈4 KiB each: ≈80 MiB at most). */
const DECODED_CACHE_MAX = 20_000
/** The safety re-check of the policy file (module comment). */
const POLICY_RECHECK_MS = 60_000
/** setTimeout's longest delay; a later expiry is re-armed when the timer fires. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** What TrustState reads from the store: its trust frames, frames by id, and its change events. */
export interface TrustStore {
  allDelegations(): Promise<Uint8Array[]>
  allProofs(): Promise<Uint8Array[]>
  getFrames(ids: readonly string[]): Promise<Uint8Array[]>
  readonly changes: StoreChanges
}

export interface TrustStateComponents {
  store: TrustStore
  policy: PolicyFile
  logger?: Logger
  /** Milliseconds since the epoch (delegation expiry). Default Date.now. */
  now?: () => number
}

/** One of sync's sets, by frame id in ascending order; `version` changes whenever the set does. */
export interface TrustFrameSet {
  readonly version: number
  readonly frames: ReadonlyMap<string, Uint8Array>
}

export type TrustSetName = 'delegations' | 'proofs'

export interface TrustStateEvents {
  /** The policy, the delegations or proofs, or the set of unexpired edges changed. */
  changed: []
}

interface NodeGraph {
  generation: number
  graph: TrustGraph
  reachable: ReadonlySet<KeyId>
}

export class TrustState extends EventEmitter<TrustStateEvents> {
  readonly policyFile: PolicyFile
  private readonly store: TrustStore
  private readonly logger: Logger
  private readonly now: () => number
  private readonly delegationsById = new Map<string, DelegationFrame>()
  /** The store keeps one proof per key (the first); so does this map. */
  private readonly proofsByKey = new Map<KeyId, EquivocationFrame>()
  private readonly decoded = new Map<string, VerifiedFrame>()
  private policyState: PolicyState | undefined
  private generationValue = 0
  private setVersions: Record<TrustSetName, number> = { delegations: 0, proofs: 0 }
  private sortedSets: Partial<Record<TrustSetName, TrustFrameSet>> = {}
  private nodeGraph: NodeGraph | undefined
  private readonly reachableByGraph = new WeakMap<TrustGraph, ReadonlySet<KeyId>>()
  /** Store events that arrive while start() reads the store: applied after it. */
  private pending: { type: 'stored' | 'evicted'; frames: readonly VerifiedFrame[] }[] | undefined
  private watcher: FSWatcher | undefined
  private recheckTimer: NodeJS.Timeout | undefined
  private expiryTimer: NodeJS.Timeout | undefined
  private expiryAt: number | undefined
  private policyCheck: Promise<void> | undefined
  private policyCheckAgain = false
  private started = false

  constructor(components: TrustStateComponents) {
    super()
    this.store = components.store
    this.policyFile = components.policy
    this.logger = components.logger ?? silentLogger()
    this.now = components.now ?? Date.now
  }

  /** Reads the policy and every stored delegation and proof; then follows changes. */
  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    this.pending = []
    this.store.changes.on('stored', this.onStored)
    this.store.changes.on('evicted', this.onEvicted)
    try {
      const [delegations, proofs] = await Promise.all([this.store.allDelegations(), this.store.allProofs()])
      for (const bytes of delegations) this.addFrame(openStoredFrame(bytes))
      for (const bytes of proofs) this.addFrame(openStoredFrame(bytes))
      for (const { type, frames } of this.pending) this.apply(type, frames)
      this.pending = undefined
      this.policyState = await this.policyFile.current()
    } catch (e) {
      this.stop()
      throw e
    }
    this.generationValue++
    this.watchPolicyFile()
    this.recheckTimer = setInterval(() => void this.recheckPolicy(), POLICY_RECHECK_MS).unref()
  }

  stop(): void {
    this.started = false
    this.pending = undefined
    this.store.changes.off('stored', this.onStored)
    this.store.changes.off('evicted', this.onEvicted)
    this.watcher?.close()
    this.watcher = undefined
    clearInterval(this.recheckTimer)
    this.recheckTimer = undefined
    this.clearExpiryTimer()
  }

  /** Grows whenever the trust graph of the node policy may differ (policy, delegations, proofs, an expiry). */
  get generation(): number {
    return this.generationValue
  }

  // --- reading -------------------------------------------------------------------------------

  /** The node policy as last read, after checking the file for changes (a stat). */
  async policy(): Promise<PolicyState> {
    await this.checkPolicy(false)
    return this.policyState!
  }

  /** The trust graph of the node policy, current (the policy file checked); the policy's error when it has none. */
  async graph(): Promise<TrustGraph> {
    const state = await this.policy()
    if (state.policy === undefined) throw state.error
    return this.currentGraph(state.policy).graph
  }

  /** A trust graph for another policy (one sent with a request) over the stored delegations and proofs. */
  graphFor(policy: Policy): TrustGraph {
    return buildTrustGraph({ policy, delegations: [...this.delegationsById.values()], proofs: [...this.proofsByKey.values()], now: this.now() })
  }

  /** Keys a graph trusts for some package (computed once per graph). */
  reachable(graph: TrustGraph): ReadonlySet<KeyId> {
    const current = this.nodeGraph
    if (current?.graph === graph) return current.reachable
    let keys = this.reachableByGraph.get(graph)
    if (keys === undefined) this.reachableByGraph.set(graph, (keys = reachableKeys(graph)))
    return keys
  }

  /** Whether the node policy trusts `keyid` for some package (the ingest quota); nobody without a valid policy. */
  isTrusted(keyid: KeyId): boolean {
    return this.trustedKeys().has(keyid)
  }

  /** Every key the node policy trusts for some package; the same object until trust changes. */
  trustedKeys(): ReadonlySet<KeyId> {
    const policy = this.policyState?.policy
    return policy === undefined ? NO_KEYS : this.currentGraph(policy).reachable
  }

  /** Keys proved to have equivocated (stored proofs). */
  equivocators(): ReadonlySet<KeyId> {
    return new Set(this.proofsByKey.keys())
  }

  /** Sync's delegation or proof set: frame id → canonical bytes, ascending ids. */
  frameSet(name: TrustSetName): TrustFrameSet {
    const version = this.setVersions[name]
    const cached = this.sortedSets[name]
    if (cached?.version === version) return cached
    const frames: VerifiedFrame[] = name === 'delegations' ? [...this.delegationsById.values()] : [...this.proofsByKey.values()]
    frames.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    const set: TrustFrameSet = { version, frames: new Map(frames.map((f) => [f.id, f.bytes])) }
    this.sortedSets[name] = set
    return set
  }

  /** Decoded stored frames by id, in the order asked (cached); unknown ids are skipped. */
  async frames(ids: readonly string[]): Promise<VerifiedFrame[]> {
    const found = new Map<string, VerifiedFrame>()
    const missing: string[] = []
    for (const id of ids) {
      const f = this.decoded.get(id)
      if (f === undefined) {
        missing.push(id)
        continue
      }
      // Most recently used last: eviction takes the first key.
      this.decoded.delete(id)
      this.decoded.set(id, f)
      found.set(id, f)
    }
    if (missing.length > 0) {
      const bytes = await this.store.getFrames(missing)
      const aligned = bytes.length === missing.length
      bytes.forEach((b, i) => {
        const id = aligned ? missing[i]! : frameId(b)
        // Stored frames passed the full decode (signature included) before they were stored.
        const f = openStoredFrame(b)
        this.remember(id, f)
        found.set(id, f)
      })
    }
    const out: VerifiedFrame[] = []
    for (const id of ids) {
      const f = found.get(id)
      if (f !== undefined) out.push(f)
    }
    return out
  }

  /** Forgets decoded frames and the built graph (benchmarks measure cold answers with it); the trust frames stay. */
  dropCaches(): void {
    this.decoded.clear()
    this.nodeGraph = undefined
  }

  // --- invalidation --------------------------------------------------------------------------

  /** The node graph for `policy`, rebuilt when trust changed or an edge it uses expired. */
  private currentGraph(policy: Policy): NodeGraph {
    const cached = this.nodeGraph
    const now = this.now()
    if (cached !== undefined && cached.generation === this.generationValue && cached.graph.policy === policy && (cached.graph.validUntil === undefined || now < cached.graph.validUntil)) {
      return cached
    }
    const graph = buildTrustGraph({ policy, delegations: [...this.delegationsById.values()], proofs: [...this.proofsByKey.values()], now })
    this.nodeGraph = { generation: this.generationValue, graph, reachable: reachableKeys(graph) }
    this.armExpiryTimer(graph.validUntil, now)
    return this.nodeGraph
  }

  private changed(): void {
    this.generationValue++
    this.emit('changed')
  }

  private readonly onStored = (frames: readonly VerifiedFrame[]): void => this.apply('stored', frames)
  private readonly onEvicted = (frames: readonly VerifiedFrame[]): void => this.apply('evicted', frames)

  private apply(type: 'stored' | 'evicted', frames: readonly VerifiedFrame[]): void {
    if (this.pending !== undefined) {
      this.pending.push({ type, frames })
      return
    }
    let trustChanged = false
    for (const frame of frames) {
      if (type === 'stored') trustChanged = this.addFrame(frame) || trustChanged
      else trustChanged = this.removeFrame(frame) || trustChanged
    }
    if (trustChanged) this.changed()
  }

  /** Adds a stored delegation or proof; true when the trust frames changed. */
  private addFrame(frame: VerifiedFrame): boolean {
    if (frame.kind === 'delegation') {
      if (this.delegationsById.has(frame.id)) return false
      this.delegationsById.set(frame.id, frame)
      this.setVersions.delegations++
      return true
    }
    if (frame.kind === 'equivocation') {
      if (this.proofsByKey.has(frame.proof.keyid)) return false
      this.proofsByKey.set(frame.proof.keyid, frame)
      this.setVersions.proofs++
      return true
    }
    return false
  }

  /** Forgets an evicted frame (the store never evicts proofs); true when the trust frames changed. */
  private removeFrame(frame: VerifiedFrame): boolean {
    this.decoded.delete(frame.id)
    if (frame.kind !== 'delegation' || !this.delegationsById.delete(frame.id)) return false
    this.setVersions.delegations++
    return true
  }

  /**
   * Re-reads the policy file's state; `fresh` never answers from a check that began before this
   * call (a change just announced by the watch is seen). Concurrent calls share one check, and
   * one more runs when asked meanwhile.
   */
  private checkPolicy(fresh: boolean): Promise<void> {
    if (this.policyCheck !== undefined) {
      if (fresh) this.policyCheckAgain = true
      return this.policyCheck
    }
    this.policyCheck = (async () => {
      let again = fresh
      do {
        this.policyCheckAgain = false
        const state = again ? await this.policyFile.recheck() : await this.policyFile.current()
        const before = this.policyState
        this.policyState = state
        if (before !== undefined && before.generation !== state.generation) this.changed()
        again = this.policyCheckAgain
      } while (again)
    })().finally(() => (this.policyCheck = undefined))
    return this.policyCheck
  }

  private recheckPolicy(): Promise<void> {
    return this.checkPolicy(true).catch((e: unknown) => this.logger.warn(errorFields(e), 'policy file not re-checked'))
  }

  /** Watches the policy file's directory (editors replace the file); without it, the safety timer. */
  private watchPolicyFile(): void {
    const file = this.policyFile.file
    const name = basename(file)
    try {
      this.watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
        if (changed === null || changed === name) void this.recheckPolicy()
      })
      this.watcher.on('error', (e) => {
        this.logger.warn({ file, ...errorFields(e) }, 'policy file watch stopped; edits are noticed within a minute')
        this.watcher?.close()
        this.watcher = undefined
      })
    } catch (e) {
      this.logger.warn({ file, ...errorFields(e) }, 'policy file not watched; edits are noticed within a minute')
    }
  }

  /** A timer at the graph's earliest expiry: the graph is rebuilt and listeners told. */
  private armExpiryTimer(validUntil: number | undefined, now: number): void {
    if (!this.started || validUntil === this.expiryAt) return
    this.clearExpiryTimer()
    if (validUntil === undefined) return
    this.expiryAt = validUntil
    this.expiryTimer = setTimeout(() => {
      this.expiryTimer = undefined
      this.expiryAt = undefined
      if (this.now() >= validUntil) this.changed()
      else {
        // Fired early (a long delay was capped, or the clock is not the timer's): re-arm.
        const policy = this.policyState?.policy
        if (policy !== undefined) this.armExpiryTimer(this.currentGraph(policy).graph.validUntil, this.now())
      }
    }, Math.min(Math.max(validUntil - now, 0) + 1, MAX_TIMER_MS)).unref()
  }

  private clearExpiryTimer(): void {
    clearTimeout(this.expiryTimer)
    this.expiryTimer = undefined
    this.expiryAt = undefined
  }

  private remember(id: string, frame: VerifiedFrame): void {
    if (this.decoded.size >= DECODED_CACHE_MAX) {
      const oldest = this.decoded.keys().next().value
      if (oldest !== undefined) this.decoded.delete(oldest)
    }
    this.decoded.set(id, frame)
  }
}

const NO_KEYS: ReadonlySet<KeyId> = new Set()
