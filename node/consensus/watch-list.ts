/**
 * Watched artifacts (installed packages): each keeps its last verdict and evidence hash in the
 * store's 'watched' sublevel, so "was reproducible, now isn't" is noticed across restarts too.
 * When frames are stored, only the watches they can affect are recomputed; when the trust graph
 * changes (policy file edited, delegation or proof stored, a delegation expired: TrustState's
 * `changed` event, node/trust/README.md), all of them are. Nothing polls: trust changes and
 * stored frames are the only triggers. Every change of evidence hash becomes a `verdict` event
 * (node/api/node-events.ts).
 *
 * The "affected" rule is node/consensus/reevaluate.ts's: an attestation affects the watched
 * artifacts of its package named in its subject or upstream, or every watched artifact of its
 * package when it reports a failure. (That Reevaluator keeps its state in memory over a synchronous source;
 * here the state is persistent and the candidates are read from LevelDB in chunks.)
 *
 * Record: key `package \0 artifact \0 sha256` → WatchRecord (json).
 */
import type { Logger } from 'pino'
import { artifactNamesOf, type TrustGraph } from './index.js'
import type { Store } from '../db/store.js'
import type { VerifiedFrame } from '../../protocol/index.js'
import type { ApiVerdictStatus, VerdictEvent, WatchItem, WatchRequest, WatchedArtifact } from '../../protocol/api.js'
import { canonicalPurl, RbqError } from '../../protocol/index.js'
import type { VerdictService } from './verdict-service.js'
import type { TrustState } from '../trust/trust-state.js'

type WatchRecord = WatchedArtifact

const SEP = '\x00'
const keyOf = (r: { package: string; artifact: string; sha256: string }) => [r.package, r.artifact, r.sha256].join(SEP)
/** Verdicts recomputed per step (bounds memory during a full re-evaluation). */
const CHUNK = 1000

export interface WatchListComponents {
  store: Store
  verdicts: VerdictService
  /** Its `changed` events re-evaluate every watch. */
  trust: Pick<TrustState, 'on' | 'off'>
  /** Called for every verdict change of a watched artifact. */
  onChange?: (event: VerdictEvent) => void
  logger?: Logger
}

export class WatchList {
  private readonly records = new Map<string, WatchRecord>()
  private readonly byPackage = new Map<string, Set<string>>()
  private readonly pendingFrames: VerifiedFrame[] = []
  private chain: Promise<unknown> = Promise.resolve()
  private queued = false
  private lastGraph: TrustGraph | undefined

  constructor(private readonly components: WatchListComponents) {}

  get size(): number {
    return this.records.size
  }

  private get db() {
    return this.components.store.sublevel<WatchRecord>('watched')
  }

  async start(): Promise<void> {
    for await (const [key, record] of this.db.iterator()) this.index(key, record)
    this.components.trust.on('changed', this.onTrustChanged)
    this.notify([]) // first check: catches changes made while the node was down
  }

  async stop(): Promise<void> {
    this.components.trust.off('changed', this.onTrustChanged)
    await this.settle()
  }

  /** The trust graph changed: every watch is recomputed (reevaluate sees a new graph). */
  private readonly onTrustChanged = (): void => this.notify([])

  /** Resolves when every queued re-evaluation has run. */
  async settle(): Promise<void> {
    let seen: Promise<unknown>
    do {
      seen = this.chain
      await seen
    } while (seen !== this.chain)
  }

  list(): WatchedArtifact[] {
    return [...this.records.keys()].sort().map((k) => this.records.get(k)!)
  }

  /** Frames newly stored: re-evaluates what they affect (serialised, batched). */
  notify(frames: readonly VerifiedFrame[]): void {
    this.pendingFrames.push(...frames)
    if (this.queued) return
    this.queued = true
    this.chain = this.chain.then(async () => {
      this.queued = false
      const batch = this.pendingFrames.splice(0)
      try {
        await this.reevaluate(batch)
      } catch (e) {
        // No policy yet, or a store error: the next notification tries again.
        this.components.logger?.debug({ err: (e as Error).message }, 'watch re-evaluation skipped')
      }
    })
  }

  /** Adds, removes or replaces watched artifacts; returns the state of the artifacts named. */
  change(req: WatchRequest): Promise<WatchedArtifact[]> {
    const run = this.chain.then(() => this.applyChange(req))
    this.chain = run.catch(() => undefined)
    return run
  }

  private async applyChange(req: WatchRequest): Promise<WatchedArtifact[]> {
    const items = req.artifacts.map((a, i) => normalizeItem(a, i))
    if (req.remove === true) {
      const gone = items.filter((it) => this.records.has(keyOf(it)))
      await this.db.batch(gone.map((it) => ({ type: 'del' as const, key: keyOf(it) })))
      for (const it of gone) this.unindex(keyOf(it))
      return []
    }
    const wanted = new Map(items.map((it) => [keyOf(it), it]))
    const drop = req.replace === true ? [...this.records.keys()].filter((k) => !wanted.has(k)) : []
    const fresh = [...wanted.entries()].filter(([k]) => !this.records.has(k))
    const since = new Date().toISOString()
    const added: WatchRecord[] = fresh.map(([, it]) => ({ ...it, since, status: null, reason: null, evidenceHash: null }))
    // Baseline verdicts for the new ones (no event: the caller gets them in the answer).
    await this.evaluate(added, false)
    await this.db.batch([
      ...drop.map((key) => ({ type: 'del' as const, key })),
      ...added.map((r) => ({ type: 'put' as const, key: keyOf(r), value: r }))
    ])
    for (const k of drop) this.unindex(k)
    for (const r of added) this.index(keyOf(r), r)
    return [...wanted.keys()].map((k) => this.records.get(k)!)
  }

  private async reevaluate(frames: readonly VerifiedFrame[]): Promise<void> {
    if (this.records.size === 0) return
    const graph = await this.components.verdicts.trust()
    let keys: Iterable<string>
    if (graph !== this.lastGraph) {
      keys = [...this.records.keys()]
      this.lastGraph = graph
    } else {
      keys = this.affectedBy(frames)
    }
    const records = [...keys].sort().map((k) => this.records.get(k)).filter((r): r is WatchRecord => r !== undefined)
    const changed = await this.evaluate(records, true)
    if (changed.length > 0) await this.db.batch(changed.map((r) => ({ type: 'put' as const, key: keyOf(r), value: r })))
  }

  /** Watch keys that frames can affect (module comment). */
  private affectedBy(frames: readonly VerifiedFrame[]): Set<string> {
    const out = new Set<string>()
    for (const f of frames) {
      if (f.kind !== 'attestation') continue // trust frames change the graph: handled by the caller
      const p = f.statement.predicate
      const keys = this.byPackage.get(p.package)
      if (keys === undefined) continue
      const names = p.outcome === 'failed' ? undefined : new Set(artifactNamesOf(f))
      for (const k of keys) if (names === undefined || names.has(this.records.get(k)!.artifact)) out.add(k)
    }
    return out
  }

  /**
   * Recomputes verdicts of `records` in chunks, updating them in place (and in the index);
   * returns those whose evidence hash changed, emitting events when `emit`.
   */
  private async evaluate(records: WatchRecord[], emit: boolean): Promise<WatchRecord[]> {
    const changed: WatchRecord[] = []
    for (let i = 0; i < records.length; i += CHUNK) {
      const chunk = records.slice(i, i + CHUNK)
      let results
      try {
        results = await this.components.verdicts.answer(chunk.map((r) => ({ package: r.package, artifact: r.artifact, sha256: r.sha256 })))
      } catch (e) {
        if (!emit && e instanceof RbqError && e.code === 'POLICY_INVALID') return [] // added without a verdict for now
        throw e
      }
      chunk.forEach((r, j) => {
        const result = results[j]!
        const v = result.verdicts[0]
        const evidenceHash = v?.evidenceHash ?? null
        if (evidenceHash === r.evidenceHash) return
        const before = { status: r.status, evidenceHash: r.evidenceHash }
        r.status = result.status as ApiVerdictStatus
        r.reason = result.reason
        r.evidenceHash = evidenceHash
        changed.push(r)
        if (emit && evidenceHash !== null) {
          this.components.onChange?.({
            package: r.package,
            artifact: r.artifact,
            sha256: r.sha256,
            from: before.status,
            to: r.status,
            reason: r.reason,
            evidenceHash,
            previousEvidenceHash: before.evidenceHash
          })
        }
      })
    }
    return changed
  }

  private index(key: string, record: WatchRecord): void {
    this.records.set(key, record)
    let set = this.byPackage.get(record.package)
    if (set === undefined) this.byPackage.set(record.package, (set = new Set()))
    set.add(key)
  }

  private unindex(key: string): void {
    const r = this.records.get(key)
    if (r === undefined) return
    this.records.delete(key)
    const set = this.byPackage.get(r.package)
    set?.delete(key)
    if (set?.size === 0) this.byPackage.delete(r.package)
  }
}

function normalizeItem(a: WatchItem, i: number): WatchItem {
  return { package: canonicalPurl(a.package, `artifacts[${i}].package`), artifact: a.artifact, sha256: a.sha256.toLowerCase() }
}
