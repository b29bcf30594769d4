import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { isRbqError } from '../../../../../protocol/errors.js'
import {
  hostArchiveLocation,
  parseDeb822Sources,
  parseSourcesList,
  pickCompanionSuites,
  pickDebianArchive,
  readAptSources
} from '../../../../../node/rebuild/debian/apt-sources.js'
import { makeTempDir } from '../../../../utils/tmp.js'

const DEB822 = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
`

describe('apt sources', () => {
  it('parses one-line entries, ignoring options, comments and other types', () => {
    const entries = parseSourcesList(
      [
        '# deb http://commented.example/debian sid main',
        'deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://ftp.de.debian.org/debian/ bookworm main contrib # trailing',
        'deb-src http://deb.debian.org/debian bookworm main',
        'rpm http://nope.example/ x y',
        ''
      ].join('\n')
    )
    expect(entries).toEqual([
      { types: ['deb'], uris: ['http://ftp.de.debian.org/debian/'], suites: ['bookworm'], components: ['main', 'contrib'], enabled: true },
      { types: ['deb-src'], uris: ['http://deb.debian.org/debian'], suites: ['bookworm'], components: ['main'], enabled: true }
    ])
  })

  it('parses deb822 .sources, with Enabled: no', () => {
    const entries = parseDeb822Sources(`${DEB822}\nTypes: deb\nURIs: http://x.example/debian\nSuites: trixie\nComponents: main\nEnabled: no\n`)
    expect(entries).toHaveLength(3)
    expect(entries[0]).toEqual({ types: ['deb'], uris: ['http://deb.debian.org/debian'], suites: ['bookworm', 'bookworm-updates'], components: ['main'], enabled: true })
    expect(entries[2]?.enabled).toBe(false)
  })

  it('picks the main archive: not -security, not a disabled entry, the release suite not -updates', () => {
    const entries = [
      ...parseDeb822Sources('Types: deb\nURIs: http://x.example/debian\nSuites: trixie\nComponents: main\nEnabled: no\n'),
      ...parseDeb822Sources(DEB822)
    ]
    expect(pickDebianArchive(entries)).toEqual({ mirror: 'http://deb.debian.org/debian', suite: 'bookworm' })
    expect(pickDebianArchive(parseSourcesList('deb http://deb.debian.org/debian-security bookworm-security main'))).toBeUndefined()
    expect(pickDebianArchive(parseSourcesList('deb http://deb.debian.org/debian bookworm contrib'))).toBeUndefined()
    expect(pickDebianArchive(parseSourcesList('deb https://mirror.example/debian/ sid main'))).toEqual({ mirror: 'https://mirror.example/debian', suite: 'sid' })
    expect(pickDebianArchive(parseSourcesList('deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main'))).toBeUndefined()
  })

  it('picks the release\'s -updates and -security suites (security at its own mirror path), not backports', () => {
    const entries = [
      ...parseDeb822Sources(DEB822),
      ...parseSourcesList('deb http://deb.debian.org/debian bookworm-backports main\ndeb http://deb.debian.org/debian trixie-updates main\ndeb-src http://x.example/debian bookworm-updates main')
    ]
    const main = pickDebianArchive(entries) as { mirror: string; suite: string }
    expect(pickCompanionSuites(entries, main)).toEqual([
      { mirror: 'http://deb.debian.org/debian', suite: 'bookworm-updates' },
      { mirror: 'http://deb.debian.org/debian-security', suite: 'bookworm-security' }
    ])
    expect(pickCompanionSuites(parseSourcesList('deb http://deb.debian.org/debian bookworm main'), main)).toEqual([])
  })

  describe('reading a directory like /etc/apt', () => {
    let tmp: { dir: string; cleanup: () => Promise<void> }
    beforeEach(async () => {
      tmp = await makeTempDir('rbq-apt-')
      await mkdir(join(tmp.dir, 'sources.list.d'))
    })
    afterEach(() => tmp.cleanup())

    it('reads sources.list.d/*.sources and *.list, ignoring other file names', async () => {
      await writeFile(join(tmp.dir, 'sources.list.d', 'a.list.disabled'), 'deb http://wrong.example/debian sid main\n')
      await writeFile(join(tmp.dir, 'sources.list.d', 'debian.sources'), DEB822)
      await writeFile(join(tmp.dir, 'sources.list.d', 'other.list'), 'deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n')
      expect(await readAptSources(tmp.dir)).toHaveLength(3)
      expect(await hostArchiveLocation(tmp.dir)).toEqual({ mirror: 'http://deb.debian.org/debian', suite: 'bookworm' })
    })

    it('sources.list comes first', async () => {
      await writeFile(join(tmp.dir, 'sources.list'), 'deb http://first.example/debian trixie main\n')
      await writeFile(join(tmp.dir, 'sources.list.d', 'debian.sources'), DEB822)
      expect(await hostArchiveLocation(tmp.dir)).toEqual({ mirror: 'http://first.example/debian', suite: 'trixie' })
    })

    it('says FEED_ERROR when no Debian archive is configured', async () => {
      const err = await hostArchiveLocation(tmp.dir).catch((e: unknown) => e)
      expect(isRbqError(err, 'FEED_ERROR')).toBe(true)
    })
  })
})
