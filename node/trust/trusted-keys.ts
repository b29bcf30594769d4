/**
 * The set of keys the node's own policy trusts for some package (roots and their delegates),
 * answered synchronously for the ingest pipeline's quota check and refreshed in the background:
 * on start, when a delegation or equivocation proof is stored, and every minute (policy file
 * edits, expiries). Without a valid policy nobody is trusted: strangers' quotas apply to all.
 */
import { buildTrustGraph, reachableKeys } from '../consensus/index.js'
import type { Store } from '../db/store.js'
import type { Logger } from '../../common/logger.js'
import { openStoredFrame, type DelegationFrame, type EquivocationFrame, type KeyId } from '../../protocol/index.js'
import type { PolicyFile } from './policy-file.js'

const REFRESH_INTERVAL_MS = 60_000

export class TrustedKeys {
  private keys = new Set<KeyId>()
  private timer: NodeJS.Timeout | undefined
  private refreshing: Promise<void> | undefined
  private again = false

  constructor(private readonly components: { store: Store; policy: PolicyFile; logger: Logger }) {}

  isTrusted(keyid: KeyId): boolean {
    return this.keys.has(keyid)
  }

  /** The current set; replaced (a new object) on every refresh. */
  get all(): ReadonlySet<KeyId> {
    return this.keys
  }

  get size(): number {
    return this.keys.size
  }

  async start(): Promise<void> {
    await this.refresh()
    this.timer = setInterval(() => void this.refresh(), REFRESH_INTERVAL_MS)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  /** Coalesces concurrent requests: one refresh runs, and one more follows if asked meanwhile. */
  refresh(): Promise<void> {
    if (this.refreshing !== undefined) {
      this.again = true
      return this.refreshing
    }
    this.refreshing = (async () => {
      do {
        this.again = false
        await this.recompute()
      } while (this.again)
    })().finally(() => (this.refreshing = undefined))
    return this.refreshing
  }

  private async recompute(): Promise<void> {
    const { store, policy, logger } = this.components
    try {
      const state = await policy.current()
      if (state.policy === undefined) {
        this.keys = new Set()
        return
      }
      const delegations = (await store.allDelegations()).map((b) => openStoredFrame(b) as DelegationFrame)
      const proofs = (await store.allProofs()).map((b) => openStoredFrame(b) as EquivocationFrame)
      this.keys = reachableKeys(buildTrustGraph({ policy: state.policy, delegations, proofs, now: Date.now() }))
    } catch (e) {
      logger.warn({ err: (e as Error).message }, 'trusted keys not refreshed; keeping the previous set')
    }
  }
}
