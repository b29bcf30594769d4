/**
 * Storage quota per untrusted signing key, so strangers cannot fill the disk: at most
 * `maxFramesPerKey` frames and `maxBytesPerKey` canonical bytes stored per key. Trusted keys
 * (and this node's own key) are unlimited. Usage is what the store holds (Bucket.keyStats)
 * plus what the current write batch already admitted.
 *
 * Keys are free to make, so the per-key quota bounds each stranger, not all strangers together:
 * StrangerBudget (below) bounds them together.
 */
import type { Counter, Gauge } from 'prom-client'
import { RbqError, type KeyId } from '../../protocol/index.js'
import type { Store } from '../db/store.js'
import type { ArrivalEntry, KeyUsage } from '../db/store-types.js'
import type { Logger } from '../../common/logger.js'
import type { Metrics } from '../metrics.js'

export interface QuotaLimits {
  maxFramesPerKey: number
  maxBytesPerKey: number
}

/** Generous enough for an honest volunteer node rebuilding a large share of Debian for years. */
export const DEFAULT_QUOTA_LIMITS: QuotaLimits = {
  maxFramesPerKey: 100_000,
  maxBytesPerKey: 256 * 1024 * 1024
}

export class KeyQuota {
  constructor(
    private readonly limits: QuotaLimits,
    private readonly isTrusted: (keyid: KeyId) => boolean
  ) {}

  /** A quota check for one write batch; `usageOf` reads what is stored. */
  batch(usageOf: (keyid: KeyId) => Promise<KeyUsage>): QuotaBatch {
    return new QuotaBatch(this.limits, this.isTrusted, usageOf)
  }
}

export class QuotaBatch {
  private readonly usage = new Map<KeyId, KeyUsage>()

  constructor(
    private readonly limits: QuotaLimits,
    private readonly isTrusted: (keyid: KeyId) => boolean,
    private readonly usageOf: (keyid: KeyId) => Promise<KeyUsage>
  ) {}

  /** Counts a frame of `bytes` against `keyid`, or throws QUOTA_EXCEEDED without counting it. */
  async admit(keyid: KeyId, bytes: number): Promise<void> {
    if (this.isTrusted(keyid)) return
    let usage = this.usage.get(keyid)
    if (usage === undefined) {
      const stored = await this.usageOf(keyid)
      usage = { frames: stored.frames, bytes: stored.bytes }
      this.usage.set(keyid, usage)
    }
    if (usage.frames + 1 > this.limits.maxFramesPerKey || usage.bytes + bytes > this.limits.maxBytesPerKey) {
      throw new RbqError(
        'QUOTA_EXCEEDED',
        `key ${keyid.slice(0, 16)}… is over its storage quota (${usage.frames} frames, ${usage.bytes} bytes stored; limits ${this.limits.maxFramesPerKey} frames, ${this.limits.maxBytesPerKey} bytes)`
      )
    }
    usage.frames += 1
    usage.bytes += bytes
  }
}

export interface StrangerBudgetLimits {
  /** Frames stored from keys no policy trusts, all such keys together. */
  maxStrangerFrames: number
  /** Their canonical bytes. */
  maxStrangerBytes: number
}

/** ≈1.5 KB a frame: 200k frames ≈ 300 MB, room for many honest volunteers not (yet) trusted. */
export const DEFAULT_STRANGER_BUDGET: StrangerBudgetLimits = {
  maxStrangerFrames: 200_000,
  maxStrangerBytes: 300 * 1024 * 1024
}

/** Arrival entries read per eviction step. */
const EVICTION_PAGE = 512

export interface StrangerBudgetComponents {
  store: Store
  /** Keys the node policy trusts now (roots and their delegates); a new set object when it changes. */
  trustedKeys: () => ReadonlySet<KeyId>
  /** This node's own key: never a stranger. */
  ownKey: KeyId
  metrics?: Metrics
  logger?: Logger
}

/**
 * The total budget for statements of keys no policy trusts ("strangers"): after each write, when
 * their frames or bytes exceed the limits, the OLDEST of their frames (store arrival order) are
 * evicted until both are within. Never evicted: frames of trusted keys or of this node, and
 * equivocation proofs (the store keeps them out of the arrival order). Delegations signed by a
 * stranger are evictable: a trusted chain only uses delegations its trusted keys signed.
 *
 * Stranger usage = everything stored − what trusted keys and this node stored (Bucket.keyStats),
 * so it follows the policy as it changes. Proofs signed by strangers count but are kept.
 * Eviction is the store's atomic batch (frame, every index entry, counters: Store.evict).
 * The scan position is kept across calls and restarted when the trusted set changes, so frames
 * of trusted keys are stepped over once, not at every write.
 */
export class StrangerBudget {
  private cursor: string | undefined
  private cursorTrust: ReadonlySet<KeyId> | undefined
  private readonly evictedFrames: Counter | undefined
  private readonly evictedBytes: Counter | undefined

  constructor(
    private readonly components: StrangerBudgetComponents,
    readonly limits: StrangerBudgetLimits
  ) {
    const { metrics } = components
    if (metrics === undefined) return
    const frames: Gauge = metrics.gauge({
      name: 'rbq_store_stranger_frames',
      help: 'Frames stored from keys no policy trusts (bounded by [ingest] max_stranger_frames)',
      collect: async () => frames.set((await this.usage()).frames)
    })
    const bytes: Gauge = metrics.gauge({
      name: 'rbq_store_stranger_bytes',
      help: 'Canonical bytes stored from keys no policy trusts (bounded by [ingest] max_stranger_bytes)',
      collect: async () => bytes.set((await this.usage()).bytes)
    })
    this.evictedFrames = metrics.counter({ name: 'rbq_store_evicted_frames_total', help: 'Frames of untrusted keys evicted to keep within the stranger budget' })
    this.evictedBytes = metrics.counter({ name: 'rbq_store_evicted_bytes_total', help: 'Canonical bytes of untrusted keys evicted to keep within the stranger budget' })
  }

  /** Frames and bytes stored from strangers now. */
  async usage(): Promise<KeyUsage> {
    const { store, ownKey } = this.components
    const usage = store.usage()
    const kept = new Set(this.components.trustedKeys())
    kept.add(ownKey)
    for (const keyid of kept) {
      const stats = await store.keyStats(keyid)
      usage.frames -= stats.frames
      usage.bytes -= stats.bytes
    }
    return { frames: Math.max(0, usage.frames), bytes: Math.max(0, usage.bytes) }
  }

  /** Evicts strangers' oldest frames until their usage is within the limits; returns what was freed. */
  async enforce(): Promise<KeyUsage> {
    const freed: KeyUsage = { frames: 0, bytes: 0 }
    let usage = await this.usage()
    if (this.within(usage)) return freed
    const trusted = this.components.trustedKeys()
    if (trusted !== this.cursorTrust) {
      this.cursor = undefined
      this.cursorTrust = trusted
    }
    const { store, ownKey } = this.components
    while (!this.within(usage)) {
      const page = await store.arrivals(this.cursor, EVICTION_PAGE)
      if (page.length === 0) break
      const needFrames = usage.frames - this.limits.maxStrangerFrames
      const needBytes = usage.bytes - this.limits.maxStrangerBytes
      const victims: ArrivalEntry[] = []
      let frames = 0
      let bytes = 0
      for (const entry of page) {
        this.cursor = entry.key
        if (entry.keyid === ownKey || trusted.has(entry.keyid)) continue
        victims.push(entry)
        frames += 1
        bytes += entry.bytes
        if (frames >= needFrames && bytes >= needBytes) break
      }
      const step = await store.evict(victims)
      freed.frames += step.frames
      freed.bytes += step.bytes
      usage = { frames: usage.frames - step.frames, bytes: usage.bytes - step.bytes }
    }
    if (freed.frames > 0) {
      this.evictedFrames?.inc(freed.frames)
      this.evictedBytes?.inc(freed.bytes)
      this.components.logger?.debug({ frames: freed.frames, bytes: freed.bytes, strangerFrames: usage.frames, strangerBytes: usage.bytes }, "strangers' oldest frames evicted")
    }
    return freed
  }

  private within(usage: KeyUsage): boolean {
    return usage.frames <= this.limits.maxStrangerFrames && usage.bytes <= this.limits.maxStrangerBytes
  }
}
