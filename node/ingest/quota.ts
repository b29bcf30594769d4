/**
 * Storage quota per untrusted signing key, so strangers cannot fill the disk: at most
 * `maxFramesPerKey` frames and `maxBytesPerKey` canonical bytes stored per key. Trusted keys
 * (and this node's own key) are unlimited. Usage is what the store holds (Bucket.keyStats)
 * plus what the current write batch already admitted.
 *
 * Keys are free to make, so this bounds each stranger, not all strangers together.
 */
import { RbqError, type KeyId } from '../../protocol/index.js'
import type { KeyUsage } from '../db/types.js'

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
