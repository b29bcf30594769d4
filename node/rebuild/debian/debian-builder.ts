/**
 * The Debian builder: rebuilds one source package of the archive in an isolated build root and
 * compares every .deb with the archive's. Pipeline (each phase reported through OnProgress):
 *
 *   fetch     signed Sources entry → .dsc and files from the pool, each checked by SHA-256;
 *             the official .buildinfo when configured (faithful.ts)
 *   buildroot an overlay of the cached base root (build-root.ts; cold path: the mmdebstrap
 *             tarball unpacked); either the official build's exact versions (faithful, checked
 *             with dpkg-query) or today's build deps (current: a cached dependency layer for
 *             apt's exact plan, made on first use), network on
 *   build     dpkg-source -x (+ the binNMU changelog entry), dpkg-buildpackage as an
 *             unprivileged user, no network
 *   compare   .deb/.udeb digests vs the signed Packages indexes; diffoscope on mismatch
 *
 * Throws RbqError when there is nothing to attest: CHECKSUM_MISMATCH (source or index does not
 * match its signed digest), DOWNLOAD_FAILED (transient), FEED_ERROR, BUILDER_UNAVAILABLE,
 * BUILD_TIMEOUT; an external abort rethrows the signal's reason. A package that does not build
 * is an outcome, `failed`, with `failure.transient = false`.
 */
import { createHash } from 'node:crypto'
import type { WriteStream } from 'node:fs'
import { availableParallelism } from 'node:os'
import { chown, copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { debianSourcePurl } from '../../../debian/binary-package.js'
import { RbqError } from '../../../protocol/errors.js'
import type { Material, OnProgress, RebuildArtifact, RebuildResult, UpstreamArtifact } from '../rebuild-types.js'
import { archiveKey, openArchive, type ArchiveOptions, type BinaryPackage, type DebianArchive, type SourcePackage } from './archive.js'
import {
  aptPlan,
  BUILD_USER,
  ensureBaseRoot,
  ensureBuildRoot,
  hostPath,
  layerKey,
  newWritableLayer,
  overlayUnsupported,
  releaseLayer,
  removeBuildRoot,
  requireRoot,
  runInBuildRoot,
  storeLayer,
  unpackBuildRoot,
  useLayer,
  writablePath,
  type BaseRoot,
  type BuildRoot,
  type InRootOptions
} from './build-root.js'
import { inputsDigest } from '../../../debian/buildinfo.js'
import { parseParagraph, stripClearsign, type Paragraph } from '../../../debian/deb822.js'
import { diffoscopeAvailable, runDiffoscope, summarizeDiff } from './diffoscope.js'
import {
  exactRepositoryLines,
  fileRepositoryDirs,
  findOfficialBuildinfo,
  officialMismatch,
  versionDifferences,
  type FaithfulConfig,
  type OfficialBuildinfo
} from './faithful.js'
import { sha256File } from '../../../common/files.js'
import { openBuildLog, type BuildLog } from '../build-log.js'
import { versionWithoutEpoch } from '../../../debian/debian-version.js'

export interface DebianBuildInput {
  /** Source package name, e.g. `base-files`. */
  source: string
  /** Exact source version; default: the newest in the suite. */
  version?: string
}

export interface DebianBuildOptions extends Omit<ArchiveOptions, 'signal'> {
  /** An archive already opened (shares its parsed indexes); else opened from the options. */
  archive?: DebianArchive
  /** Where the log, the artifacts and reports are kept (default `<cacheDir>/builds/<src>_<ver>-<time>`). */
  outDir?: string
  /** Whole job, downloads included (default 3 h). The process group is killed at the deadline. */
  timeoutMs?: number
  signal?: AbortSignal
  onProgress?: OnProgress
  /** DEB_BUILD_OPTIONS parallel=N (recorded in the .buildinfo; default: CPU count). */
  parallel?: number
  /** Run diffoscope on mismatches when it is installed (default true). */
  diffoscope?: boolean
  diffoscopeTimeoutMs?: number
  buildRootMaxAgeMs?: number
  /**
   * Keep the build root for inspection (default false); its layout is written to
   * `<outDir>/buildroot.json` (a BuildRoot: with an overlay, run commands in it with runInBuildRoot).
   */
  keepBuildRoot?: boolean
  /**
   * Warm path (default true): an overlay of the cached base root plus a cached layer of the
   * installed build dependencies, shared apt lists and .deb cache. false: the cold path (the
   * tarball unpacked, deps installed by apt in it). Same build root content either way.
   */
  reuseBuildRoot?: boolean
  /** Attempt faithful rebuilds from the official .buildinfo (faithful.ts). Unset: always `current`. */
  faithful?: FaithfulConfig
}

const BUILD_ENV = {
  PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: BUILD_USER.home,
  USER: BUILD_USER.name,
  LOGNAME: BUILD_USER.name,
  LC_ALL: 'C.UTF-8',
  TZ: 'UTC'
}
const APT_ENV = { PATH: BUILD_ENV.PATH, HOME: '/root', LC_ALL: 'C.UTF-8', DEBIAN_FRONTEND: 'noninteractive' }
const APT_OPTS = ['-q', '-o', 'Acquire::Languages=none', '-o', 'APT::Install-Recommends=false']

interface Job {
  archive: DebianArchive
  src: SourcePackage
  dsc: Paragraph
  sourceFiles: Map<string, string> // name → local path (verified)
  dir: string
  root: BuildRoot
  /** Warm path: the cached base root; undefined on the cold path. */
  base: BaseRoot | undefined
  /** Warm path: the writable layer the build deps are installed into (becomes a cached layer). */
  depsLayer: { dir: string; upper: string; work: string } | undefined
  /** Cached dependency layer this build uses (released at the end). */
  layer: string | undefined
  /** Directories removed with the build root. */
  scratch: string[]
  buildDir: string // path inside the build root, e.g. /build/hello-2.10 (faithful: the official Build-Path)
  /** The official build being reproduced; unset for a `current` rebuild. */
  official: OfficialBuildinfo | undefined
  /** Why this rebuild is `current` although a faithful one was configured. */
  notes: string[]
  log: WriteStream
  buildLog: BuildLog
  signal: AbortSignal
  progress: OnProgress
  opts: DebianBuildOptions
}

export async function rebuildDebian(input: DebianBuildInput, opts: DebianBuildOptions): Promise<RebuildResult> {
  const startedOn = new Date()
  const timeoutMs = opts.timeoutMs ?? 3 * 3_600_000
  const timeout = AbortSignal.timeout(timeoutMs)
  const signal = opts.signal === undefined ? timeout : AbortSignal.any([opts.signal, timeout])
  const progress: OnProgress = opts.onProgress ?? (() => {})
  if (opts.parallel !== undefined && !(Number.isInteger(opts.parallel) && opts.parallel > 0)) {
    throw new RbqError('CONFIG_INVALID', `parallel must be a positive integer, got ${opts.parallel}`)
  }
  try {
    requireRoot()
    progress({ phase: 'fetch', message: `reading the archive index for ${input.source}` })
    const archive = opts.archive ?? (await openArchive({ ...opts, signal }))
    const src = await archive.sourcePackage(input.source, input.version, signal)
    const binaries = await archive.binaries(src, signal)
    const sourceFiles = await fetchSources(archive, src, signal, progress)
    const dsc = parseParagraph(stripClearsign(await readFile(sourceFiles.get(src.dsc.name) as string, 'utf8')).trim())
    checkDscAgainstSources(dsc, src)

    const dir = opts.outDir ?? join(opts.cacheDir, 'builds', `${src.name}_${versionWithoutEpoch(src.version)}-${stamp(startedOn)}`)
    await mkdir(dir, { recursive: true })
    const buildLog = openBuildLog(join(dir, 'build.log'))
    const log = buildLog.stream
    const notes: string[] = []
    const official = await officialBuild(archive, src, binaries, opts, notes, signal)
    const job: Job = {
      archive, src, dsc, sourceFiles, dir, log, buildLog, signal, progress, opts, notes, official,
      root: { mountpoint: join(dir, 'root') },
      base: undefined,
      depsLayer: undefined,
      layer: undefined,
      scratch: [],
      buildDir: official?.buildPath ?? defaultBuildDir(src)
    }
    for (const n of notes) log.write(`### rbq: ${n}\n`)
    for (const w of archive.warnings) log.write(`### rbq: warning: ${w}\n`)
    try {
      return await buildAndCompare(job, binaries, startedOn)
    } finally {
      await buildLog.close().catch(() => undefined) // already reported through logInfo, or the build failed anyway
      if (job.layer !== undefined) releaseLayer(job.layer)
      if (opts.keepBuildRoot === true) await writeFile(join(dir, 'buildroot.json'), `${JSON.stringify(job.root)}\n`)
      else await discardBuildRoot(job)
    }
  } catch (e) {
    if (timeout.aborted) throw new RbqError('BUILD_TIMEOUT', `rebuild of ${input.source} exceeded ${timeoutMs} ms`, { cause: e })
    if (opts.signal?.aborted === true) throw opts.signal.reason
    throw e
  }
}

/** DEB_BUILD_OPTIONS parallel=N for `concurrency` builds at once: the cores split between them. */
export function defaultParallel(concurrency = 1): number {
  return Math.max(1, Math.floor(availableParallelism() / concurrency))
}

function defaultBuildDir(src: SourcePackage): string {
  return `/build/${src.name}-${versionWithoutEpoch(src.version)}`
}

/**
 * The official .buildinfo to reproduce, when faithful rebuilds are configured and one is found
 * that is the archive's build (its .deb digests are the signed index's). Reasons why not go to
 * `notes`; the rebuild is then `current`.
 */
async function officialBuild(
  archive: DebianArchive,
  src: SourcePackage,
  binaries: BinaryPackage[],
  opts: DebianBuildOptions,
  notes: string[],
  signal: AbortSignal
): Promise<OfficialBuildinfo | undefined> {
  if (opts.faithful === undefined || opts.faithful.buildinfoSources.length === 0) return undefined
  opts.onProgress?.({ phase: 'fetch', message: `looking for the official .buildinfo of ${src.name} ${src.version}` })
  let bi: OfficialBuildinfo | undefined
  try {
    bi = await findOfficialBuildinfo(src, binaries, archive.arch, opts.faithful, notes, signal)
  } catch (e) {
    if (signal.aborted) throw e
    notes.push(`official .buildinfo unusable: ${(e as Error).message}`)
    return undefined
  }
  if (bi === undefined) return undefined
  const wrong = officialMismatch(bi, src, binaries, archive.arch)
  if (wrong !== undefined) {
    notes.push(wrong)
    return undefined
  }
  if (bi.buildPath !== undefined && !/^\/(?:[A-Za-z0-9._+-]+\/)+[A-Za-z0-9._+-]+$/.test(bi.buildPath)) {
    notes.push(`${bi.uri}: Build-Path ${JSON.stringify(bi.buildPath)} is not a plain absolute path`)
    return undefined
  }
  if (bi.buildPath?.split('/').some((seg) => seg === '..' || seg === '.') === true) {
    notes.push(`${bi.uri}: Build-Path ${bi.buildPath} has . or .. segments`)
    return undefined
  }
  return bi
}

async function fetchSources(archive: DebianArchive, src: SourcePackage, signal: AbortSignal, progress: OnProgress): Promise<Map<string, string>> {
  const local = new Map<string, string>()
  for (const f of src.files) {
    progress({ phase: 'fetch', message: `fetching ${f.name} (${f.size} bytes)` })
    local.set(f.name, await archive.fetchPoolFile(`${src.directory}/${f.name}`, f, signal, src.mirror))
  }
  progress({ phase: 'verify', message: `${src.files.length} source files match the signed Sources index` })
  return local
}

/** The .dsc (already verified by digest) must name exactly the files the Sources entry lists. */
function checkDscAgainstSources(dsc: Paragraph, src: SourcePackage): void {
  const listed = (dsc.get('Checksums-Sha256') ?? '').split('\n').map((l) => l.trim().split(/\s+/)).filter((p) => p.length === 3)
  for (const [hash, , name] of listed) {
    const f = src.files.find((x) => x.name === name)
    if (f === undefined || f.sha256 !== hash) {
      throw new RbqError('CHECKSUM_MISMATCH', `${src.dsc.name} lists ${name} with sha256 ${hash}, not what the Sources index says`)
    }
  }
}

function buildDepends(dsc: Paragraph): string[] {
  const join_ = (names: string[]): string =>
    names.map((n) => dsc.get(n)).filter((v): v is string => v !== undefined && v.trim() !== '').join(', ').replace(/\s+/g, ' ').trim()
  const deps = join_(['Build-Depends', 'Build-Depends-Arch', 'Build-Depends-Indep'])
  const conflicts = join_(['Build-Conflicts', 'Build-Conflicts-Arch', 'Build-Conflicts-Indep'])
  return [...(deps === '' ? [] : [deps]), ...(conflicts === '' ? [] : [`Conflicts: ${conflicts}`])]
}

async function buildAndCompare(job: Job, allBinaries: BinaryPackage[], startedOn: Date): Promise<RebuildResult> {
  await prepareBuildRoot(job)
  if (job.official !== undefined) {
    const problem = await installExactVersions(job, job.official)
    if (problem !== undefined) {
      job.notes.push(`not faithful, rebuilt with today's archive instead: ${problem.reason}`)
      job.log.write(`\n### rbq: not faithful: ${problem.reason}\n`)
      job.progress({ phase: 'buildroot', message: `not faithful: ${problem.reason}` })
      job.official = undefined
      job.buildDir = defaultBuildDir(job.src)
      // Warm path: always a fresh writable layer (the probe's apt lists must not become a cached layer).
      if (problem.dirty || job.base !== undefined) {
        await discardBuildRoot(job)
        await prepareBuildRoot(job)
      }
    }
  }
  const official = job.official
  if (official === undefined) {
    const depsProblem = await installBuildDeps(job)
    if (depsProblem !== undefined) return failed(job, startedOn, depsProblem, undefined)
  }
  await placeSources(job)
  // binNMU: the official Binary-Only-Changes, else the entry read from the archive's own .deb.
  const nmuBinaries = allBinaries.filter((b) => b.binNmu !== undefined && b.architecture !== 'all')
  const binNmuEntry = official?.binaryOnlyChanges ?? (nmuBinaries.length > 0 ? await archiveBinNmuEntry(job, nmuBinaries) : undefined)
  // What this build produces: the official build's architectures; a binNMU is arch-only.
  const archs = official?.architectures ?? (binNmuEntry !== undefined ? ['any'] : ['all', 'any'])
  const binaries = allBinaries.filter((b) => (b.architecture === 'all' ? archs.includes('all') : archs.some((a) => a !== 'all')))
  const build = await runBuild(job, archs, binNmuEntry)
  if (build.problem !== undefined) return failed(job, startedOn, build.problem, build.env)

  const { artifacts, buildinfo } = await collectOutputs(job)
  if (artifacts.length === 0 || buildinfo === undefined) return failed(job, startedOn, 'the build produced no .deb or no .buildinfo', build.env)
  job.progress({ phase: 'compare', message: `comparing ${artifacts.length} .deb with ${job.archive.describe()}` })
  const cmp = compareWithArchive(artifacts, binaries)
  const diff = cmp.reproduced ? undefined : await explainMismatch(job, cmp)
  const environment = official === undefined ? 'current' : 'faithful'
  job.progress({ phase: 'done', message: `${cmp.reproduced ? 'reproduced' : `mismatch${diff === undefined ? '' : ` [${diff.tags.join(', ')}]`}`} (${environment})` })
  return {
    package: debianSourcePurl(job.src.name, job.src.version),
    outcome: cmp.reproduced ? 'reproduced' : 'mismatch',
    artifacts,
    upstream: cmp.upstream,
    // Faithful: from the official .buildinfo, so two faithful rebuilds of one build agree.
    inputs: { sha256: inputsDigest(official?.text ?? buildinfo, job.src.files), materials: materials(job) },
    backend: 'debian',
    environment,
    ...(job.notes.length === 0 ? {} : { environmentNote: job.notes.join('; ') }),
    startedOn,
    finishedOn: new Date(),
    log: await logInfo(job),
    ...(diff === undefined ? {} : { diff })
  }
}

/**
 * Adds the exact-version repositories and installs exactly the official Installed-Build-Depends
 * (downgrades allowed), then checks every one with dpkg-query. Returns why not, if so; `dirty`
 * when packages may already have changed (the build root must be unpacked afresh).
 */
async function installExactVersions(job: Job, bi: OfficialBuildinfo): Promise<{ reason: string; dirty: boolean } | undefined> {
  const lines = exactRepositoryLines(job.opts.faithful as FaithfulConfig, bi, job.archive.location.suite)
  const listFile = await writablePath(job.root, '/etc/apt/sources.list.d/rbq-exact.list')
  await writeFile(listFile, `${lines.join('\n')}\n`)
  const binds = fileRepositoryDirs(lines)
  const names = [...new Set(bi.installed.map((p) => p.name))]
  job.progress({ phase: 'buildroot', message: `faithful: ${bi.installed.length} exact versions from ${bi.uri}` })
  const apt = `apt-get ${APT_OPTS.join(' ')} -o Acquire::Retries=0 -o Acquire::http::Timeout=20 -o Acquire::https::Timeout=20`
  // update's exit status is not the verdict (an unreachable source is fine if another has the
  // versions): madison says what apt can install, dpkg-query what is installed.
  const probe = `${apt} update >&2 || true; apt-cache madison "$@"; echo '#installed'; dpkg-query -W -f '\${Package} \${Version} \${db:Status-Abbrev}\n'`
  const r = await step(job, 'buildroot', 'apt-get update (exact versions)', ['/bin/sh', '-c', probe, 'sh', ...names], { network: true, asRoot: true, env: APT_ENV, binds })
  const [madison = '', installedNow = ''] = r.stdout.toString('utf8').split('#installed\n')
  const available = new Set<string>()
  for (const line of madison.split('\n')) {
    const [name, version] = line.split('|').map((x) => x.trim())
    if (name !== undefined && version !== undefined && version !== '') available.add(`${name} ${version}`)
  }
  const notInstalled = new Set(versionDifferences(bi.installed, installedNow).map((d) => d.split(' ')[0]))
  const missing = bi.installed.filter((p) => notInstalled.has(p.name) && !available.has(`${p.name} ${p.version}`))
  if (missing.length > 0) {
    await rm(listFile, { force: true })
    const shown = missing.slice(0, 5).map((p) => `${p.name} ${p.version}`).join(', ')
    return { reason: `exact version not found in any repository: ${shown}${missing.length > 5 ? ` (${missing.length} in all)` : ''}`, dirty: false }
  }
  const wanted = bi.installed.filter((p) => notInstalled.has(p.name)).map((p) => `${p.name}${p.arch === undefined ? '' : `:${p.arch}`}=${p.version}`)
  if (wanted.length > 0) {
    const install = `${apt} -y --allow-downgrades -o Dpkg::Options::=--force-confold install "$@"`
    const inst = await step(job, 'buildroot', `apt-get install (${wanted.length} exact versions)`, ['/bin/sh', '-c', install, 'sh', ...wanted], { network: true, asRoot: true, env: APT_ENV, binds })
    if (inst.code !== 0) return { reason: `installing the exact versions failed: ${lastLines(inst.stderr)}`, dirty: true }
  }
  const check = await step(job, 'buildroot', 'dpkg-query (exact versions)', ['dpkg-query', '-W', '-f', '${Package} ${Version} ${db:Status-Abbrev}\n'], { network: false, asRoot: false, env: BUILD_ENV })
  const differ = versionDifferences(bi.installed, check.stdout.toString('utf8'))
  if (differ.length > 0) return { reason: `not at the recorded version after install: ${differ.slice(0, 5).join(', ')}`, dirty: true }
  job.log.write(`### rbq: faithful: all ${bi.installed.length} Installed-Build-Depends at their recorded versions\n`)
  return undefined
}

/**
 * The binNMU changelog entry, read from the archive's own binNMU .deb
 * (/usr/share/doc/<pkg>/changelog.Debian.<arch>.gz holds just that entry), inside the build root.
 */
async function archiveBinNmuEntry(job: Job, nmus: BinaryPackage[]): Promise<string | undefined> {
  for (const b of nmus) {
    const local = await job.archive.fetchPoolFile(b.filename, b, job.signal, b.mirror)
    await copyFile(local, await writablePath(job.root, '/tmp/rbq-binnmu.deb'))
    const script = 'dpkg-deb --fsys-tarfile /tmp/rbq-binnmu.deb | tar -xOf - "./usr/share/doc/$1/changelog.Debian.$2.gz" | gzip -dc'
    const r = await step(job, 'build', `binNMU changelog entry of ${basename(b.filename)}`, ['/bin/sh', '-c', script, 'sh', b.name, b.architecture], { network: false, asRoot: false, env: BUILD_ENV })
    const text = r.stdout.toString('utf8').trim()
    const first = text.split('\n')[0] ?? ''
    if (r.code === 0 && first.startsWith(`${job.src.name} (${b.version}) `)) return text
  }
  job.notes.push(`binNMU changelog entry not found in ${nmus.map((b) => basename(b.filename)).join(', ')}`)
  return undefined
}

/**
 * A fresh build root: warm, a new writable layer over the cached base root (mounted in each
 * command's namespace); cold (reuseBuildRoot false, or no overlayfs here), the tarball unpacked.
 * Either way with the host's resolv.conf (apt only; builds have no network) and the release's
 * companion suites in apt's sources.
 */
async function prepareBuildRoot(job: Job): Promise<void> {
  const mountpoint = join(job.dir, 'root')
  const rootOpts = {
    cacheDir: job.opts.cacheDir,
    location: job.archive.location,
    arch: job.archive.arch,
    maxAgeMs: job.opts.buildRootMaxAgeMs,
    keyring: job.opts.keyring,
    signal: job.signal,
    onProgress: job.progress
  }
  job.base = undefined
  if (job.opts.reuseBuildRoot !== false) {
    const base = await ensureBaseRoot(rootOpts)
    const why = await overlayUnsupported(base.tmp)
    if (why === undefined) {
      job.base = base
      job.depsLayer = await newWritableLayer(base.tmp) // same file system as the layers it may join
      job.scratch.push(job.depsLayer.dir)
      await mkdir(mountpoint, { recursive: true })
      job.root = { mountpoint, overlay: { lowers: [base.root], upper: job.depsLayer.upper, work: job.depsLayer.work } }
    } else job.log.write(`### rbq: warning: build root not reused (${why}): unpacking it\n`)
  }
  if (job.base === undefined) {
    const tarball = await ensureBuildRoot(rootOpts)
    job.progress({ phase: 'buildroot', message: 'unpacking the build root' })
    await unpackBuildRoot(tarball, mountpoint, job.signal)
    job.root = { mountpoint }
  }
  await copyFile('/etc/resolv.conf', await writablePath(job.root, '/etc/resolv.conf')).catch(() => {}) // for apt only; the build has no network
  const companions = releaseSourcesList(job)
  if (companions !== '') await writeFile(await writablePath(job.root, '/etc/apt/sources.list.d/rbq-release.list'), companions)
}

/** The release's other suites (-updates, -security), signed by the same keyring as the main one. */
function releaseSourcesList(job: Job): string {
  const companions = job.archive.suites.slice(1).map((s) => `deb ${s.location.mirror} ${s.location.suite} main`)
  return companions.length === 0 ? '' : `${companions.join('\n')}\n`
}

/** Unmounted by construction (mounts live in the commands' namespaces): removes every directory of the build root. */
async function discardBuildRoot(job: Job): Promise<void> {
  await removeBuildRoot(job.root.mountpoint)
  for (const d of job.scratch.splice(0)) await removeBuildRoot(d)
  if (job.layer !== undefined) releaseLayer(job.layer)
  job.layer = undefined
  job.depsLayer = undefined
}

/** The source files next to the build dir (its parent), owned by the build user. */
async function placeSources(job: Job): Promise<void> {
  const parent = dirname(job.buildDir)
  await mkdir(await writablePath(job.root, parent), { recursive: true })
  for (let d = parent; d !== '/'; d = dirname(d)) await chown(await writablePath(job.root, d), BUILD_USER.uid, BUILD_USER.gid)
  for (const [name, path] of job.sourceFiles) {
    const dest = await writablePath(job.root, join(parent, name))
    await copyFile(path, dest)
    await chown(dest, BUILD_USER.uid, BUILD_USER.gid)
  }
}

const aptClassify = (stderr: string): string => {
  if (/Failed to fetch|Temporary failure|Could not resolve|Unable to connect|Connection failed|Hash Sum mismatch/i.test(stderr)) {
    throw new RbqError('DOWNLOAD_FAILED', `installing build dependencies failed on the network: ${lastLines(stderr)}`)
  }
  return `build dependencies cannot be installed: ${lastLines(stderr)}`
}

/** apt inside the build root, from the same suite. Returns why the deps cannot be installed, if so. */
async function installBuildDeps(job: Job): Promise<string | undefined> {
  const deps = buildDepends(job.dsc)
  job.progress({ phase: 'buildroot', message: `installing build dependencies: ${deps.join('; ') || '(none)'}` })
  const apt = `apt-get ${APT_OPTS.join(' ')}`
  if (job.base !== undefined) return installBuildDepsWarm(job, job.base, deps, apt)
  const script = `${apt} update && { [ $# -eq 0 ] || ${apt} -y satisfy "$@"; }`
  const r = await step(job, 'buildroot', 'apt-get satisfy', ['/bin/sh', '-c', script, 'sh', ...deps], { network: true, asRoot: true, env: APT_ENV })
  return r.code === 0 ? undefined : aptClassify(r.stderr)
}

/**
 * Warm path. apt's plan for the build deps (`apt-get -s satisfy`, lists updated unless they are
 * already the release this archive view verified) names the cached layer: the exact packages,
 * versions and order apt installs onto this base. A layer made on first use is that install
 * (into a writable layer over the base, as the cold path does into the unpacked tarball); later
 * builds with the same plan stack it read-only under a fresh writable layer. apt's lists and
 * .deb cache are bind-mounted from the cache for these steps only, under one flock (apt's own
 * locks would make a concurrent build fail instead of wait).
 */
async function installBuildDepsWarm(job: Job, base: BaseRoot, deps: string[], apt: string): Promise<string | undefined> {
  const shared: Pick<InRootOptions, 'lock' | 'writableBinds'> = {
    lock: base.aptLock,
    writableBinds: [
      { source: base.aptLists, target: '/var/lib/apt/lists' },
      { source: base.aptArchives, target: '/var/cache/apt/archives' }
    ]
  }
  const how = { network: true, asRoot: true, env: APT_ENV, ...shared }
  const lists = await aptListsCurrent(job, base)
  const sources = releaseSourcesList(job)
  const simulate = `{ [ $# -eq 0 ] || ${apt} -s satisfy "$@"; }`
  // apt's plan is a function of the lists, the base and the deps: remembered per lists digest.
  const planMemo = lists === undefined ? undefined : join(base.dir, 'plans', createHash('sha256').update(JSON.stringify([lists, sources, deps])).digest('hex'))
  const memoKey = planMemo === undefined ? undefined : (await readFile(planMemo, 'utf8').catch(() => '')).trim()
  let layer = memoKey === undefined || memoKey === '' ? undefined : await useLayer(base, memoKey)
  if (layer === undefined) {
    const update = lists !== undefined ? '' : `${apt} update >&2 && `
    const sim = await step(job, 'buildroot', 'apt-get -s satisfy (plan)', ['/bin/sh', '-c', `${update}${simulate}`, 'sh', ...deps], how)
    if (sim.code !== 0) return aptClassify(sim.stderr)
    const key = layerKey(aptPlan(sim.stdout.toString('utf8')), sources)
    layer = await useLayer(base, key)
    if (layer !== undefined && planMemo !== undefined) await rememberPlan(planMemo, key)
  }
  const own = job.depsLayer as { dir: string; upper: string; work: string }
  if (layer === undefined) {
    // The plan is read again under the same lock as the install: it is what was installed.
    const install = `${simulate}; echo '#rbq-install'; [ $# -eq 0 ] || ${apt} -y satisfy "$@" >&2`
    const r = await step(job, 'buildroot', 'apt-get satisfy (new dependency layer)', ['/bin/sh', '-c', install, 'sh', ...deps], how)
    if (r.code !== 0) return aptClassify(r.stderr)
    const plan = aptPlan(r.stdout.toString('utf8').split('#rbq-install')[0] ?? '')
    const key = layerKey(plan, sources)
    await storeLayer(base, own, key, plan)
    if (planMemo !== undefined) await rememberPlan(planMemo, key)
    job.log.write(`### rbq: dependency layer ${key} stored (${plan.length} apt actions)\n`)
    layer = await useLayer(base, key)
    if (layer === undefined) throw new RbqError('BUILDER_UNAVAILABLE', `dependency layer ${key} vanished right after it was stored`)
  } else {
    job.log.write(`### rbq: dependency layer ${basename(dirname(layer))} reused\n`)
    await removeBuildRoot(own.dir)
  }
  job.scratch.splice(job.scratch.indexOf(own.dir), 1)
  job.layer = layer
  job.depsLayer = undefined
  const mine = await newWritableLayer(join(job.dir, 'overlay'))
  job.scratch.push(mine.dir)
  job.root = { mountpoint: job.root.mountpoint, overlay: { lowers: [layer, base.root], upper: mine.upper, work: mine.work } }
  return undefined
}

/**
 * When apt's shared lists hold exactly the InRelease files this archive view verified (then
 * `apt-get update` would change nothing the build deps resolve against, and is skipped): a
 * digest of those files; else undefined.
 */
async function aptListsCurrent(job: Job, base: BaseRoot): Promise<string | undefined> {
  const h = createHash('sha256')
  for (const s of job.archive.suites) {
    const ours = await readFile(join(job.opts.cacheDir, 'archive', archiveKey(s.location), 'InRelease')).catch(() => undefined)
    const name = `${s.location.mirror.replace(/^[a-z]+:\/\//, '').replace(/\//g, '_')}_dists_${s.location.suite}_InRelease`
    const theirs = await readFile(join(base.aptLists, name)).catch(() => undefined)
    if (ours === undefined || theirs === undefined || !ours.equals(theirs)) return undefined
    h.update(ours)
  }
  return h.digest('hex')
}

async function rememberPlan(path: string, key: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  const tmp = `${path}.part-${process.pid}`
  await writeFile(tmp, `${key}\n`)
  await rename(tmp, path)
}

/**
 * As the build user, without network: unpack the source, put a binNMU entry on top of
 * debian/changelog (as sbuild --make-binNMU does), read SOURCE_DATE_EPOCH from it (unless the
 * official Environment has one), run dpkg-buildpackage for `archs` (-b, -B or -A). `env` is
 * set once the build itself could start.
 */
async function runBuild(job: Job, archs: string[], binNmuEntry: string | undefined): Promise<{ problem?: string; env?: Record<string, string> }> {
  const parent = dirname(job.buildDir)
  if (binNmuEntry !== undefined) {
    const path = await writablePath(job.root, join(parent, 'rbq-binnmu.changelog'))
    await writeFile(path, `${binNmuEntry.trim()}\n\n`)
    await chown(path, BUILD_USER.uid, BUILD_USER.gid)
  }
  const unpackScript = [
    'set -e; umask 022; cd "$1"; dpkg-source --no-check -x "$2" "$3" >&2; cd "$3"',
    'if [ -f ../rbq-binnmu.changelog ]; then cat ../rbq-binnmu.changelog debian/changelog > ../rbq-changelog.new; mv ../rbq-changelog.new debian/changelog; fi',
    'dpkg-parsechangelog -STimestamp'
  ].join('\n')
  const unpack = await step(job, 'build', 'dpkg-source -x', ['/bin/sh', '-c', unpackScript, 'sh', parent, job.src.dsc.name, job.buildDir], { network: false, asRoot: false, env: BUILD_ENV })
  const epoch = unpack.stdout.toString('utf8').trim()
  if (unpack.code !== 0 || !/^\d+$/.test(epoch)) return { problem: `dpkg-source -x failed: ${lastLines(unpack.stderr)}` }

  const official = job.official
  const env = { ...BUILD_ENV, SOURCE_DATE_EPOCH: epoch, ...(official?.environment ?? {}) }
  const what = archs.includes('all') ? (archs.some((a) => a !== 'all') ? '-b' : '-A') : '-B'
  // Faithful: parallelism as recorded in DEB_BUILD_OPTIONS; current: ours (-J).
  const parallel = official === undefined ? ` -J${job.opts.parallel ?? availableParallelism()}` : ''
  job.progress({ phase: 'build', message: `dpkg-buildpackage ${what} in ${job.buildDir}, SOURCE_DATE_EPOCH=${env.SOURCE_DATE_EPOCH}` })
  const buildScript = `umask 022; cd "$1" && exec dpkg-buildpackage ${what} -uc -us${parallel}`
  const r = await step(job, 'build', 'dpkg-buildpackage', ['/bin/sh', '-c', buildScript, 'sh', job.buildDir], { network: false, asRoot: false, env })
  return r.code === 0 ? { env } : { problem: `dpkg-buildpackage exited with ${r.code ?? r.signal}: ${lastLines(r.stderr)}`, env }
}

/** Copies the outputs out of the build root; dbgsym .debs belong to the debug archive: not compared, not attested. */
async function collectOutputs(job: Job): Promise<{ artifacts: RebuildArtifact[]; buildinfo: string | undefined }> {
  const inRootBuild = hostPath(job.root, dirname(job.buildDir))
  const outDir = join(job.dir, 'out')
  await mkdir(outDir, { recursive: true })
  const produced = (await readdir(inRootBuild)).filter((n) => /\.(u?deb|buildinfo|changes)$/.test(n))
  for (const n of produced) await copyFile(join(inRootBuild, n), join(outDir, n))
  const artifacts: RebuildArtifact[] = []
  for (const name of produced.filter((n) => /\.u?deb$/.test(n) && !/-dbgsym_/.test(n)).sort()) {
    const path = join(outDir, name)
    artifacts.push({ name, path, ...(await sha256File(path)) })
  }
  const buildinfoName = produced.find((n) => n.endsWith('.buildinfo'))
  return { artifacts, buildinfo: buildinfoName === undefined ? undefined : await readFile(join(outDir, buildinfoName), 'utf8') }
}

/** One command in the build root, its output appended to the build log and streamed as progress. */
async function step(
  job: Job,
  phase: 'buildroot' | 'build',
  title: string,
  argv: string[],
  how: Pick<InRootOptions, 'network' | 'asRoot' | 'env' | 'binds' | 'writableBinds' | 'lock'>
): Promise<Awaited<ReturnType<typeof runInBuildRoot>>> {
  job.log.write(`\n### rbq: ${title} (${how.asRoot ? 'root' : BUILD_USER.name}, network ${how.network ? 'on' : 'off'})\n`)
  const r = await runInBuildRoot(job.root, argv, {
    ...how,
    log: job.log,
    signal: job.signal,
    onLine: (line) => job.progress({ phase, message: title, logLine: line })
  })
  if (r.aborted || r.timedOut) throw job.signal.reason ?? new RbqError('BUILD_TIMEOUT', `${title} did not finish`)
  return r
}

interface Comparison {
  reproduced: boolean
  upstream: UpstreamArtifact[]
  differing: { artifact: RebuildArtifact; upstream: BinaryPackage }[]
  binNmu: { ours: string; archive: string }[] // the archive only has a binNMU of that package
  noUpstream: string[] // our .deb names the archive does not have
  missing: string[] // archive .deb names we did not produce
}

/**
 * Pairs every produced .deb with the archive's file of the same name. `reproduced` needs every
 * pair identical and nothing missing either way. A binNMU in the archive (`+bN`) that we did not
 * rebuild as a binNMU (no changelog entry found) can never match: it is reported as a mismatch
 * tagged `binnmu`, without diffoscope. .udebs compare like .debs.
 */
export function compareWithArchive(artifacts: RebuildArtifact[], binaries: BinaryPackage[]): Comparison {
  const byName = new Map(binaries.map((b) => [basename(b.filename), b]))
  const used = new Set<BinaryPackage>()
  const c: Comparison = { reproduced: false, upstream: [], differing: [], binNmu: [], noUpstream: [], missing: [] }
  for (const a of artifacts) {
    const [pkg, , archPart] = a.name.split('_')
    const arch = archPart?.replace(/\.u?deb$/, '')
    const same = byName.get(a.name)
    const nmu = binaries.find((b) => b.name === pkg && b.architecture === arch && b.binNmu !== undefined)
    const up = same ?? nmu
    if (up === undefined) {
      c.noUpstream.push(a.name)
      continue
    }
    used.add(up)
    c.upstream.push({ name: basename(up.filename), sha256: up.sha256 })
    if (same === undefined) c.binNmu.push({ ours: a.name, archive: basename(up.filename) })
    else if (same.sha256 !== a.sha256) c.differing.push({ artifact: a, upstream: same })
  }
  // Archive files we did not produce are part of what we compared with (SPEC.md §5: an
  // artifact on one side only is a mismatch).
  const missing = binaries.filter((b) => !used.has(b))
  c.missing = missing.map((b) => basename(b.filename))
  for (const b of missing) c.upstream.push({ name: basename(b.filename), sha256: b.sha256 })
  c.reproduced = c.differing.length === 0 && c.binNmu.length === 0 && c.noUpstream.length === 0 && c.missing.length === 0
  return c
}

async function explainMismatch(job: Job, cmp: Comparison): Promise<{ tags: string[]; summary: string }> {
  const tags = new Set<string>()
  const lines: string[] = []
  if (cmp.differing.length > 0) lines.push(`differs from the archive: ${cmp.differing.map((d) => d.artifact.name).join(', ')}`)
  if (cmp.binNmu.length > 0) {
    tags.add('binnmu')
    const pairs = cmp.binNmu.map((b) => `${b.ours} (archive: ${b.archive})`).join(', ')
    lines.push(`the archive has binNMUs (an extra changelog entry, built later), not rebuilt as such: ${pairs}`)
  }
  if (cmp.noUpstream.length > 0) {
    tags.add('no-upstream')
    lines.push(`not in the archive: ${cmp.noUpstream.join(', ')}`)
    for (const w of job.archive.warnings) lines.push(`warning: ${w}`)
  }
  if (cmp.missing.length > 0) {
    tags.add('missing-artifact')
    lines.push(`in the archive but not produced: ${cmp.missing.join(', ')}`)
  }
  const useDiffoscope = job.opts.diffoscope !== false && cmp.differing.length > 0 && (await diffoscopeAvailable())
  for (const { artifact, upstream } of useDiffoscope ? cmp.differing : []) {
    job.progress({ phase: 'diff', message: `diffoscope ${artifact.name}` })
    const official = await job.archive.fetchPoolFile(upstream.filename, upstream, job.signal, upstream.mirror)
    const report = await runDiffoscope(official, artifact.path, join(job.dir, `diffoscope-${artifact.name}.txt`), {
      timeoutMs: job.opts.diffoscopeTimeoutMs ?? 600_000,
      signal: job.signal
    })
    for (const t of report.tags) tags.add(t)
    lines.push(report.text === undefined || report.text === '' ? `${artifact.name}: ${report.note}` : summarizeDiff(artifact.name, report.text))
  }
  if (cmp.differing.length > 0 && !useDiffoscope) lines.push('(diffoscope not run: not installed or disabled)')
  if (job.notes.length > 0) lines.push(`environment ${job.official === undefined ? 'current' : 'faithful'}: ${job.notes.join('; ')}`)
  return { tags: [...tags].sort(), summary: lines.join('\n').slice(0, 4000) }
}

/** A package that does not build: deterministic, attested as `failed` with the .dsc as subject. */
async function failed(job: Job, startedOn: Date, reason: string, env: Record<string, string> | undefined): Promise<RebuildResult> {
  job.progress({ phase: 'done', message: `failed: ${reason}` })
  const { src } = job
  // Inputs: a source-type .buildinfo of the build root as it was (dsc + Installed-Build-Depends).
  let buildinfo = `Source: ${src.name}\nVersion: ${src.version}\n`
  if (env !== undefined) {
    const r = await runInBuildRoot(job.root, ['/bin/sh', '-c', 'cd "$1" && dpkg-genbuildinfo --build=source -O', 'sh', job.buildDir], {
      network: false,
      asRoot: false,
      env,
      signal: job.signal,
      timeoutMs: 120_000
    })
    if (r.code === 0) buildinfo = r.stdout.toString('utf8')
  }
  await writeFile(join(job.dir, 'inputs.buildinfo'), buildinfo) // what the inputs digest was computed from
  job.log.write(`\n### rbq: failed: ${reason}\n`)
  const dscPath = job.sourceFiles.get(src.dsc.name) as string
  return {
    package: debianSourcePurl(src.name, src.version),
    outcome: 'failed',
    artifacts: [{ name: src.dsc.name, sha256: src.dsc.sha256, size: src.dsc.size, path: dscPath }],
    upstream: [],
    inputs: { sha256: inputsDigest(buildinfo, src.files), materials: materials(job) },
    backend: 'debian',
    environment: job.official === undefined ? 'current' : 'faithful',
    ...(job.notes.length === 0 ? {} : { environmentNote: job.notes.join('; ') }),
    startedOn,
    finishedOn: new Date(),
    log: await logInfo(job),
    failure: { reason, transient: false, code: 'BUILD_FAILED' }
  }
}

function materials(job: Job): Material[] {
  const files = job.src.files.map((f) => ({ uri: job.archive.poolUrl(`${job.src.directory}/${f.name}`, job.src.mirror), sha256: f.sha256 }))
  return job.official === undefined ? files : [...files, { uri: job.official.uri, sha256: job.official.sha256 }]
}

/** Closes the build log (nothing is written after this) and digests it; a write error rejects. */
function logInfo(job: Job): Promise<{ path: string; sha256: string; size: number }> {
  return job.buildLog.close()
}

function lastLines(text: string, n = 3): string {
  return text.trim().split('\n').slice(-n).join(' | ').slice(0, 500)
}

function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
}
