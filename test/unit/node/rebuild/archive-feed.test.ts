/**
 * The archive-wide feed (issue 10 items 1–2) on the real bookworm indexes (the run's shared
 * Debian cache; no builds): every source package of main with -updates/-security, the HMAC
 * sample stable across restarts for one seed, different for another, of the expected size
 * within 5 binomial sigmas; versions the previous index did not have (feed state saved with
 * older versions) are new uploads and run before the rest of the sample.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Store } from '../../../../node/db/store.js'
import { DebianFeed, type FeedEntry } from '../../../../node/rebuild/feeds.js'
import { loadOrCreateSamplerSeed, Sampler } from '../../../../node/rebuild/sampler.js'
import { RebuildScheduler } from '../../../../node/rebuild/scheduler.js'
import { sharedDebianCache } from '../../../utils/debian-cache.js'
import { makeTempDir } from '../../../utils/tmp.js'

const SHARE = 0.01

let temp: { dir: string; cleanup: () => Promise<void> }
let cacheDir: string
let entries: FeedEntry[]

const feedAt = (statePath: string, init: { exclude?: string[]; maxSourceBytes?: number } = {}) =>
  new DebianFeed({ cacheDir, follow: 'archive', sources: [], statePath, ...init })

const sampleOf = (sampler: Sampler, list: FeedEntry[]) => new Set(list.filter((e) => sampler.includes(e.purl, SHARE)).map((e) => e.purl))

beforeAll(async () => {
  temp = await makeTempDir('rbq-archive-feed-')
  cacheDir = (await sharedDebianCache()).cacheDir
  const feed = feedAt(join(temp.dir, 'state.json'))
  entries = await feed.entries()
  await feed.commit()
}, 600_000)

afterAll(async () => {
  await temp?.cleanup()
})

describe('DebianFeed follow = "archive" on bookworm', () => {
  it('lists every source package of main once, at its newest version over the suites, none marked new on the first read', () => {
    expect(entries.length).toBeGreaterThan(30_000)
    const names = entries.map((e) => (e.target as { source: string }).source)
    expect(new Set(names).size).toBe(names.length)
    const baseFiles = entries.find((e) => e.target.backend === 'debian' && e.target.source === 'base-files')
    expect(baseFiles?.purl).toMatch(/^pkg:deb\/debian\/base-files@12\.4\+deb12u\d+\?arch=source$/)
    expect(entries.some((e) => e.upload === true)).toBe(false)
  })

  it('the sample: stable across restarts for one seed, another for another seed, of the expected size', async () => {
    const dataA = join(temp.dir, 'node-a')
    const dataB = join(temp.dir, 'node-b')
    const a1 = sampleOf(new Sampler(await loadOrCreateSamplerSeed(dataA), { share: 1 }), entries)
    // "Restart": the seed read back from its file, the archive read by a new feed.
    const reread = await feedAt(join(temp.dir, 'state-restart.json')).entries()
    const a2 = sampleOf(new Sampler(await loadOrCreateSamplerSeed(dataA), { share: 1 }), reread)
    expect([...a2]).toEqual([...a1])
    const b = sampleOf(new Sampler(await loadOrCreateSamplerSeed(dataB), { share: 1 }), entries)
    const n = entries.length
    const sigma = Math.sqrt(n * SHARE * (1 - SHARE))
    for (const s of [a1, b]) expect(Math.abs(s.size - n * SHARE)).toBeLessThanOrEqual(5 * sigma)
    // Two independent 1% samples share about 1% of either: far from equal.
    const common = [...a1].filter((p) => b.has(p)).length
    expect(common).toBeLessThan(a1.size / 2)
  })

  it('filters: excluded names and sources over the size limit are left out', async () => {
    const filtered = await feedAt(join(temp.dir, 'state-filtered.json'), { exclude: ['linux*', 'base-files'], maxSourceBytes: 1 << 20 }).entries()
    const names = new Set(filtered.map((e) => (e.target as { source: string }).source))
    expect(names.has('base-files')).toBe(false)
    expect([...names].some((n) => n.startsWith('linux'))).toBe(false)
    expect(names.has('hello')).toBe(true) // ~0.7 MB of sources
    expect(filtered.length).toBeLessThan(entries.length * 0.9)
  })

  it('versions the previous index did not have are new uploads, and run before the rest of the sample', async () => {
    const seedDir = join(temp.dir, 'node-order')
    const sampler = new Sampler(await loadOrCreateSamplerSeed(seedDir), { share: 1 })
    const sampled = entries.filter((e) => sampler.includes(e.purl, SHARE))
    const source = (e: FeedEntry) => (e.target as { source: string }).source
    // The previous index had older versions of three sampled packages (as after a point release).
    const updated = sampled.slice(-3).map(source)
    const statePath = join(temp.dir, 'state.json')
    const state = JSON.parse(await readFile(statePath, 'utf8')) as { versions: Record<string, string> }
    for (const name of updated) state.versions[name] = '0~older'
    await writeFile(statePath, JSON.stringify(state))

    const feed = feedAt(statePath)
    const next = await feed.entries()
    expect(next.filter((e) => e.upload === true).map(source).sort()).toEqual([...updated].sort())
    await feed.commit()
    expect((await feedAt(statePath).entries()).some((e) => e.upload === true)).toBe(false) // seen now

    // Queued in index order (uploads last), they run first: the scheduler's order.
    const store = await Store.open(join(temp.dir, 'db'))
    const ran: string[] = []
    let finish: () => void = () => {}
    const allDone = new Promise<void>((r) => (finish = r))
    const scheduler = new RebuildScheduler({
      jobs: store.sublevel('jobs'),
      runJob: async (job) => {
        ran.push((job.target as { source: string }).source)
        if (ran.length === sampled.length) finish()
        return { status: 'done', outcome: 'reproduced' }
      }
    })
    try {
      const queuedSample = next.filter((e) => sampler.includes(e.purl, SHARE))
      for (const e of queuedSample) await scheduler.enqueue(e.purl, e.target, { reason: e.upload === true ? 'upload' : 'feed' })
      await scheduler.start()
      await allDone
      expect(ran.slice(0, 3).sort()).toEqual([...updated].sort())
      expect(ran).toHaveLength(queuedSample.length)
    } finally {
      await scheduler.stop()
      await store.close()
    }
  })
})
