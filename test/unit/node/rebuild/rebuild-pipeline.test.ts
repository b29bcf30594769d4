/**
 * The rebuild pipeline end to end inside one node: recipe feed → sampler → scheduler → recipe
 * builder → attest → Publisher → store. Real store, real ingest pipeline, real processes.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { decodeFrame, generateSigningKey, sha256Hex, type SigningKey } from '../../../../protocol/index.js'
import { Store } from '../../../../node/db/store.js'
import { IngestPipeline } from '../../../../node/ingest/ingest-pipeline.js'
import { StatementSigner } from '../../../../identity/statement-signer.js'
import { Publisher } from '../../../../node/ingest/publisher.js'
import { rebuildConfigFromToml } from '../../../../node/rebuild/rebuild-config.js'
import { RebuildPipeline } from '../../../../node/rebuild/rebuild-pipeline.js'
import type { FinishedJob, RebuildJob } from '../../../../node/rebuild/scheduler.js'
import { SEP } from '../../../../node/db/buckets.js'
import { createLogger, type Logger } from '../../../../common/logger.js'
import { makeTempDir } from '../../../utils/tmp.js'

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

let dir: string
let cleanup: () => Promise<void>
let key: SigningKey
let store: Store
let ingest: IngestPipeline
let publisher: Publisher
let rebuild: RebuildPipeline | undefined

async function writeRecipes(): Promise<string> {
  const recipes = join(dir, 'recipes')
  await mkdir(recipes)
  await writeFile(join(recipes, 'input.txt'), 'hello\n')
  await writeFile(
    join(recipes, 'a.toml'),
    `purl = "pkg:generic/a@1"\ncommand = "tr a-z A-Z < input.txt > a.txt"\noutputs = ["a.txt"]\n[[source]]\npath = "input.txt"\nsha256 = "${sha256Hex('hello\n')}"\n`
  )
  await writeFile(join(recipes, 'b.toml'), `purl = "pkg:generic/b@1"\ncommand = "exit 1"\noutputs = ["b.txt"]\n`)
  await writeFile(join(recipes, 'broken.toml'), `purl = "pkg:generic/broken@1"\n`) // skipped by the feed
  return recipes
}

async function startRebuild(toml: Record<string, unknown>, logger?: Logger): Promise<RebuildPipeline> {
  const config = rebuildConfigFromToml(toml, dir)
  rebuild = new RebuildPipeline({ store, publisher, ...(logger === undefined ? {} : { logger }) }, { ...config, dataDir: join(dir, 'data') })
  await rebuild.start()
  return rebuild
}

beforeEach(async () => {
  ;({ dir, cleanup } = await makeTempDir('rbq-pipeline-'))
  key = generateSigningKey()
  store = await Store.open(join(dir, 'db'))
  const signer = new StatementSigner(key, join(dir, 'signing.key.seq'))
  ingest = new IngestPipeline({ store }, { signer, workers: 0 })
  await ingest.start()
  publisher = new Publisher({ pipeline: ingest, store, signer })
  await publisher.start()
})

afterEach(async () => {
  await rebuild?.stop()
  rebuild = undefined
  await ingest.stop()
  await store.close()
  await cleanup()
})

async function attestations(): Promise<{ package: string; outcome: string; seq: number }[]> {
  const frames = await store.attestationsInRange(key.publicKey.keyid, 1, 1000, 1000)
  return frames.map((b) => {
    const f = decodeFrame(b)
    if (f.kind !== 'attestation') throw new Error('not an attestation')
    return { package: f.statement.predicate.package, outcome: f.statement.predicate.outcome, seq: f.statement.predicate.builder.seq }
  })
}

describe('RebuildPipeline', () => {
  it('rebuilds every recipe of the feed at share 1 and attests every outcome, failed included', async () => {
    const recipes = await writeRecipes()
    const p = await startRebuild({ share: 1, recipes_dir: recipes })
    await until(async () => (await attestations()).length === 2, 'two attestations')
    const got = (await attestations()).sort((x, y) => x.package.localeCompare(y.package))
    expect(got.map((a) => [a.package, a.outcome])).toEqual([
      ['pkg:generic/a@1', 'built'],
      ['pkg:generic/b@1', 'failed']
    ])
    await until(async () => ((await p.status('pkg:generic/b@1')) as FinishedJob | undefined)?.status === 'done', 'job records')
    expect(await p.status('pkg:generic/a@1')).toMatchObject({ status: 'done', outcome: 'built' })
    // logs are kept by digest; job dirs are gone
    const cache = join(dir, 'data', 'cache', 'rebuild')
    expect((await readdir(join(cache, 'logs'))).length).toBe(2)
    expect(await readdir(join(cache, 'jobs')).catch(() => [])).toEqual([])

    // polling again queues nothing: both are done with the same recipe
    await p.pollFeeds()
    expect(p.scheduler.stats()).toEqual({ queued: 0, running: 0 })
  })

  it('at share 0 the feed queues nothing, but an explicit request rebuilds', async () => {
    const recipes = await writeRecipes()
    const p = await startRebuild({ share: 0, recipes_dir: recipes })
    await p.pollFeeds()
    expect(p.stats()).toMatchObject({ queued: 0, running: 0, jobs: [] })
    expect(await p.requestRebuild('pkg:generic/a@1')).toMatchObject({ status: 'queued' })
    await until(async () => (await attestations()).length === 1, 'the requested rebuild')
    expect((await attestations())[0]).toMatchObject({ package: 'pkg:generic/a@1', outcome: 'built', seq: 1 })
    await expect(p.requestRebuild('pkg:generic/unknown@1')).rejects.toMatchObject({ code: 'NOT_FOUND' })
  })

  it('the package filter narrows the feed', async () => {
    const recipes = await writeRecipes()
    const p = await startRebuild({ share: 1, recipes_dir: recipes, packages: ['pkg:generic/b'] })
    await until(async () => (await attestations()).length === 1, 'one attestation')
    await p.pollFeeds()
    expect((await attestations()).map((a) => a.package)).toEqual(['pkg:generic/b@1'])
  })
})

describe('RebuildPipeline: requests, stale jobs, progress (issue 15)', () => {
  it('a request queues exactly the purl asked for; a persisted feed job of a package no longer followed is dropped, not built', async () => {
    const recipes = await writeRecipes()
    // left by an earlier configuration that followed zlib: the node now follows nothing of Debian
    const stale: RebuildJob = {
      purl: 'pkg:deb/debian/zlib@1:1.2.13.dfsg-1?arch=source',
      target: { backend: 'debian', source: 'zlib', version: '1:1.2.13.dfsg-1' },
      reason: 'feed',
      state: 'queued',
      attempts: 0,
      notBefore: 0,
      enqueuedAt: 0
    }
    await store.sublevel<RebuildJob>('jobs').put(`queue${SEP}${stale.purl}`, stale)
    const lines: { msg: string; purl?: string }[] = []
    const logger = createLogger({ level: 'info', destination: { write: (l: string) => void lines.push(JSON.parse(l) as { msg: string }) } })
    const p = await startRebuild({ share: 0, recipes_dir: recipes }, logger)
    expect(p.scheduler.queued()).toEqual([])
    expect(await p.status(stale.purl)).toBeUndefined()
    expect(lines).toContainEqual(expect.objectContaining({ purl: stale.purl, msg: 'rebuild job dropped: its package is no longer followed' }))

    expect(await p.requestRebuild('pkg:generic/a@1')).toMatchObject({ purl: 'pkg:generic/a@1', status: 'queued', detail: 'recipes feed; 0 jobs waiting' })
    await until(async () => (await attestations()).length === 1, 'the requested rebuild')
    await p.pollFeeds() // share 0: the feed adds nothing
    expect(p.scheduler.queued()).toEqual([])
    expect((await attestations()).map((a) => a.package)).toEqual(['pkg:generic/a@1'])
  })

  it('names the running job with its phase, and logs start, each step and the end', async () => {
    const recipes = await writeRecipes()
    const go = join(dir, 'go')
    await writeFile(
      join(recipes, 'slow.toml'),
      `purl = "pkg:generic/slow@1"\ncommand = "while [ ! -e ${go} ]; do sleep 0.05; done; cp input.txt out.txt"\noutputs = ["out.txt"]\n[[source]]\npath = "input.txt"\nsha256 = "${sha256Hex('hello\n')}"\n`
    )
    const lines: { msg: string; purl?: string; phase?: string; previousPhase?: string }[] = []
    const logger = createLogger({ level: 'info', destination: { write: (l: string) => void lines.push(JSON.parse(l) as { msg: string }) } })
    const p = await startRebuild({ share: 0, recipes_dir: recipes }, logger)
    await p.requestRebuild('pkg:generic/slow@1')
    await until(() => p.stats().jobs[0]?.phase === 'build', 'the build phase')
    const { jobs, running } = p.stats()
    expect(running).toBe(1)
    expect(jobs).toEqual([{ purl: 'pkg:generic/slow@1', phase: 'build', message: expect.stringContaining('while'), elapsedSeconds: expect.any(Number), attempt: 1 }])
    await writeFile(go, '')
    await until(async () => (await attestations()).length === 1, 'the slow rebuild')
    await until(() => p.stats().jobs.length === 0, 'the job to leave the running list')
    // The scheduler logs the end after it has recorded the job, which may be after the job left the running list.
    await until(() => lines.some((l) => l.purl === 'pkg:generic/slow@1' && l.msg === 'rebuild job finished'), 'the end of the job in the log')
    const mine = lines.filter((l) => l.purl === 'pkg:generic/slow@1')
    expect(mine[0]?.msg).toBe('rebuild started')
    expect(mine.some((l) => l.phase === 'build' && l.previousPhase === 'verify')).toBe(true)
    expect(mine.some((l) => l.phase === 'done')).toBe(true)
    expect(mine.at(-1)?.msg).toBe('rebuild job finished')
  })
})

describe('rebuildConfigFromToml', () => {
  it('gives the defaults and rejects unknown or bad options naming the field', () => {
    expect(rebuildConfigFromToml(undefined, '/etc/rbq')).toEqual({
      enabled: true,
      share: undefined, // each feed's own: 1 for lists and recipes, 0.01 for the archive
      packages: [],
      concurrency: 1,
      maxAttempts: 5,
      jobTimeoutSeconds: 14_400,
      pollIntervalSeconds: 3600,
      recipesDir: undefined,
      requireNetworkIsolation: false,
      demand: { honour: 'feed', maxQueued: 100, perRequesterPerHour: 10 },
      debian: {
        follow: 'auto',
        sources: [],
        exclude: [],
        maxSourceBytes: 100 * 2 ** 20,
        checkIntervalSeconds: 300,
        mirror: undefined,
        suite: undefined,
        cacheDir: undefined,
        buildinfoSources: ['https://buildinfos.debian.net/buildinfo-pool/{prefix}/{source}/{source}_{version}_{arch}.buildinfo'],
        exactRepositories: [
          'deb [check-valid-until=no] https://snapshot.debian.org/archive/debian/{build_date}/ unstable main',
          'deb [check-valid-until=no] https://snapshot.debian.org/archive/debian/{build_date}/ {suite} main'
        ]
      }
    })
    expect(
      rebuildConfigFromToml({ debian: { buildinfo_sources: ['buildinfos', 'file:///srv/bi/{source}_{version}_{arch}.buildinfo'], exact_repositories: ['deb [trusted=yes] file:/srv/repo ./'] } }, '/etc/rbq').debian
    ).toMatchObject({ buildinfoSources: ['/etc/rbq/buildinfos', 'file:///srv/bi/{source}_{version}_{arch}.buildinfo'], exactRepositories: ['deb [trusted=yes] file:/srv/repo ./'] })
    expect(() => rebuildConfigFromToml({ debian: { exact_repositories: ['http://x/debian sid main'] } }, '/')).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', field: 'rebuild.debian.exact_repositories[0]' })
    )
    expect(() => rebuildConfigFromToml({ debian: { buildinfo_sources: ['ftp://x/{version}'] } }, '/')).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', field: 'rebuild.debian.buildinfo_sources[0]' })
    )
    expect(rebuildConfigFromToml({ recipes_dir: 'recipes', debian: { sources: ['hello'] } }, '/etc/rbq')).toMatchObject({
      recipesDir: '/etc/rbq/recipes',
      debian: { sources: ['hello'] }
    })
    expect(() => rebuildConfigFromToml({ shares: 1 }, '/')).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'rebuild.shares' }))
    expect(() => rebuildConfigFromToml({ share: 2 }, '/')).toThrow(expect.objectContaining({ field: 'rebuild.share' }))
    expect(() => rebuildConfigFromToml({ packages: ['deb/*'] }, '/')).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'rebuild.packages[0]' }))
    expect(() => rebuildConfigFromToml({ debian: { suites: [] } }, '/')).toThrow(expect.objectContaining({ field: 'rebuild.debian.suites' }))
    expect(rebuildConfigFromToml({ share: 0.5, demand: 'sample', debian: { follow: 'archive', exclude: ['linux*', 'chromium'], max_source_mib: 0 } }, '/')).toMatchObject({
      share: 0.5,
      demand: { honour: 'sample' },
      debian: { follow: 'archive', exclude: ['linux*', 'chromium'], maxSourceBytes: 0 }
    })
    expect(() => rebuildConfigFromToml({ debian: { follow: 'everything' } }, '/')).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'rebuild.debian.follow' }))
    expect(() => rebuildConfigFromToml({ debian: { exclude: ['Linux/'] } }, '/')).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'rebuild.debian.exclude[0]' }))
    expect(() => rebuildConfigFromToml({ demand: 'always' }, '/')).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'rebuild.demand' }))
  })
})

describe('demand: other nodes\' rebuild requests (issue 10 item 2)', () => {
  it('[rebuild] demand = "feed" honours a followed package outside the sample, within the per-requester rate; not others', async () => {
    const recipes = await writeRecipes()
    const p = await startRebuild({ share: 0, recipes_dir: recipes, demand_per_requester_per_hour: 1 })
    expect(await p.honourRequest({ purl: 'pkg:generic/a@1', requester: 'k1' })).toEqual({ status: 'queued', detail: 'recipes feed' })
    expect(await p.honourRequest({ purl: 'pkg:generic/b@1', requester: 'k1' })).toMatchObject({ status: 'declined', detail: 'requester over 1 honoured requests per hour' })
    expect(await p.honourRequest({ purl: 'pkg:generic/b@1', requester: 'k2' })).toMatchObject({ status: 'queued' })
    expect(await p.honourRequest({ purl: 'pkg:generic/unknown@1', requester: 'k3' })).toMatchObject({ status: 'declined', detail: 'no feed of this node follows it' })
    await until(async () => (await attestations()).length === 2, 'the two requested rebuilds')
    expect((await attestations()).map((a) => a.package).sort()).toEqual(['pkg:generic/a@1', 'pkg:generic/b@1'])
  })

  it('"sample" declines what the sample leaves out, "off" everything, and a full demand queue declines', async () => {
    const recipes = await writeRecipes()
    const sample = await startRebuild({ share: 0, recipes_dir: recipes, demand: 'sample' })
    expect(await sample.honourRequest({ purl: 'pkg:generic/a@1', requester: 'k1' })).toMatchObject({ status: 'declined', detail: expect.stringContaining('sample') })
    await sample.stop()
    const off = await startRebuild({ share: 1, recipes_dir: recipes, demand: 'off', packages: ['pkg:generic/zzz'] })
    expect(await off.honourRequest({ purl: 'pkg:generic/a@1', requester: 'k1' })).toMatchObject({ status: 'declined', detail: '[rebuild] demand = "off"' })
    await off.stop()
    const full = await startRebuild({ share: 0, recipes_dir: recipes, demand_max_queued: 0 })
    expect(await full.honourRequest({ purl: 'pkg:generic/a@1', requester: 'k1' })).toMatchObject({ status: 'declined', detail: '0 requested jobs already waiting' })
    expect(await attestations()).toEqual([])
  })
})

describe('[rebuild.debian] follow = "auto" (issue 10 item 1)', () => {
  it('with no sources and no recipes: the whole archive where Debian builds run (rbq doctor), else nothing, and the log says why', async () => {
    const { debianDoctor } = await import('../../../../node/rebuild/debian/debian-doctor.js')
    const { sharedDebianCache } = await import('../../../utils/debian-cache.js')
    const cacheDir = (await sharedDebianCache()).cacheDir
    const lines: { msg: string; share?: number; feed?: string; entries?: number; sampled?: number }[] = []
    const logger = createLogger({ level: 'info', destination: { write: (l: string) => void lines.push(JSON.parse(l) as { msg: string }) } })
    // share 0: the archive is read and sampled, nothing is queued (no builds in this test).
    const p = await startRebuild({ share: 0, debian: { cache_dir: cacheDir } }, logger)
    await p.pollFeeds()
    const polled = lines.find((l) => l.msg === 'rebuild feed polled' && l.feed === 'debian')
    if ((await debianDoctor()).ready) {
      expect(lines).toContainEqual(expect.objectContaining({ msg: expect.stringContaining('following the whole Debian archive'), share: 0 }))
      expect(polled?.entries).toBeGreaterThan(30_000)
    } else {
      expect(lines).toContainEqual(expect.objectContaining({ msg: expect.stringContaining('not following the Debian archive') }))
      expect(polled?.entries).toBe(0)
    }
    expect(polled?.sampled).toBe(0)
    expect(p.scheduler.queued()).toEqual([])
  }, 300_000)
})
