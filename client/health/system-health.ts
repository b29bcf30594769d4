/**
 * System health: the share of installed packages whose exact files meet the verifier's policy
 * (like debian-repro-status, but judged by the user's own trust roots).
 *
 * For each installed binary package the digest of its .deb is taken from, in order:
 *   1. the cached .deb in /var/cache/apt/archives (the very file dpkg unpacked), hashed;
 *   2. the Packages indexes apt verified (/var/lib/apt/lists), for that package/version/arch.
 * Packages found in neither (installed from a local file, or gone from every index) have no
 * digest to ask about: they are listed as `no-digest` and count as not reproduced.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import type { VerdictQuery, VerdictResult } from '../../protocol/api.js'
import { RbqError } from '../../protocol/index.js'
import { sha256File } from '../../common/files.js'
import { debArtifactName, displayName, sourcePurlOf } from '../../debian/binary-package.js'
import { mapLimit } from '../../common/concurrency.js'
import { readDpkgStatus, type InstalledPackage } from '../../debian/dpkg-status.js'
import { binaryKey, lookupIndexedBinaries } from '../../debian/packages-index.js'

export const DEFAULT_APT_ARCHIVES = '/var/cache/apt/archives'

export type DigestSource = 'cache' | 'index'
export type HealthStatus = VerdictResult['status'] | 'no-digest' | 'ambiguous'

export interface PackageHealth {
  package: string
  version: string
  architecture: string
  /** Source purl and artifact name the verdict is about. */
  purl: string
  artifact: string
  sha256: string | null
  digestSource: DigestSource | null
  status: HealthStatus
  reason: string
}

export interface HealthReport {
  installed: number
  reproduced: number
  /** reproduced / installed, 0 when nothing is installed. */
  score: number
  counts: Partial<Record<HealthStatus, number>>
  /** Every installed package, sorted by name then architecture. */
  packages: PackageHealth[]
  configFilesOnly: number
}

export interface HealthOptions {
  statusFile?: string
  archivesDir?: string
  listsDir?: string
  /** Progress lines for humans (stderr). */
  onProgress?: (message: string) => void
  signal?: AbortSignal
}

/** apt's cache names: `<pkg>_<version, ':' as %3a>_<arch>.deb`. */
export function cachedDebName(p: Pick<InstalledPackage, 'package' | 'version' | 'architecture'>): string {
  return `${p.package}_${p.version.replace(/:/g, '%3a')}_${p.architecture}.deb`
}

async function cachedNames(dir: string): Promise<Set<string>> {
  try {
    return new Set((await fs.readdir(dir)).filter((n) => n.endsWith('.deb')))
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Set()
    throw new RbqError('FILE_UNREADABLE', `${dir}: ${(e as Error).message}`, { cause: e })
  }
}

interface Located {
  pkg: InstalledPackage
  sha256: string | null
  digestSource: DigestSource | null
  ambiguous?: number
}

/** Finds each installed package's .deb digest (cache first, then the indexes). */
export async function locateDigests(installed: InstalledPackage[], options: HealthOptions = {}): Promise<Located[]> {
  const progress = options.onProgress ?? (() => {})
  const archivesDir = options.archivesDir ?? DEFAULT_APT_ARCHIVES
  const cached = await cachedNames(archivesDir)
  const inCache = installed.filter((p) => cached.has(cachedDebName(p)))
  progress(`hashing ${inCache.length} cached .deb files in ${archivesDir}`)
  let hashed = 0
  const cacheDigests = new Map<InstalledPackage, string>()
  await mapLimit(inCache, 2, async (p) => {
    options.signal?.throwIfAborted()
    try {
      cacheDigests.set(p, (await sha256File(join(archivesDir, cachedDebName(p)))).sha256)
    } catch (e) {
      if (!(e instanceof RbqError)) throw e // vanished or unreadable: fall back to the index
    }
    if (++hashed % 200 === 0) progress(`hashed ${hashed}/${inCache.length}`)
  })
  const rest = installed.filter((p) => !cacheDigests.has(p))
  progress(`looking up ${rest.length} packages in the Packages indexes`)
  const indexed = await lookupIndexedBinaries(new Set(rest.map(binaryKey)), {
    ...(options.listsDir ? { listsDir: options.listsDir } : {}),
    ...(options.signal ? { signal: options.signal } : {})
  })
  return installed.map((pkg): Located => {
    const fromCache = cacheDigests.get(pkg)
    if (fromCache !== undefined) return { pkg, sha256: fromCache, digestSource: 'cache' }
    const entries = indexed.get(binaryKey(pkg)) ?? []
    if (entries.length === 1) return { pkg, sha256: (entries[0] as { sha256: string }).sha256, digestSource: 'index' }
    return { pkg, sha256: null, digestSource: null, ...(entries.length > 1 ? { ambiguous: entries.length } : {}) }
  })
}

export async function systemHealth(lookup: (queries: VerdictQuery[]) => Promise<Pick<VerdictResult, 'status' | 'reason'>[]>, options: HealthOptions = {}): Promise<HealthReport> {
  const progress = options.onProgress ?? (() => {})
  const status = await readDpkgStatus(options.statusFile)
  progress(`${status.installed.length} installed packages`)
  const located = await locateDigests(status.installed, options)
  const packages: PackageHealth[] = located.map(({ pkg, sha256, digestSource, ambiguous }) => {
    const base = { package: pkg.package, version: pkg.version, architecture: pkg.architecture, purl: sourcePurlOf(pkg), artifact: debArtifactName(pkg), sha256, digestSource }
    if (sha256 !== null) return { ...base, status: 'unknown', reason: '' }
    return ambiguous === undefined
      ? { ...base, status: 'no-digest', reason: 'no cached .deb and not in any Packages index (installed from a local file, or no longer in the archive)' }
      : { ...base, status: 'ambiguous', reason: `${ambiguous} archives ship different files for ${displayName(pkg)} and none is cached` }
  })
  const asked = packages.filter((p) => p.sha256 !== null)
  if (asked.length > 0) {
    progress(`asking the node about ${asked.length} files`)
    const results = await lookup(asked.map((p) => ({ package: p.purl, artifact: p.artifact, sha256: p.sha256 as string })))
    if (results.length !== asked.length) throw new RbqError('API_ERROR', `the node answered ${results.length} verdicts for ${asked.length} questions`)
    asked.forEach((p, i) => {
      const r = results[i] as VerdictResult
      p.status = r.status
      p.reason = r.reason
    })
  }
  const counts: Partial<Record<HealthStatus, number>> = {}
  for (const p of packages) counts[p.status] = (counts[p.status] ?? 0) + 1
  const reproduced = counts.reproduced ?? 0
  return {
    installed: packages.length,
    reproduced,
    score: packages.length === 0 ? 0 : reproduced / packages.length,
    counts,
    packages,
    configFilesOnly: status.configFilesOnly
  }
}

/** Worst first, then by name: what needs attention comes first. */
const ORDER: HealthStatus[] = ['mismatch', 'conflict', 'failed', 'ambiguous', 'no-digest', 'unknown', 'insufficient', 'unreproducible', 'reproduced']

/** `!` a tampering alarm or inconsistent evidence; `~` honest but not reproducible today; `?` too little known. */
function markOf(status: HealthStatus): string {
  if (status === 'reproduced') return '+'
  if (status === 'mismatch' || status === 'conflict') return '!'
  return status === 'unreproducible' ? '~' : '?'
}

export function formatHealth(report: HealthReport, options: { all?: boolean } = {}): string {
  const pct = (report.score * 100).toFixed(2)
  const lines: string[] = []
  const shown = report.packages
    .filter((p) => options.all === true || p.status !== 'reproduced')
    .sort((a, b) => ORDER.indexOf(a.status) - ORDER.indexOf(b.status) || (a.package < b.package ? -1 : a.package > b.package ? 1 : 0))
  for (const p of shown) {
    lines.push(`[${markOf(p.status)}] ${p.package} ${p.architecture} ${p.version} ${p.status.toUpperCase()}${p.reason ? ` — ${p.reason}` : ''}`)
  }
  const counts = ORDER.filter((s) => (report.counts[s] ?? 0) > 0).map((s) => `${s} ${report.counts[s]}`)
  lines.push('')
  lines.push(`${report.installed - report.reproduced}/${report.installed} installed packages are not reproduced under your policy (${counts.join(', ') || 'none installed'}).`)
  const drifted = report.counts.unreproducible ?? 0
  if (drifted > 0) {
    lines.push(`${drifted} of them ${drifted === 1 ? 'is' : 'are'} unreproducible: the archive published exactly these files, rebuilds with today's toolchain get other bytes; not a sign of tampering.`)
  }
  const alarms = (report.counts.mismatch ?? 0) + (report.counts.conflict ?? 0)
  if (alarms > 0) lines.push(`${alarms} ${alarms === 1 ? 'needs' : 'need'} attention now ([!]): mismatch is the tampering alarm, conflict means trusted parties disagree.`)
  lines.push(`Your system is ${pct}% reproduced.`)
  return lines.join('\n') + '\n'
}
