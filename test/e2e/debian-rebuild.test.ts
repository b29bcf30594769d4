/**
 * Real Debian rebuilds from the archive configured in the host's apt sources: no mocks.
 * Versions are picked at run time from the signed indexes. One cache dir (indexes, pool files,
 * build root tarball) is shared by the whole file and created once.
 *
 * Skipped with a printed reason when the machine cannot run the builder (not root, tools
 * missing), except under CI=true where the same condition fails the run.
 */
import { mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isRbqError } from '../../protocol/errors.js'
import { archiveKey, openArchive, verifyInRelease, type DebianArchive } from '../../node/rebuild/debian/archive.js'
import { sharedDebianCache } from '../utils/debian-cache.js'
import { rebuildDebian, type DebianBuildOptions } from '../../node/rebuild/debian/debian-builder.js'
import { debianDoctor } from '../../node/rebuild/debian/debian-doctor.js'
import { formatBuilderReport } from '../../cli/commands/doctor.js'
import { sha256File } from '../../common/files.js'
import type { RebuildResult } from '../../node/rebuild/rebuild-types.js'

const inCI = process.env.CI === 'true'
const doctor = await debianDoctor()
const unavailable = doctor.ready ? undefined : formatBuilderReport(doctor)
if (unavailable !== undefined && !inCI) console.log(`skipping Debian rebuild tests (set CI=true to require them):\n${unavailable}`)

const MIN = 60_000

describe.skipIf(unavailable !== undefined && !inCI)('Debian rebuilds against the real archive', () => {
  // One cache for the whole test run (test/utils/global-setup.ts), shared with other Debian tests.
  let cacheDir: string
  let archive: DebianArchive
  let opts: DebianBuildOptions
  const timings: string[] = []

  beforeAll(async () => {
    if (unavailable !== undefined) throw new Error(`CI=true but the Debian builder cannot run here:\n${unavailable}`)
    const t0 = Date.now()
    ;({ cacheDir, archive } = await sharedDebianCache())
    timings.push(`archive + build root (${archive.location.suite}): ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    opts = { cacheDir, archive, timeoutMs: 15 * MIN }
  }, 30 * MIN)

  afterAll(() => {
    console.log(`Debian rebuild timings:\n  ${timings.join('\n  ')}`)
  })

  const phases = new Map<string, Set<string>>()

  async function rebuild(source: string): Promise<RebuildResult> {
    const t0 = Date.now()
    const seen = new Set<string>()
    phases.set(source, seen)
    const r = await rebuildDebian({ source }, { ...opts, onProgress: (e) => seen.add(e.phase) })
    timings.push(`${source}: ${r.outcome} in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    return r
  }

  async function expectArchiveDigests(r: RebuildResult, source: string): Promise<void> {
    const src = await archive.sourcePackage(source)
    const official = new Map((await archive.binaries(src)).map((b) => [b.filename.split('/').pop(), b.sha256]))
    expect(r.artifacts.length).toBeGreaterThan(0)
    for (const a of r.artifacts) {
      expect(official.get(a.name), a.name).toBe(a.sha256)
      expect((await sha256File(a.path)).sha256).toBe(a.sha256)
    }
    expect(r.upstream.map((u) => u.sha256).sort()).toEqual(r.artifacts.map((a) => a.sha256).sort())
  }

  for (const source of ['base-files', 'distro-info-data']) {
    it(`${source} (newest version in the suite) is reproduced bit for bit`, async () => {
      const src = await archive.sourcePackage(source)
      const r = await rebuild(source)
      expect(r.outcome, r.failure?.reason ?? r.diff?.summary).toBe('reproduced')
      expect(r.package).toBe(`pkg:deb/debian/${source}@${src.version}?arch=source`)
      await expectArchiveDigests(r, source)
      expect(r.inputs.sha256).toMatch(/^[0-9a-f]{64}$/)
      expect(r.inputs.materials.map((m) => m.sha256).sort()).toEqual(src.files.map((f) => f.sha256).sort())
      expect(r.log.size).toBeGreaterThan(0)
      expect((await sha256File(r.log.path)).sha256).toBe(r.log.sha256)
      expect(r.diff).toBeUndefined()
      expect([...(phases.get(source) ?? [])]).toEqual(['fetch', 'verify', 'buildroot', 'build', 'compare', 'done'])
      expect(r.environment).toBe('current') // no official .buildinfo configured
    }, 20 * MIN)
  }

  it('debian-archive-keyring: the .deb and the .udeb (debian-installer index) are reproduced, never no-upstream', async () => {
    const r = await rebuild('debian-archive-keyring')
    expect(r.artifacts.map((a) => a.name).some((n) => n.endsWith('.udeb'))).toBe(true)
    expect(r.outcome, r.diff?.summary).toBe('reproduced')
    await expectArchiveDigests(r, 'debian-archive-keyring')
  }, 20 * MIN)

  it('sl: the archive has only a binNMU (+b1); it is rebuilt as one, with the entry read from the archive .deb', async () => {
    const src = await archive.sourcePackage('sl')
    const nmus = (await archive.binaries(src)).filter((b) => b.binNmu !== undefined)
    expect(nmus.length, 'sl has no binNMU in this suite any more: pick another binNMU package').toBeGreaterThan(0)
    const r = await rebuild('sl')
    // The names match the archive's binNMU files, so the statement is about them.
    expect(r.artifacts.map((a) => a.name).sort()).toEqual(nmus.map((b) => b.filename.split('/').pop()).sort())
    expect(r.upstream.map((u) => u.name).sort()).toEqual(r.artifacts.map((a) => a.name).sort())
    if (r.outcome === 'mismatch') {
      // Not reproducible with today's toolchain: the reason is precise, and it is not the binNMU naming.
      expect(r.diff?.tags).not.toContain('binnmu')
      expect(r.diff?.summary).toContain(r.artifacts[0]?.name)
      if (doctor.checks.find((c) => c.name === 'diffoscope')?.ok === true) expect(r.diff?.tags.length).toBeGreaterThan(0)
      console.log(`sl binNMU: mismatch [${r.diff?.tags.join(', ')}]`)
    } else expect(r.outcome).toBe('reproduced')
  }, 20 * MIN)

  it('liberror-perl does not reproduce: mismatch, explained by diffoscope when installed', async () => {
    const r = await rebuild('liberror-perl')
    expect(r.outcome, r.failure?.reason).toBe('mismatch')
    expect(r.upstream.length).toBeGreaterThan(0)
    expect(r.artifacts.some((a) => r.upstream.find((u) => u.name === a.name)?.sha256 !== a.sha256)).toBe(true)
    expect(r.diff?.summary).toContain('liberror-perl')
    if (doctor.checks.find((c) => c.name === 'diffoscope')?.ok === true) {
      expect(r.diff?.tags.length).toBeGreaterThan(0)
      console.log(`liberror-perl diff tags: ${r.diff?.tags.join(', ')}\n${r.diff?.summary}`)
    }
  }, 20 * MIN)

  it('refuses a source file whose digest differs from the signed Sources index, building nothing', async () => {
    // A private cache: the shared one is in use by other test files, which must not see the forgery.
    const privateCache = await mkdtemp(join(tmpdir(), 'rbq-debian-forged-'))
    try {
      const own = await openArchive({ cacheDir: privateCache })
      const src = await own.sourcePackage('base-files')
      const dscPool = `${src.directory}/${src.dsc.name}`
      const cached = await own.fetchPoolFile(dscPool, src.dsc)
      await writeFile(cached, 'Format: 3.0 (native)\nSource: base-files\nBuild-Depends: evil\n')
      const err = await rebuildDebian({ source: 'base-files' }, { cacheDir: privateCache, archive: own, timeoutMs: 5 * MIN }).then(
        () => undefined,
        (e: unknown) => e
      )
      expect(isRbqError(err, 'CHECKSUM_MISMATCH'), String(err)).toBe(true)
      expect(String((err as Error).message)).toContain(src.dsc.sha256)
      expect(await readdir(join(privateCache, 'builds')).catch(() => [])).toEqual([])
      // The bad copy is gone: the next attempt downloads the real file again.
      expect((await sha256File(await own.fetchPoolFile(dscPool, src.dsc))).sha256).toBe(src.dsc.sha256)
    } finally {
      await rm(privateCache, { recursive: true, force: true })
    }
  }, 5 * MIN)

  it('refuses an InRelease whose signed text was altered', async () => {
    const path = join(cacheDir, 'archive', archiveKey(archive.location), 'InRelease')
    const text = await readFile(path, 'utf8')
    const line = /^ [0-9a-f]{64} +\d+ main\/source\/Sources\.xz$/m.exec(text)?.[0] as string
    const forged = join(cacheDir, 'InRelease.forged')
    await writeFile(forged, text.replace(line, line.replace(/[0-9a-f]/, (c) => (c === '0' ? '1' : '0'))))
    const err = await verifyInRelease(forged).catch((e: unknown) => e)
    expect(isRbqError(err, 'FEED_ERROR'), String(err)).toBe(true)
  })

  it('kills the build at the job timeout: BUILD_TIMEOUT, no build root or process left behind', async () => {
    const outDir = join(cacheDir, 'timeout-job')
    // 1 s: a warm rebuild of base-files takes ~3 s end to end (its dpkg-buildpackage alone ~2.6 s), so it can never finish first.
    const err = await rebuildDebian({ source: 'base-files' }, { ...opts, outDir, timeoutMs: 1_000 }).catch((e: unknown) => e)
    expect(isRbqError(err, 'BUILD_TIMEOUT'), String(err)).toBe(true)
    expect(await stat(join(outDir, 'root')).catch(() => undefined)).toBeUndefined()
    const roots = await Promise.all((await readdir('/proc')).filter((p) => /^\d+$/.test(p)).map((p) => readlink(`/proc/${p}/root`).catch(() => '')))
    expect(roots.filter((r) => r.startsWith(outDir))).toEqual([])
  }, 5 * MIN)
})
