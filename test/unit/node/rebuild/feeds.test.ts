/**
 * Feeds resolve explicit requests: a version-less Debian purl names the newest version in the
 * suite, as `rbq rebuild` does (issue 15). The archive is a loopback "mirror" serving a gzip
 * Sources index whose digest goes into a ReleaseInfo we construct: everything after signature
 * verification runs for real (fetch by hash, digest check, lookup).
 */
import { createHash } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DebianArchive, type ReleaseInfo } from '../../../../node/rebuild/debian/archive.js'
import { DebianFeed, debianSourceOfPurl, RecipeDirFeed } from '../../../../node/rebuild/feeds.js'
import { makeTempDir } from '../../../utils/tmp.js'

const SOURCES = `Package: base-files
Version: 12.4+deb12u5
Directory: pool/main/b/base-files
Checksums-Sha256:
 ${'a'.repeat(64)} 10 base-files_12.4+deb12u5.dsc

Package: base-files
Version: 12.4+deb12u10
Directory: pool/main/b/base-files
Checksums-Sha256:
 ${'b'.repeat(64)} 10 base-files_12.4+deb12u10.dsc
`

/** The real feed, reading a loopback archive instead of opening (and signature-checking) the host's. */
class LoopbackDebianFeed extends DebianFeed {
  constructor(
    private readonly archive: DebianArchive,
    sources: string[]
  ) {
    super({ cacheDir: '/nonexistent', sources })
  }
  override async open(): Promise<DebianArchive> {
    return this.archive
  }
}

describe('debianSourceOfPurl: the one parser `rbq rebuild` and the node share', () => {
  it('takes NAME, NAME@VERSION, with or without ?arch=source; nothing else', () => {
    expect(debianSourceOfPurl('pkg:deb/debian/base-files')).toEqual({ source: 'base-files' })
    expect(debianSourceOfPurl('pkg:deb/debian/hello@2.10-3?arch=source')).toEqual({ source: 'hello', version: '2.10-3' })
    expect(debianSourceOfPurl('pkg:deb/debian/hello@2.10-3')).toEqual({ source: 'hello', version: '2.10-3' })
    expect(debianSourceOfPurl('pkg:deb/debian/hello@2.10-3?arch=amd64')).toBeUndefined()
    expect(debianSourceOfPurl('pkg:deb/ubuntu/hello')).toBeUndefined()
    expect(debianSourceOfPurl('pkg:generic/hello@1')).toBeUndefined()
  })
})

describe('DebianFeed.resolve', () => {
  let server: Server
  let tmp: { dir: string; cleanup: () => Promise<void> }
  let archive: DebianArchive

  beforeAll(async () => {
    tmp = await makeTempDir('rbq-feeds-')
    const gz = gzipSync(SOURCES)
    const digest = createHash('sha256').update(gz).digest('hex')
    server = createServer((req, res) => {
      const ok = req.url === `/debian/dists/bookworm/main/source/by-hash/SHA256/${digest}`
      res.writeHead(ok ? 200 : 404).end(ok ? gz : undefined)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const release: ReleaseInfo = {
      suite: 'bookworm',
      codename: 'bookworm',
      date: new Date(),
      validUntil: undefined,
      acquireByHash: true,
      sha256: new Map([['main/source/Sources.gz', { sha256: digest, size: gz.length }]])
    }
    archive = new DebianArchive({ mirror: `http://127.0.0.1:${(server.address() as AddressInfo).port}/debian`, suite: 'bookworm' }, 'amd64', release, tmp.dir)
  })
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve))
    await tmp.cleanup()
  })

  it('resolves a version-less purl to the newest version in the suite (not NOT_FOUND)', async () => {
    const feed = new LoopbackDebianFeed(archive, [])
    expect(await feed.resolve('pkg:deb/debian/base-files')).toEqual({
      purl: 'pkg:deb/debian/base-files@12.4+deb12u10?arch=source',
      target: { backend: 'debian', source: 'base-files', version: '12.4+deb12u10' }
    })
    // an exact version is taken as given (the builder checks it exists)
    expect((await feed.resolve('pkg:deb/debian/base-files@12.4+deb12u5'))?.target).toEqual({ backend: 'debian', source: 'base-files', version: '12.4+deb12u5' })
    await expect(feed.resolve('pkg:deb/debian/no-such-source')).rejects.toMatchObject({ code: 'FEED_ERROR' })
    expect(await feed.resolve('pkg:generic/base-files@1')).toBeUndefined()
  })

  it('follows exactly the configured sources; the recipe feed exactly its directory', () => {
    const feed = new LoopbackDebianFeed(archive, ['base-files'])
    expect(feed.follows({ backend: 'debian', source: 'base-files', version: '1' })).toBe(true)
    expect(feed.follows({ backend: 'debian', source: 'zlib', version: '1' })).toBe(false)
    const recipes = new RecipeDirFeed(tmp.dir)
    expect(recipes.follows({ backend: 'recipe', recipe: `${tmp.dir}/a.toml`, sha256: 'x' })).toBe(true)
    expect(recipes.follows({ backend: 'recipe', recipe: '/elsewhere/a.toml', sha256: 'x' })).toBe(false)
    expect(recipes.follows({ backend: 'debian', source: 'zlib', version: '1' })).toBe(false)
  })
})
