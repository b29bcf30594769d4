import { createHash } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isRbqError } from '../../../../../protocol/errors.js'
import { archiveKey, DebianArchive, ParagraphIndex, parseRelease, verifyInRelease, type ReleaseInfo } from '../../../../../node/rebuild/debian/archive.js'
import { splitParagraphs } from '../../../../../debian/deb822.js'
import { makeTempDir } from '../../../../utils/tmp.js'

const RELEASE = `Origin: Debian
Label: Debian
Suite: oldstable
Codename: bookworm
Date: Sat, 11 Jul 2026 10:16:37 UTC
Valid-Until: Sat, 18 Jul 2026 10:16:37 UTC
Acquire-By-Hash: yes
Architectures: all amd64
Components: main
MD5Sum:
 b838d31986207780a596ce3e8010f90f  8790396 main/binary-amd64/Packages.xz
SHA256:
 9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5  8790396 main/binary-amd64/Packages.xz
 92d11a035571df011f06f28c61cb9825130ef1d92abb2f2e0525e8674dc44af8  9491888 main/source/Sources.xz
`

describe('InRelease', () => {
  it('parses dates, by-hash flag and the SHA256 list (not the MD5 one)', () => {
    const r = parseRelease(RELEASE)
    expect(r.codename).toBe('bookworm')
    expect(r.suite).toBe('oldstable')
    expect(r.date.toISOString()).toBe('2026-07-11T10:16:37.000Z')
    expect(r.validUntil?.toISOString()).toBe('2026-07-18T10:16:37.000Z')
    expect(r.acquireByHash).toBe(true)
    expect([...r.sha256.keys()]).toEqual(['main/binary-amd64/Packages.xz', 'main/source/Sources.xz'])
    expect(r.sha256.get('main/source/Sources.xz')).toEqual({ sha256: '92d11a035571df011f06f28c61cb9825130ef1d92abb2f2e0525e8674dc44af8', size: 9491888 })
  })

  it('refuses a Release without Date or without SHA256', () => {
    expect(() => parseRelease(RELEASE.replace(/^Date:.*\n/m, ''))).toThrow(/Date/)
    expect(() => parseRelease(RELEASE.replace(/^SHA256:[\s\S]*$/m, ''))).toThrow(/SHA256/)
  })

  it('gpgv refuses an unsigned file (FEED_ERROR)', async () => {
    const tmp = await makeTempDir('rbq-inrelease-')
    try {
      const path = join(tmp.dir, 'InRelease')
      await writeFile(path, RELEASE)
      const err = await verifyInRelease(path).catch((e: unknown) => e)
      expect(isRbqError(err, 'FEED_ERROR') || isRbqError(err, 'BUILDER_UNAVAILABLE'), String(err)).toBe(true)
    } finally {
      await tmp.cleanup()
    }
  })

  it('cache keys are distinct per mirror and suite, and path-safe', () => {
    const a = archiveKey({ mirror: 'http://deb.debian.org/debian', suite: 'bookworm' })
    expect(a).toMatch(/^deb\.debian\.org_debian_bookworm-[0-9a-f]{12}$/)
    expect(archiveKey({ mirror: 'http://deb.debian.org/debian', suite: 'trixie' })).not.toBe(a)
    expect(archiveKey({ mirror: 'http://x/../../etc', suite: '..' })).not.toContain('/')
  })
})

// A loopback "mirror" serving gzip indexes whose digests go into a ReleaseInfo we construct:
// everything after signature verification runs for real (fetch by-hash, digest check, lookups).
const SOURCES = `Package: hello
Version: 2.10-2
Directory: pool/main/h/hello
Checksums-Sha256:
 ${'a'.repeat(64)} 10 hello_2.10-2.dsc

Package: hello
Version: 2.10-3
Directory: pool/main/h/hello
Checksums-Sha256:
 ${'b'.repeat(64)} 1950 hello_2.10-3.dsc
 ${'c'.repeat(64)} 725946 hello_2.10.orig.tar.gz

Package: hello
Version: 3.0-1
Extra-Source-Only: yes
Directory: pool/main/h/hello
Checksums-Sha256:
 ${'d'.repeat(64)} 10 hello_3.0-1.dsc
`
const PACKAGES = `Package: hello
Source: hello (2.10-3)
Version: 2.10-3+b1
Architecture: amd64
Filename: pool/main/h/hello/hello_2.10-3+b1_amd64.deb
Size: 56000
SHA256: ${'e'.repeat(64)}

Package: hello-doc
Source: hello
Version: 2.10-3
Architecture: all
Filename: pool/main/h/hello/hello-doc_2.10-3_all.deb
Size: 100
SHA256: ${'F'.repeat(64)}

Package: hello-old
Source: hello (2.10-2)
Version: 2.10-2
Architecture: all
Filename: pool/main/h/hello/hello-old_2.10-2_all.deb
Size: 100
SHA256: ${'0'.repeat(64)}

Package: unrelated
Version: 1
Architecture: all
Filename: pool/main/u/unrelated/unrelated_1_all.deb
Size: 1
SHA256: ${'1'.repeat(64)}
`

describe('DebianArchive lookups (loopback mirror)', () => {
  const files = new Map<string, Buffer>()
  let server: Server
  let tmp: { dir: string; cleanup: () => Promise<void> }
  let archive: DebianArchive
  const requested: string[] = []

  beforeAll(async () => {
    tmp = await makeTempDir('rbq-archive-')
    const sha256 = new Map<string, { sha256: string; size: number }>()
    for (const [path, text] of [['main/source/Sources.gz', SOURCES], ['main/binary-amd64/Packages.gz', PACKAGES]] as const) {
      const gz = gzipSync(text)
      const digest = createHash('sha256').update(gz).digest('hex')
      sha256.set(path, { sha256: digest, size: gz.length })
      files.set(`/debian/dists/bookworm/${path.replace(/[^/]+$/, `by-hash/SHA256/${digest}`)}`, gz)
    }
    server = createServer((req, res) => {
      requested.push(req.url ?? '')
      const body = files.get(req.url ?? '')
      res.writeHead(body === undefined ? 404 : 200).end(body)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const release: ReleaseInfo = { suite: 'bookworm', codename: 'bookworm', date: new Date(), validUntil: undefined, acquireByHash: true, sha256 }
    const mirror = `http://127.0.0.1:${(server.address() as AddressInfo).port}/debian`
    archive = new DebianArchive({ mirror, suite: 'bookworm' }, 'amd64', release, tmp.dir)
  })

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve))
    await tmp.cleanup()
  })

  it('finds the newest version, ignoring Extra-Source-Only entries; or an exact one', async () => {
    const src = await archive.sourcePackage('hello')
    expect(src.version).toBe('2.10-3')
    expect(src.dsc).toEqual({ name: 'hello_2.10-3.dsc', sha256: 'b'.repeat(64), size: 1950 })
    expect(src.files.map((f) => f.name)).toEqual(['hello_2.10-3.dsc', 'hello_2.10.orig.tar.gz'])
    expect((await archive.sourcePackage('hello', '2.10-2')).version).toBe('2.10-2')
    expect(requested.every((u) => u.includes('/by-hash/SHA256/'))).toBe(true)
  })

  it('lists the binaries of that source version, marking binNMUs', async () => {
    const bins = await archive.binaries(await archive.sourcePackage('hello'))
    expect(bins.map((b) => [b.name, b.version, b.sourceVersion, b.binNmu])).toEqual([
      ['hello', '2.10-3+b1', '2.10-3', '+b1'],
      ['hello-doc', '2.10-3', '2.10-3', undefined]
    ])
    expect(bins[1]?.sha256).toBe('f'.repeat(64))
  })

  it('says FEED_ERROR for a package the suite does not have', async () => {
    const err = await archive.sourcePackage('no-such-package').catch((e: unknown) => e)
    expect(isRbqError(err, 'FEED_ERROR')).toBe(true)
    const err2 = await archive.sourcePackage('hello', '9.9-9').catch((e: unknown) => e)
    expect(isRbqError(err2, 'FEED_ERROR')).toBe(true)
  })

  it('maps pool paths into the mirror and the cache, refusing ones that climb out', () => {
    expect(archive.poolUrl('pool/main/h/hello/hello_2.10-3.dsc')).toMatch(/\/debian\/pool\/main\/h\/hello\/hello_2\.10-3\.dsc$/)
    expect(archive.poolCachePath('pool/main/h/hello/x.dsc')).toBe(join(tmp.dir, 'mirror/pool/main/h/hello/x.dsc'))
    expect(() => archive.poolUrl('../../etc/passwd')).toThrow(/unsafe path/)
    expect(() => archive.poolCachePath('pool/../../x')).toThrow(/unsafe path/)
  })
})

describe('ParagraphIndex (parsed index, cached on disk)', () => {
  const TEXT = 'Package: a\r\nMaintainer: Jörg Ü <j@example.org>\r\n\r\nPackage: b\nVersion: 1\n \t\n# only a comment\n\n\n\nPackage: a\nVersion: 2\n\nVersion: 3\n'
  const keyOf = (raw: string) => /^Package:[ \t]*(\S+)/m.exec(raw)?.[1]

  it('holds the paragraphs splitParagraphs finds, grouped by key, UTF-8 intact', () => {
    const idx = ParagraphIndex.build(Buffer.from(TEXT, 'utf8'), keyOf)
    const expected = new Map<string, string[]>()
    for (const raw of splitParagraphs(TEXT)) {
      const k = keyOf(raw)
      if (k !== undefined) expected.set(k, [...(expected.get(k) ?? []), raw])
    }
    expect(new Map(idx.entries())).toEqual(expected)
    expect(idx.get('a')?.[0]).toContain('Jörg Ü')
    expect(idx.size).toBe(2)
    expect(idx.get('zz')).toBeUndefined()
  })

  it('saves and loads the same index; a changed text file is not loaded', async () => {
    const tmp = await makeTempDir('rbq-parsed-')
    try {
      const base = join(tmp.dir, 'x.by-package')
      const idx = ParagraphIndex.build(Buffer.from(TEXT, 'utf8'), keyOf)
      await idx.save(base)
      const back = await ParagraphIndex.load(base)
      expect(back === undefined ? undefined : new Map(back.entries())).toEqual(new Map(idx.entries()))
      await writeFile(`${base}.txt`, TEXT.replace('Version: 2', 'Version: 9'))
      expect(await ParagraphIndex.load(base)).toBeUndefined()
      expect(await ParagraphIndex.load(join(tmp.dir, 'absent'))).toBeUndefined()
    } finally {
      await tmp.cleanup()
    }
  })
})
