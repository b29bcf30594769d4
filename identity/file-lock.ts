/**
 * A cross-process lock file (O_EXCL create, holder's pid inside). A lock left by a dead process
 * is taken over. Used around the seq counter: the node, `rbq rebuild --publish`, `rbq attest`
 * and `rbq import` may sign with one key at the same time, and a shared seq is an equivocation.
 */
import { constants, promises as fs } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { RbqError } from '../protocol/index.js'

/** Holders only write one small file and fsync it, so waiting long means something is stuck. */
const LOCK_WAIT_MS = 30_000

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function acquire(lock: string): Promise<void> {
  const deadline = Date.now() + LOCK_WAIT_MS
  for (;;) {
    try {
      const h = await fs.open(lock, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
      try {
        await h.writeFile(String(process.pid))
      } finally {
        await h.close()
      }
      return
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new RbqError('FILE_UNREADABLE', `${lock}: ${(e as Error).message}`, { cause: e })
    }
    const pid = Number((await fs.readFile(lock, 'utf8').catch(() => '')).trim())
    if (Number.isSafeInteger(pid) && pid > 0 && !isAlive(pid)) {
      await fs.rm(lock, { force: true }) // left behind by a process that died
      continue
    }
    if (Date.now() > deadline) throw new RbqError('FILE_EXISTS', `${lock} is held by pid ${pid || '?'}; try again when it has finished`)
    await sleep(20)
  }
}

export async function withFileLock<T>(lock: string, fn: () => Promise<T>): Promise<T> {
  await acquire(lock)
  try {
    return await fn()
  } finally {
    await fs.rm(lock, { force: true })
  }
}
