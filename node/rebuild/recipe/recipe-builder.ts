/**
 * The recipe builder: runs a parsed recipe in a fresh temp dir and reports a `built` result.
 *
 *   fetch    every source copied (or downloaded) into the build dir, then its SHA-256 checked
 *   build    the command, in its own process group, normalised env, umask 022, no network where
 *            the OS allows it (network-isolation.ts); the whole group is killed at the timeout
 *   outputs  files matching the output globs (never outside the build dir), hashed and kept
 *
 * Throws RbqError when there is nothing to attest: CHECKSUM_MISMATCH (a source is not what the
 * recipe pins), DOWNLOAD_FAILED (transient), FILE_NOT_FOUND (a local source is missing),
 * RECIPE_INVALID (an output escapes the build dir), BUILDER_UNAVAILABLE (isolation required but
 * missing); an external abort rethrows the signal's reason. A command that fails, hangs past its
 * timeout or produces no matching file is an outcome, `failed` (BUILD_FAILED / BUILD_TIMEOUT).
 */
import { constants as fsConstants, createWriteStream } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readdir, realpath, rename, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, dirname, join, relative, sep } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import { RbqError, type ErrorCode } from '../../../protocol/index.js'
import { sha256File } from '../../../common/files.js'
import { openBuildLog, type BuildLog } from '../build-log.js'
import { SOFTWARE } from '../../../common/version.js'
import { run } from '../../../common/subprocess.js'
import type { OnProgress, RebuildArtifact, RebuildResult } from '../rebuild-types.js'
import { proxyDispatcher } from '../../../common/http-proxy.js'
import { detectNetworkIsolation, type NetworkIsolation } from './network-isolation.js'
import { recipeInputsDigest, type Recipe, type RecipeSource } from './recipe.js'

/** PATH of every build unless the recipe sets its own (then it is part of the inputs digest). */
export const RECIPE_DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

export interface RecipeBuildOptions {
  /** Kept after the build: `build.log` and `out/<artifact>` (created if missing). */
  outDir: string
  /** Where the temp build dir is made (default os.tmpdir()). */
  workRoot?: string
  /** Cache of http(s) sources by SHA-256 (default: none, every build downloads). */
  sourceCacheDir?: string
  /** Refuse to build without network isolation instead of building with a warning (default false). */
  requireNetworkIsolation?: boolean
  /** Keep the temp build dir for inspection (default false). */
  keepWorkDir?: boolean
  signal?: AbortSignal
  onProgress?: OnProgress
}

export interface RecipeRebuildResult extends RebuildResult {
  /** How the build was cut off from the network ('none': it was not). */
  networkIsolation: NetworkIsolation['mode']
}

export async function rebuildRecipe(recipe: Recipe, opts: RecipeBuildOptions): Promise<RecipeRebuildResult> {
  const startedOn = new Date()
  const progress: OnProgress = opts.onProgress ?? (() => {})
  const isolation = await detectNetworkIsolation()
  if (isolation.mode === 'none') {
    if (opts.requireNetworkIsolation === true) throw new RbqError('BUILDER_UNAVAILABLE', `recipe builds must be isolated from the network, but ${isolation.detail}`)
    progress({ phase: 'build', message: `warning: ${isolation.detail}` })
  }
  const tmp = await mkdtemp(join(opts.workRoot ?? tmpdir(), 'rbq-recipe-'))
  const work = join(tmp, 'build')
  await mkdir(work)
  await mkdir(join(opts.outDir, 'out'), { recursive: true })
  const buildLog = openBuildLog(join(opts.outDir, 'build.log'))
  const log = buildLog.stream
  try {
    for (const [i, s] of recipe.sources.entries()) await fetchSource(s, i, work, opts, progress)
    if (recipe.sources.length > 0) progress({ phase: 'verify', message: `${recipe.sources.length} source(s) match their pinned SHA-256` })
    if (opts.signal?.aborted === true) throw opts.signal.reason

    const env = buildEnv(recipe, work)
    log.write(
      `### rbq ${SOFTWARE}: recipe ${recipe.origin.name} (${recipe.purl})\n` +
        `### network isolation: ${isolation.mode} (${isolation.detail})\n` +
        `### command: ${JSON.stringify(recipe.command)}\n` +
        `### env: ${JSON.stringify(env)}\n### timeout: ${recipe.timeoutSeconds} s\n`
    )
    const running = `running ${recipe.command.join(' ').slice(0, 120)}`
    progress({ phase: 'build', message: running })
    // sh sets the umask, then execs the recipe's argv unchanged ("$@"): no second round of quoting.
    const argv = [...isolation.prefix, '/bin/sh', '-c', 'umask 022 && exec "$@"', 'rbq-build', ...recipe.command]
    const r = await run(argv[0] as string, argv.slice(1), {
      cwd: work,
      env,
      timeoutMs: recipe.timeoutSeconds * 1000,
      signal: opts.signal,
      captureStdout: false,
      log,
      onLine: (line) => progress({ phase: 'build', message: running, logLine: line })
    })
    if (r.aborted) throw opts.signal?.reason ?? new RbqError('BUILD_TIMEOUT', 'build cancelled')
    const fail = (code: ErrorCode, reason: string) => failed(recipe, isolation, startedOn, buildLog, code, reason, progress)
    if (r.timedOut) return await fail('BUILD_TIMEOUT', `killed after the recipe's timeout of ${recipe.timeoutSeconds} s`)
    if (r.code !== 0) {
      const tail = r.stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 500)
      return await fail('BUILD_FAILED', `command exited with ${r.code ?? r.signal}${tail === '' ? '' : `: ${tail}`}`)
    }

    progress({ phase: 'compare', message: 'collecting outputs' })
    const found = await collectOutputs(recipe, work)
    if (typeof found === 'string') return await fail('BUILD_FAILED', found)
    const artifacts: RebuildArtifact[] = []
    // Copies (symlinked outputs) before moves, so a link's target is still there; then hash the kept file.
    for (const o of [...found].sort((a, b) => Number(b.linked) - Number(a.linked))) {
      const path = join(opts.outDir, 'out', o.name)
      await keep(o, path)
      artifacts.push({ name: o.name, path, ...(await sha256File(path)) })
    }
    artifacts.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    log.write(`\n### rbq: built ${artifacts.map((a) => `${a.name} sha256:${a.sha256}`).join(', ')}\n`)
    progress({ phase: 'done', message: `built ${artifacts.length} artifact(s)` })
    return {
      ...common(recipe, isolation, startedOn),
      outcome: 'built',
      artifacts,
      finishedOn: new Date(),
      log: await buildLog.close() // a write error (e.g. ENOSPC) rejects: the scheduler retries later
    }
  } finally {
    await buildLog.close().catch(() => {}) // already reported, or an error is on its way
    if (opts.keepWorkDir !== true) await removeTree(tmp)
  }
}

/** Removes the temp build dir even when the build left read-only directories in it. */
async function removeTree(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true })
  } catch {
    await run('chmod', ['-R', 'u+rwX', dir], { timeoutMs: 60_000 }).catch(() => undefined)
    await rm(dir, { recursive: true, force: true }).catch(() => undefined)
  }
}

function common(recipe: Recipe, isolation: NetworkIsolation, startedOn: Date) {
  return {
    package: recipe.purl,
    upstream: [],
    inputs: { sha256: recipeInputsDigest(recipe), materials: recipe.sources.map((s) => ({ uri: s.uri, sha256: s.sha256 })) },
    backend: 'recipe' as const,
    startedOn,
    networkIsolation: isolation.mode
  }
}

/** The build did not finish: attested as `failed` with the recipe file as subject. */
async function failed(
  recipe: Recipe,
  isolation: NetworkIsolation,
  startedOn: Date,
  buildLog: BuildLog,
  code: ErrorCode,
  reason: string,
  progress: OnProgress
): Promise<RecipeRebuildResult> {
  buildLog.stream.write(`\n### rbq: failed (${code}): ${reason}\n`)
  progress({ phase: 'done', message: `failed: ${reason}` })
  const o = recipe.origin
  return {
    ...common(recipe, isolation, startedOn),
    outcome: 'failed',
    artifacts: [{ name: o.name, sha256: o.sha256, size: o.size, path: o.path ?? '' }],
    finishedOn: new Date(),
    log: await buildLog.close(),
    failure: { reason, transient: false, code }
  }
}

/** Only what the issue allows through, plus the recipe's own env (which is in the inputs digest). */
export function buildEnv(recipe: Recipe, work: string): Record<string, string> {
  return {
    PATH: RECIPE_DEFAULT_PATH,
    ...recipe.env,
    HOME: work,
    TZ: 'UTC',
    LC_ALL: 'C.UTF-8',
    SOURCE_DATE_EPOCH: String(recipe.sourceDateEpoch)
  }
}

// --- sources -------------------------------------------------------------------------------

/** Puts a source at its dest in the build dir and checks the copy (what the build reads) by digest. */
async function fetchSource(s: RecipeSource, i: number, work: string, opts: RecipeBuildOptions, progress: OnProgress): Promise<void> {
  const dest = join(work, s.dest)
  await mkdir(dirname(dest), { recursive: true })
  const cached = opts.sourceCacheDir === undefined ? undefined : join(opts.sourceCacheDir, s.sha256)
  if (s.location.kind === 'file') {
    progress({ phase: 'fetch', message: `copying ${s.location.path}` })
    try {
      await copyFile(s.location.path, dest, fsConstants.COPYFILE_FICLONE) // a reflink where the file system can
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code === 'ENOENT') throw new RbqError('FILE_NOT_FOUND', `source[${i}]: ${s.location.path} does not exist`, { field: `source[${i}].path`, cause: e })
      throw new RbqError('FILE_UNREADABLE', `source[${i}]: ${s.location.path}: ${(e as Error).message}`, { field: `source[${i}].path`, cause: e })
    }
  } else if (cached !== undefined && (await isFile(cached)) && (await sha256File(cached)).sha256 === s.sha256) {
    progress({ phase: 'fetch', message: `${s.location.url} (cached)` })
    await copyFile(cached, dest)
  } else {
    progress({ phase: 'fetch', message: `downloading ${s.location.url}` })
    await download(s.location.url, dest, opts.signal)
  }
  const got = await sha256File(dest)
  if (got.sha256 !== s.sha256) {
    throw new RbqError('CHECKSUM_MISMATCH', `source[${i}] ${s.uri}: sha256 is ${got.sha256}, the recipe pins ${s.sha256}; refusing to build`, {
      field: `source[${i}].sha256`
    })
  }
  if (s.location.kind === 'http' && cached !== undefined) {
    await mkdir(dirname(cached), { recursive: true })
    await copyFile(dest, `${cached}.part-${process.pid}`)
    await rename(`${cached}.part-${process.pid}`, cached)
  }
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((st) => st.isFile(), () => false)
}

async function download(url: string, dest: string, signal: AbortSignal | undefined): Promise<void> {
  let res: Response
  try {
    res = await fetch(url, { signal, dispatcher: await proxyDispatcher(url) })
  } catch (e) {
    if (signal?.aborted === true) throw signal.reason
    throw new RbqError('DOWNLOAD_FAILED', `cannot fetch ${url}: ${(e as Error).message}`, { cause: e })
  }
  if (!res.ok || res.body === null) {
    await res.body?.cancel()
    throw new RbqError('DOWNLOAD_FAILED', `cannot fetch ${url}: HTTP ${res.status}`)
  }
  try {
    await pipeline(Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>), createWriteStream(dest), { signal })
  } catch (e) {
    if (signal?.aborted === true) throw signal.reason
    throw new RbqError('DOWNLOAD_FAILED', `cannot fetch ${url}: ${(e as Error).message}`, { cause: e })
  }
}

// --- outputs -------------------------------------------------------------------------------

/**
 * Glob with `*` and `?` (within one path segment) and `**` (any number of whole segments),
 * matched against `/`-separated paths relative to the build dir.
 */
export function globToRegExp(pattern: string): RegExp {
  const parts = pattern.split('/').map((seg, i, all) => {
    if (seg === '**') return i === all.length - 1 ? '.*' : '(?:[^/]+/)*'
    const body = seg.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')
    return i === all.length - 1 ? body : `${body}/`
  })
  return new RegExp(`^${parts.join('')}$`)
}

interface FoundOutput {
  name: string
  path: string
  /** Reached through a symlink: copied, since its target may be another output. */
  linked: boolean
}

/** Moves an output out of the build dir (which is deleted anyway); copies across file systems. */
async function keep(o: FoundOutput, dest: string): Promise<void> {
  if (!o.linked) {
    try {
      await rename(o.path, dest)
      return
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e
    }
  }
  await copyFile(o.path, dest)
}

/**
 * Files of the build dir matching the output globs. Directories are walked without following
 * symlinks; a matching symlink must resolve to a regular file inside the build dir (else
 * RECIPE_INVALID). Returns a reason string when the build produced less than the recipe promised.
 */
async function collectOutputs(recipe: Recipe, work: string): Promise<FoundOutput[] | string> {
  const root = await realpath(work)
  const entries = await walk(root)
  const byName = new Map<string, FoundOutput & { rel: string }>()
  for (const [i, pattern] of recipe.outputs.entries()) {
    const re = globToRegExp(pattern)
    const matches = entries.filter((e) => re.test(e.rel))
    let files = 0
    for (const m of matches) {
      if (m.kind === 'dir') continue
      const path = m.kind === 'symlink' ? await resolveInside(root, m.rel, `outputs[${i}]`) : join(root, m.rel)
      if (path === undefined) continue // a symlink to a directory: not a file output
      files++
      const name = basename(m.rel)
      const other = byName.get(name)
      if (other !== undefined && other.rel !== m.rel) {
        throw new RbqError('RECIPE_INVALID', `outputs[${i}]: "${m.rel}" and "${other.rel}" have the same file name; attestations name artifacts by file name`, {
          field: `outputs[${i}]`
        })
      }
      byName.set(name, { name, path, rel: m.rel, linked: m.kind === 'symlink' })
    }
    if (files === 0) return `outputs[${i}] "${pattern}" matched no file`
  }
  if (byName.size > 64) {
    throw new RbqError('RECIPE_INVALID', `outputs matched ${byName.size} files; an attestation holds at most 64`, { field: 'outputs' })
  }
  return [...byName.values()].map(({ name, path, linked }) => ({ name, path, linked }))
}

async function resolveInside(root: string, rel: string, field: string): Promise<string | undefined> {
  let target: string
  try {
    target = await realpath(join(root, rel))
  } catch {
    throw new RbqError('RECIPE_INVALID', `${field}: "${rel}" is a dangling symlink`, { field })
  }
  const inside = relative(root, target)
  if (inside === '' || inside.startsWith(`..${sep}`) || inside === '..' || inside.startsWith(sep)) {
    throw new RbqError('RECIPE_INVALID', `${field}: "${rel}" is a symlink to ${target}, outside the build dir`, { field })
  }
  const st = await stat(target)
  return st.isFile() ? target : undefined
}

interface Entry {
  rel: string
  kind: 'file' | 'dir' | 'symlink' | 'other'
}

async function walk(root: string): Promise<Entry[]> {
  const out: Entry[] = []
  const visit = async (relDir: string): Promise<void> => {
    for (const d of await readdir(join(root, relDir), { withFileTypes: true })) {
      const rel = relDir === '' ? d.name : `${relDir}/${d.name}`
      const kind = d.isSymbolicLink() ? 'symlink' : d.isDirectory() ? 'dir' : d.isFile() ? 'file' : 'other'
      if (kind === 'other') continue // sockets, fifos, devices are never artifacts
      out.push({ rel, kind })
      if (kind === 'dir') await visit(rel)
    }
  }
  await visit('')
  return out
}
