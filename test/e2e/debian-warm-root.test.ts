/**
 * Warm build roots (build-root.ts: overlay over the cached base root + a cached dependency
 * layer) must never change a result: a warm rebuild of a real package gives the same artifacts
 * and the same inputs digest as a cold one (tarball unpacked, deps installed by apt in it), and
 * two builds at once do not disturb each other. Real archive, real apt, real dpkg-buildpackage.
 */
import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DebianArchive } from '../../node/rebuild/debian/archive.js'
import { rebuildDebian, type DebianBuildOptions } from '../../node/rebuild/debian/debian-builder.js'
import { debianDoctor } from '../../node/rebuild/debian/debian-doctor.js'
import { formatBuilderReport } from '../../cli/commands/doctor.js'
import type { RebuildResult } from '../../node/rebuild/rebuild-types.js'
import { sharedDebianCache } from '../utils/debian-cache.js'

const inCI = process.env.CI === 'true'
const doctor = await debianDoctor()
const unavailable = doctor.ready ? undefined : formatBuilderReport(doctor)
if (unavailable !== undefined && !inCI) console.log(`skipping warm build root tests (set CI=true to require them):\n${unavailable}`)

const MIN = 60_000

describe.skipIf(unavailable !== undefined && !inCI)('warm build roots reproduce exactly as cold ones', () => {
  let archive: DebianArchive
  let opts: DebianBuildOptions
  const timings: string[] = []

  beforeAll(async () => {
    if (unavailable !== undefined) throw new Error(`CI=true but the Debian builder cannot run here:\n${unavailable}`)
    const shared = await sharedDebianCache()
    archive = shared.archive
    opts = { cacheDir: shared.cacheDir, archive, timeoutMs: 15 * MIN, diffoscope: false }
  }, 30 * MIN)

  afterAll(() => console.log(`warm build root timings:\n  ${timings.join('\n  ')}`))

  async function rebuild(source: string, extra: Partial<DebianBuildOptions> = {}, label = source): Promise<RebuildResult> {
    const t0 = Date.now()
    const r = await rebuildDebian({ source }, { ...opts, ...extra })
    timings.push(`${label}: ${r.outcome} in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    return r
  }

  async function expectReproduced(r: RebuildResult, source: string): Promise<void> {
    expect(r.outcome, r.failure?.reason ?? r.diff?.summary).toBe('reproduced')
    const official = new Map((await archive.binaries(await archive.sourcePackage(source))).map((b) => [b.filename.split('/').pop(), b.sha256]))
    for (const a of r.artifacts) expect(official.get(a.name), a.name).toBe(a.sha256)
  }

  const digests = (r: RebuildResult) => ({ inputs: r.inputs.sha256, artifacts: r.artifacts.map((a) => `${a.name} ${a.sha256}`) })
  let concurrentBaseFiles: RebuildResult | undefined

  it('two builds at once (base-files, distro-info-data) are both reproduced', async () => {
    const [a, b] = await Promise.all([rebuild('base-files', {}, 'base-files (concurrent)'), rebuild('distro-info-data', {}, 'distro-info-data (concurrent)')])
    await expectReproduced(a, 'base-files')
    await expectReproduced(b, 'distro-info-data')
    concurrentBaseFiles = a
  }, 20 * MIN)

  it('a warm rebuild (dependency layer reused) equals a cold one: same artifacts, same inputs digest', async () => {
    const warm = await rebuild('base-files', {}, 'base-files (warm)')
    const cold = await rebuild('base-files', { reuseBuildRoot: false }, 'base-files (cold)')
    await expectReproduced(warm, 'base-files')
    await expectReproduced(cold, 'base-files')
    const warmLog = await readFile(warm.log.path, 'utf8')
    expect(warmLog).toMatch(/### rbq: dependency layer [0-9a-f]{32} reused/)
    expect(await readFile(cold.log.path, 'utf8')).not.toMatch(/dependency layer/)
    expect(digests(warm)).toEqual(digests(cold))
    if (concurrentBaseFiles !== undefined) expect(digests(concurrentBaseFiles)).toEqual(digests(cold))
  }, 20 * MIN)
})
