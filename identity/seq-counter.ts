/**
 * The per-key `builder.seq` counter. A seq is persisted (written, fsynced, renamed) before the
 * statement that uses it is signed, so a crash can skip a number but never reuse one: reuse
 * with a different statement would be an equivocation and get the key dropped by every peer.
 */
import { promises as fs } from 'node:fs'
import { dirname } from 'node:path'
import { RbqError, type KeyId } from '../protocol/index.js'
import { withFileLock } from './file-lock.js'

interface SeqState {
  keyid: KeyId
  lastSeq: number
}

export function seqFileFor(keyFile: string): string {
  return `${keyFile}.seq`
}

export class SeqCounter {
  private queue: Promise<unknown> = Promise.resolve()

  constructor(
    readonly path: string,
    readonly keyid: KeyId
  ) {}

  /** The highest seq ever reserved (0 when none). */
  async last(): Promise<number> {
    let text: string
    try {
      text = await fs.readFile(this.path, 'utf8')
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0
      throw new RbqError('FILE_UNREADABLE', `seq state ${this.path}: ${(e as Error).message}`, { cause: e })
    }
    let state: Partial<SeqState>
    try {
      state = JSON.parse(text) as Partial<SeqState>
    } catch {
      throw new RbqError('SEQ_STATE_INVALID', `seq state ${this.path} is not valid JSON; refusing to guess (a reused seq is an equivocation)`)
    }
    if (state.keyid !== this.keyid || !Number.isSafeInteger(state.lastSeq) || (state.lastSeq as number) < 0) {
      throw new RbqError('SEQ_STATE_INVALID', `seq state ${this.path} does not belong to key ${this.keyid.slice(0, 16)}… or is corrupt`)
    }
    return state.lastSeq as number
  }

  /**
   * Reserves and persists the next seq (or `explicit`, which must be above every seq used so
   * far). Serialised within this process (a queue) and across processes (a lock file), so two
   * signers of one key never share a number.
   */
  reserve(explicit?: number): Promise<number> {
    return this.exclusive(async (last) => {
      const seq = explicit ?? last + 1
      if (!Number.isSafeInteger(seq) || seq < 1) throw new RbqError('USAGE', `seq must be a positive integer, got ${seq}`)
      if (seq <= last) {
        throw new RbqError('USAGE', `seq ${seq} is not above ${last}, the last seq this key used: reusing a seq for a different statement is an equivocation`)
      }
      await this.persist(seq)
      return seq
    })
  }

  /** Reserves `count` consecutive seqs at once; returns the first. */
  reserveBlock(count: number): Promise<number> {
    if (!Number.isSafeInteger(count) || count < 1) return Promise.reject(new RbqError('USAGE', `cannot reserve ${count} seqs`))
    return this.exclusive(async (last) => {
      await this.persist(last + count)
      return last + 1
    })
  }

  private exclusive<T>(fn: (last: number) => Promise<T>): Promise<T> {
    const next = this.queue.then(async () => {
      await fs.mkdir(dirname(this.path), { recursive: true })
      return withFileLock(`${this.path}.lock`, async () => fn(await this.last()))
    })
    this.queue = next.catch(() => undefined)
    return next
  }

  private async persist(lastSeq: number): Promise<void> {
    await fs.mkdir(dirname(this.path), { recursive: true })
    const tmp = `${this.path}.tmp-${process.pid}`
    const handle = await fs.open(tmp, 'w', 0o600)
    try {
      await handle.writeFile(JSON.stringify({ keyid: this.keyid, lastSeq } satisfies SeqState) + '\n')
      await handle.sync()
    } finally {
      await handle.close()
    }
    await fs.rename(tmp, this.path)
    const dir = await fs.open(dirname(this.path), 'r')
    try {
      await dir.sync()
    } finally {
      await dir.close()
    }
  }
}
