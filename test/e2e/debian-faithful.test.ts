/**
 * Faithful Debian rebuilds, real: an official-style .buildinfo for the archive's base-files
 * (its real .deb digest; the Installed-Build-Depends that dpkg-genbuildinfo recorded in a real
 * build in the cached build root) is served from a local directory,
 * the exact versions from a local apt repository made of real .deb files of the archive, and
 * the build root has to be *changed* to match it: libuuid1 goes down to the older version the
 * security suite still lists. A second .buildinfo names a version that exists nowhere: the
 * rebuild falls back to `current` and says which package was missing.
 *
 * The archive is opened without its -updates/-security suites, so the older libuuid1 can only
 * come from the local repository. Skipped like debian-rebuild.test.ts when the builder cannot run.
 */
import { createHash } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openArchive, type BinaryPackage, type DebianArchive, type SourcePackage } from '../../node/rebuild/debian/archive.js'
import { parseBuildinfo } from '../../node/rebuild/debian/faithful.js'
import { rebuildDebian } from '../../node/rebuild/debian/debian-builder.js'
import { visiblePath, type BuildRoot } from '../../node/rebuild/debian/build-root.js'
import { inputsDigest } from '../../debian/buildinfo.js'
import { debianDoctor } from '../../node/rebuild/debian/debian-doctor.js'
import { formatBuilderReport } from '../../cli/commands/doctor.js'
import { compareVersions, versionWithoutEpoch } from '../../debian/debian-version.js'
import { sharedDebianCache } from '../utils/debian-cache.js'
import { makeLocalAptRepo } from '../utils/local-apt-repo.js'

const inCI = process.env.CI === 'true'
const doctor = await debianDoctor()
const unavailable = doctor.ready ? undefined : formatBuilderReport(doctor)
if (unavailable !== undefined && !inCI) console.log(`skipping faithful Debian rebuild tests (set CI=true to require them):\n${unavailable}`)

const MIN = 60_000
const DOWNGRADED = { name: 'libuuid1', source: 'util-linux' }

describe.skipIf(unavailable !== undefined && !inCI)('faithful Debian rebuilds from an official .buildinfo', () => {
  let cacheDir: string
  let work: string
  let mainOnly: DebianArchive // the release without -updates/-security
  let src: SourcePackage
  let official: BinaryPackage[]
  let rootPackages: Map<string, string> // Installed-Build-Depends of a build with today's archive
  let older: BinaryPackage // libuuid1 at a version older than the build root's
  let repoLine: string
  const timings: string[] = []

  beforeAll(async () => {
    if (unavailable !== undefined) throw new Error(`CI=true but the Debian builder cannot run here:\n${unavailable}`)
    const shared = await sharedDebianCache()
    cacheDir = shared.cacheDir
    work = await mkdtemp(join(tmpdir(), 'rbq-faithful-'))
    mainOnly = await openArchive({ cacheDir, mirror: shared.archive.location.mirror, suite: shared.archive.location.suite, companions: [] })
    src = await mainOnly.sourcePackage('base-files')
    official = await mainOnly.binaries(src)

    // What an official build of this source installs: the Installed-Build-Depends that
    // dpkg-genbuildinfo records in a build with today's archive.
    const current = await rebuildDebian({ source: src.name }, { cacheDir, archive: mainOnly, outDir: join(work, 'out-current'), timeoutMs: 20 * MIN })
    expect(current.outcome, current.failure?.reason).toBe('reproduced')
    const generated = (await readdir(join(work, 'out-current', 'out'))).find((n) => n.endsWith('.buildinfo')) as string
    rootPackages = new Map(parseBuildinfo(await readFile(join(work, 'out-current', 'out', generated), 'utf8'), generated).installed.map((p) => [p.name, p.version]))
    // A real older libuuid1 from the archive (the security suite still lists an older point release).
    const have = rootPackages.get(DOWNGRADED.name) as string
    const candidates: BinaryPackage[] = []
    for (const s of shared.archive.suites) {
      const one = await openArchive({ cacheDir, mirror: s.location.mirror, suite: s.location.suite, companions: [] })
      for (const v of await sourceVersions(one, DOWNGRADED.source)) {
        for (const b of await one.binaries(v)) if (b.name === DOWNGRADED.name && compareVersions(b.version, have) < 0) candidates.push(b)
      }
    }
    const pick = candidates.sort((a, b) => compareVersions(b.version, a.version))[0]
    if (pick === undefined) throw new Error(`no ${DOWNGRADED.name} older than ${have} in ${shared.archive.describe()}: pick another package for this test`)
    older = pick
    const deb = await shared.archive.fetchPoolFile(older.filename, older, undefined, older.mirror)
    repoLine = (await makeLocalAptRepo(join(work, 'repo'), [deb])).line
  }, 30 * MIN)

  afterAll(async () => {
    console.log(`faithful rebuild timings:\n  ${timings.join('\n  ')}`)
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  async function sourceVersions(archive: DebianArchive, name: string): Promise<SourcePackage[]> {
    const newest = await archive.sourcePackage(name).catch(() => undefined)
    return newest === undefined ? [] : [newest]
  }

  /** An official-style .buildinfo: the archive's real .deb digests, the given package versions. */
  function buildinfo(installed: Map<string, string>): string {
    const debs = official.map((b) => ` ${b.sha256} ${b.size} ${basename(b.filename)}`).join('\n')
    const deps = [...installed].sort(([a], [b]) => (a < b ? -1 : 1)).map(([n, v]) => ` ${n} (= ${v})`).join(',\n')
    return [
      'Format: 1.0',
      `Source: ${src.name}`,
      `Binary: ${official.map((b) => b.name).join(' ')}`,
      `Architecture: ${[...new Set(official.map((b) => b.architecture))].join(' ')}`,
      `Version: ${src.version}`,
      `Checksums-Sha256:\n${debs}`,
      'Build-Origin: Debian',
      `Build-Architecture: ${mainOnly.arch}`,
      'Build-Date: Sat, 01 Jun 2024 10:00:00 +0000',
      `Build-Path: /build/reproducible-path/${src.name}-${versionWithoutEpoch(src.version)}`,
      `Installed-Build-Depends:\n${deps}`,
      'Environment:\n DEB_BUILD_OPTIONS="parallel=2"\n LANG="C.UTF-8"\n LC_ALL="C.UTF-8"',
      ''
    ].join('\n')
  }

  async function rebuildWith(installed: Map<string, string>, label: string) {
    const dir = await mkdtemp(join(work, 'bi-'))
    const text = buildinfo(installed)
    const name = `${src.name}_${versionWithoutEpoch(src.version)}_${mainOnly.arch}.buildinfo`
    await writeFile(join(dir, name), text)
    const outDir = join(work, `out-${label}`)
    const t0 = Date.now()
    const r = await rebuildDebian(
      { source: 'base-files' },
      {
        cacheDir,
        archive: mainOnly,
        outDir,
        keepBuildRoot: true,
        timeoutMs: 20 * MIN,
        // A closed loopback port first: an unreachable service must fall through to the next source.
        faithful: { buildinfoSources: ['http://127.0.0.1:9/{source}_{version}_{arch}.buildinfo', dir], repositories: [repoLine] }
      }
    )
    timings.push(`${label}: ${r.outcome} (${r.environment}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    return { r, text, name, root: outDir }
  }

  // The kept build root's layout (an overlay on the warm path): dpkg's status as the build saw it.
  async function installedIn(outDir: string): Promise<Map<string, string>> {
    const out = new Map<string, string>()
    const root = JSON.parse(await readFile(join(outDir, 'buildroot.json'), 'utf8')) as BuildRoot
    for (const para of (await readFile(await visiblePath(root, '/var/lib/dpkg/status'), 'utf8')).split('\n\n')) {
      const name = /^Package: (\S+)/m.exec(para)?.[1]
      const version = /^Version: (\S+)/m.exec(para)?.[1]
      if (name !== undefined && version !== undefined && /^Status: install ok installed/m.test(para)) out.set(name, version)
    }
    return out
  }

  it('installs exactly the listed versions (a downgrade from a local repository) and signs faithful', async () => {
    const wanted = new Map(rootPackages)
    wanted.set(DOWNGRADED.name, older.version)
    const { r, text, name, root } = await rebuildWith(wanted, 'faithful')
    try {
      expect(r.environment, `${r.environmentNote} ${r.failure?.reason}`).toBe('faithful')
      expect(r.outcome, r.diff?.summary).toBe('reproduced')
      const now = await installedIn(root)
      for (const [n, v] of wanted) expect(`${n} ${now.get(n)}`).toBe(`${n} ${v}`)
      expect(now.get(DOWNGRADED.name)).not.toBe(rootPackages.get(DOWNGRADED.name))
      // Same official .buildinfo → same inputs digest on every faithful rebuilder; it is a material.
      expect(r.inputs.sha256).toBe(inputsDigest(text, src.files))
      expect(r.inputs.materials).toContainEqual({ uri: name, sha256: createHash('sha256').update(text).digest('hex') })
      expect(r.environmentNote).toContain('127.0.0.1:9 unreachable')
      // The recorded Build-Path was used.
      expect(await readFile(r.log.path, 'utf8')).toContain(`/build/reproducible-path/${src.name}-`)
    } finally {
      await rm(root, { recursive: true, force: true })
    }
  }, 20 * MIN)

  it('falls back to current, naming the package, when a listed version is in no repository', async () => {
    const wanted = new Map(rootPackages)
    wanted.set(DOWNGRADED.name, `${older.version}~rbq.absent`)
    const { r, root } = await rebuildWith(wanted, 'missing version')
    try {
      expect(r.environment).toBe('current')
      expect(r.environmentNote).toContain(`${DOWNGRADED.name} ${older.version}~rbq.absent`)
      expect(r.outcome, r.diff?.summary).toBe('reproduced')
      expect((await installedIn(root)).get(DOWNGRADED.name)).toBe(rootPackages.get(DOWNGRADED.name))
      expect(r.inputs.materials.some((m) => m.uri.endsWith('.buildinfo'))).toBe(false)
    } finally {
      await rm(root, { recursive: true, force: true })
    }
  }, 20 * MIN)
})
