/**
 * The archive feed re-reads the index when InRelease changes (issue 10 item 2), against a
 * loopback mirror serving the real, signed bookworm InRelease files and indexes of the run's
 * shared Debian cache (signatures are verified for real). An unchanged release costs one 304;
 * a new one (here: the signed bookworm-updates release served in its place, as after a point
 * release) is seen by `changed()`, read again, and its newer versions are new uploads.
 */
import { mkdir, readFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { archiveKey, parseRelease, verifyInRelease } from '../../../../node/rebuild/debian/archive.js'
import { DebianFeed } from '../../../../node/rebuild/feeds.js'
import { sharedDebianCache } from '../../../utils/debian-cache.js'
import { makeTempDir } from '../../../utils/tmp.js'

let temp: { dir: string; cleanup: () => Promise<void> }
let server: Server
let mirror: string
let served: Buffer
let updates: Buffer
let lastModified: Date
const hits = { inRelease: 0, bodies: 0 }

beforeAll(async () => {
  temp = await makeTempDir('rbq-feed-inrelease-')
  const shared = await sharedDebianCache()
  const releaseOf = (suite: string) => {
    const s = shared.archive.suites.find((x) => x.location.suite === suite)
    if (s === undefined) throw new Error(`the shared cache has no ${suite}`)
    return readFile(join(shared.cacheDir, 'archive', archiveKey(s.location), 'InRelease'))
  }
  // Indexes are fetched lazily: read every suite's Sources once so the loopback mirror can serve
  // them from the shared cache (whichever test file happened to open the cache first).
  await shared.archive.allSources()
  const main = await releaseOf(shared.archive.location.suite)
  updates = await releaseOf(`${shared.archive.location.suite}-updates`)
  served = main
  lastModified = new Date('2000-01-01T00:00:00Z')
  server = createServer((req, res) => {
    const url = req.url ?? ''
    if (url.endsWith('/InRelease')) {
      hits.inRelease++
      const since = Date.parse(req.headers['if-modified-since'] ?? '')
      if (Number.isFinite(since) && since >= Math.floor(lastModified.getTime() / 1000) * 1000) {
        res.writeHead(304).end()
        return
      }
      hits.bodies++
      res.writeHead(200, { 'last-modified': lastModified.toUTCString() }).end(served)
      return
    }
    const byHash = /\/by-hash\/SHA256\/([0-9a-f]{64})$/.exec(url)?.[1]
    if (byHash === undefined) {
      res.writeHead(404).end()
      return
    }
    readFile(join(shared.cacheDir, 'indexes', `${byHash}.xz`)).then(
      (bytes) => res.writeHead(200).end(bytes),
      () => res.writeHead(404).end()
    )
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  mirror = `http://127.0.0.1:${(server.address() as AddressInfo).port}/debian`
}, 600_000)

afterAll(async () => {
  await new Promise((r) => server?.close(r))
  await temp?.cleanup()
})

describe('DebianFeed: InRelease checks', () => {
  it('an unchanged release costs a 304; a new one is seen, read again, and its newer versions are uploads', async () => {
    const etcApt = join(temp.dir, 'etc-apt') // no companions: the loopback mirror serves one suite
    await mkdir(etcApt)
    const feed = new DebianFeed({ cacheDir: join(temp.dir, 'cache'), follow: 'archive', sources: [], mirror, suite: 'bookworm', etcApt, statePath: join(temp.dir, 'state.json') })
    const first = await feed.entries()
    await feed.commit()
    expect(first.length).toBeGreaterThan(30_000)
    expect(first.some((e) => e.upload === true)).toBe(false)

    const before = { ...hits }
    expect(await feed.changed()).toBe(false)
    expect(hits.inRelease - before.inRelease).toBe(1)
    expect(hits.bodies - before.bodies).toBe(0) // 304: no body

    // The mirror publishes another signed release (bookworm-updates' InRelease, newer).
    served = updates
    lastModified = new Date(Date.now() + 5000)
    expect(await feed.changed()).toBe(true)
    const second = await feed.entries()
    const newer = parseRelease(await verifyInRelease(join(temp.dir, 'cache', 'archive', archiveKey({ mirror, suite: 'bookworm' }), 'InRelease')))
    expect(newer.codename).toBe('bookworm-updates') // the feed fetched and verified the new InRelease
    expect(second.length).toBeGreaterThan(0)
    expect(second.length).toBeLessThan(first.length)
    const oldVersion = new Map(first.map((e) => [(e.target as { source: string }).source, (e.target as { version: string }).version]))
    for (const e of second) {
      const t = e.target as { source: string; version: string }
      expect(e.upload === true, `${e.purl} (was ${oldVersion.get(t.source)})`).toBe(oldVersion.get(t.source) !== t.version)
    }
    expect(second.filter((e) => e.upload === true).length).toBeGreaterThan(0)
    await feed.commit()
    // Seen now. The mirror's time is later than our copy's, so no 304: the same bytes (by hash) are unchanged.
    const beforeHash = hits.bodies
    expect(await feed.changed()).toBe(false)
    expect(hits.bodies - beforeHash).toBe(1)
  })
})
