import { afterEach, describe, expect, it } from 'vitest'
import { silentLogger } from '../../../common/logger.js'
import { MemoryReclaimer } from '../../../node/memory.js'
import { waitFor } from '../../utils/network.js'

describe('MemoryReclaimer', () => {
  let reclaimer: MemoryReclaimer | undefined
  afterEach(() => reclaimer?.stop())

  it('once idle after the resident set grew: a full GC gives the heap back, the idle hooks run, once more on the next idle interval, then no more', async () => {
    let hooks = 0
    reclaimer = new MemoryReclaimer({ logger: silentLogger(), onIdle: [() => void hooks++], intervalMs: 100, idleUtilization: 0.5, growthBytes: 16 * 2 ** 20 })
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

  it('does nothing while the node stays small', async () => {
    let hooks = 0
    reclaimer = new MemoryReclaimer({ logger: silentLogger(), onIdle: [() => void hooks++], intervalMs: 50, growthBytes: 2 ** 30 })
    reclaimer.start()
    await new Promise((r) => setTimeout(r, 300))
    expect(reclaimer.reclaims).toBe(0)
    expect(hooks).toBe(0)
  })
})
