/**
 * What the bridge remembers between imports, in its own LevelDB (`<data>/bridge-state/`, apart
 * from the node's store, which the running node holds open):
 *
 *   imported!<origin>\0<build id>\0<artifact file name>  → { sha256, authenticated, at }
 *       an upstream record already turned into a statement the node stored: the same record is
 *       never signed again (a cron import would otherwise re-gossip every row under new seqs).
 *       A rebuilderd build id is never reused for another rebuild, so (origin, build id, file)
 *       names one upstream record; the digest is kept to notice an instance that changes it.
 *       A record imported unauthenticated is imported again once it can be verified.
 *   http!<choices>\0<url>  → { etag?, lastModified?, lastId?, rows }
 *       validators of a list page, saved only after everything from it was stored, so a 304
 *       next time means "nothing new" and paging can continue from `lastId`.
 *
 * LevelDB's lock also keeps two imports into one data dir from running at once.
 */
import { Level } from 'level'
import { RbqError } from '../../protocol/index.js'
import type { Validators } from './list-source.js'

export interface ImportedRecord {
  sha256: string
  authenticated: boolean
  at: string
}

export interface PageMemo extends Validators {
  lastId?: number
  rows: number
}

export interface RecordKey {
  origin: string
  /** rebuilderd build id; rows from files without one use name/version/arch. */
  buildId: number | undefined
  artifact: string
}

function recordKey(k: RecordKey): string {
  return `imported!${k.origin}\0${k.buildId ?? '-'}\0${k.artifact}`
}

export class BridgeState {
  private constructor(private readonly db: Level<string, string>) {}

  static async open(dir: string): Promise<BridgeState> {
    const db = new Level<string, string>(dir, { createIfMissing: true })
    try {
      await db.open()
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause
      const locked = /lock/i.test(`${cause?.code ?? ''} ${cause?.message ?? ''} ${(e as Error).message}`)
      throw new RbqError(
        locked ? 'USAGE' : 'STORE_ERROR',
        locked ? `${dir} is in use: another rbq import is running into this data directory` : `${dir}: ${(e as Error).message}`,
        { cause: e }
      )
    }
    return new BridgeState(db)
  }

  async close(): Promise<void> {
    await this.db.close()
  }

  async imported(keys: readonly RecordKey[]): Promise<(ImportedRecord | undefined)[]> {
    if (keys.length === 0) return []
    const values = await this.db.getMany(keys.map(recordKey))
    return values.map((v) => (v === undefined ? undefined : (JSON.parse(v) as ImportedRecord)))
  }

  async markImported(records: readonly (RecordKey & Omit<ImportedRecord, 'at'>)[], now = new Date()): Promise<void> {
    if (records.length === 0) return
    await this.db.batch(
      records.map((r) => ({
        type: 'put' as const,
        key: recordKey(r),
        value: JSON.stringify({ sha256: r.sha256, authenticated: r.authenticated, at: now.toISOString() } satisfies ImportedRecord)
      }))
    )
  }

  async page(key: string): Promise<PageMemo | undefined> {
    const v = await this.db.get(`http!${key}`)
    return v === undefined ? undefined : (JSON.parse(v) as PageMemo)
  }

  async savePages(pages: ReadonlyMap<string, PageMemo>): Promise<void> {
    if (pages.size === 0) return
    await this.db.batch([...pages].map(([key, memo]) => ({ type: 'put' as const, key: `http!${key}`, value: JSON.stringify(memo) })))
  }
}
