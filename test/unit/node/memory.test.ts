import { afterEach, describe, expect, it } from 'vitest'
import { silentLogger } from '../../../common/logger.js'
import { MemoryReclaimer } from '../../../node/memory.js'
import { waitFor } from '../../utils/network.js'

describe('MemoryReclaimer', () => {
  let reclaimer: MemoryReclaimer | undefined
  afterEach(() => reclaimer?.stop())

  it('once idle after the resident set grew: a full GC gives the heap back, the idle hooks run, once more on the next idle interval, then no more', async () => {
    let hooks = 0
    // Every interval counts as idle (utilisation is at most 1): the first check comes right after
    // the work, before V8 collects the garbage by itself (it did within 0.2 s under load, leaving
    // less than the growth that triggers a reclaim).
    reclaimer = new MemoryReclaimer({ logger: silentLogger(), onIdle: [() => void hooks++], intervalMs: 100, idleUtilization: 1.1, growthBytes: 16 * 2 ** 20 })
    reclaimer.start()
    // Work: a heap grown by ~100 MiB of objects, then dropped.
    let garbage: unknown[] | undefined = Array.from({ length: 1_000_000 }, (_, i) => ({ i, s: `item ${i}` }))
    const grown = process.memoryUsage().heapUsed
    garbage.length = 0
    garbage = undefined
    await waitFor(() => reclaimer!.reclaims >= 2, { what: 'two reclaims' })
    expect(hooks).toBe(2)
    expect(process.memoryUsage().heapUsed).toBeLessThan(grown)
    // Idle, nothing grew: no reclaim in a loop.
    await new Promise((r) => setTimeout(r, 500))
    expect(reclaimer.reclaims).toBe(2)
  })

  const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime !== undefined
  it.skipIf(!glibc)('gives native memory freed in the middle of glibc arenas back to the system (malloc_trim)', async () => {
    reclaimer = new MemoryReclaimer({ logger: silentLogger(), intervalMs: 100, idleUtilization: 0.5, growthBytes: 64 * 2 ** 20 })
    reclaimer.start()
    // ~150 MiB of small native buffers (malloc'd, below glibc's mmap threshold), of which one in
    // 64 stays alive: the freed ones lie between live ones, where free() never returns memory.
    const count = 150_000
    let buffers: (Buffer | undefined)[] = Array.from({ length: count }, () => Buffer.allocUnsafeSlow(1000).fill(1))
    const grown = process.memoryUsage.rss()
    buffers = buffers.map((b, i) => (i % 64 === 0 ? b : undefined))
    await waitFor(() => reclaimer!.reclaims >= 2, { what: 'two reclaims' })
    expect(process.memoryUsage.rss()).toBeLessThan(grown - 100 * 2 ** 20)
    expect(buffers.filter((b) => b !== undefined)).toHaveLength(Math.ceil(count / 64))
  })

  it('does nothing while the node stays small', async () => {
    let hooks = 0
    reclaimer = new MemoryReclaimer({ logger: silentLogger(), onIdle: [() => void hooks++], intervalMs: 50, growthBytes: 2 ** 30 })
    reclaimer.start()
    await new Promise((r) => setTimeout(r, 300))
    expect(reclaimer.reclaims).toBe(0)
    expect(hooks).toBe(0)
  })
})
