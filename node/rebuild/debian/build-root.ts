/**
 * The isolated build root: a buildd-variant chroot of the suite made once by mmdebstrap, kept
 * as a tarball in our cache. Warm path (default): the tarball is unpacked once into a cached
 * base root, and each build sees an overlay of it (plus a cached layer holding its installed
 * build dependencies) with a writable layer of its own; the overlay is mounted inside each
 * command's private mount namespace, so it dies with the command. Cold path: the tarball is
 * unpacked afresh for the build. Commands run through `unshare` (private mount and PID
 * namespaces, optionally no network) and `chroot`, so mounts vanish and every process dies with
 * the namespace.
 */
import type { WriteStream } from 'node:fs'
import { createHash, randomBytes } from 'node:crypto'
import { chmod, chown, lstat, mkdir, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { RbqError } from '../../../protocol/errors.js'
import type { OnProgress } from '../rebuild-types.js'
import { archiveKey, DEBIAN_KEYRING } from './archive.js'
import type { ArchiveLocation } from './apt-sources.js'
import { run, type RunResult } from '../../../common/subprocess.js'

/** The unprivileged user builds run as (created in the build root). */
export const BUILD_USER = { name: 'rbq', uid: 1000, gid: 1000, home: '/nonexistent' } as const

export interface BuildRootOptions {
  cacheDir: string
  location: ArchiveLocation
  arch: string
  /** A tarball older than this is recreated (default 7 days) so toolchains follow point releases. */
  maxAgeMs?: number
  keyring?: string
  signal?: AbortSignal
  timeoutMs?: number
  onProgress?: OnProgress
}

const creating = new Map<string, Promise<string>>()

export function buildRootTarball(cacheDir: string, location: ArchiveLocation, arch: string): string {
  return join(cacheDir, 'buildroot', `${archiveKey(location)}-${arch}.tar`)
}

/** Path of an up-to-date build root tarball, creating it with mmdebstrap when needed. */
export async function ensureBuildRoot(opts: BuildRootOptions): Promise<string> {
  const tarball = buildRootTarball(opts.cacheDir, opts.location, opts.arch)
  try {
    const age = Date.now() - (await stat(tarball)).mtimeMs
    if (age < (opts.maxAgeMs ?? 7 * 86_400_000)) return tarball
  } catch {
    // not there yet
  }
  const pending = creating.get(tarball)
  if (pending !== undefined) return pending // one mmdebstrap per tarball in this process
  const job = createBuildRoot(tarball, opts).finally(() => creating.delete(tarball))
  creating.set(tarball, job)
  return job
}

async function createBuildRoot(tarball: string, opts: BuildRootOptions): Promise<string> {
  requireRoot()
  await mkdir(join(opts.cacheDir, 'buildroot'), { recursive: true })
  const tmp = `${tarball}.part-${process.pid}.tar`
  const { name, uid, gid, home } = BUILD_USER
  const args = [
    '--mode=root',
    '--variant=buildd', // Essential + build-essential, like the buildds' chroots
    `--arch=${opts.arch}`,
    '--include=fakeroot,debian-archive-keyring', // dpkg-buildpackage -rfakeroot; apt inside verifies the archive
    '--skip=cleanup/apt/lists', // lets each build's `apt-get update` be a cheap revalidation
    `--keyring=${opts.keyring ?? DEBIAN_KEYRING}`,
    `--customize-hook=chroot "$1" groupadd --gid ${gid} ${name} && chroot "$1" useradd --uid ${uid} --gid ${gid} --home-dir ${home} --no-create-home --shell /bin/sh ${name}`,
    opts.location.suite,
    tmp,
    opts.location.mirror
  ]
  opts.onProgress?.({ phase: 'buildroot', message: `creating build root with mmdebstrap ${opts.location.suite} ${opts.arch}` })
  let r: RunResult
  try {
    r = await run('mmdebstrap', args, {
      signal: opts.signal,
      timeoutMs: opts.timeoutMs ?? 1_800_000,
      captureStdout: false,
      onLine: (line) => opts.onProgress?.({ phase: 'buildroot', message: 'mmdebstrap', logLine: line })
    })
  } catch (e) {
    throw new RbqError('BUILDER_UNAVAILABLE', `cannot run mmdebstrap (apt-get install mmdebstrap): ${(e as Error).message}`, { cause: e })
  }
  if (r.code !== 0) {
    await rm(tmp, { force: true })
    if (r.timedOut) throw new RbqError('BUILD_TIMEOUT', 'mmdebstrap did not finish in time')
    if (r.aborted) throw new RbqError('BUILD_TIMEOUT', 'mmdebstrap was cancelled')
    // mmdebstrap mostly fails for network reasons (mirror unreachable): let the job retry
    throw new RbqError('DOWNLOAD_FAILED', `mmdebstrap failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`)
  }
  await rename(tmp, tarball)
  return tarball
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new RbqError('BUILDER_UNAVAILABLE', 'the Debian builder must run as root (it uses chroot, mount and network namespaces)')
  }
}

/** Unpacks the build root tarball into `dir` (owners and device nodes preserved: we are root). */
export async function unpackBuildRoot(tarball: string, dir: string, signal?: AbortSignal): Promise<void> {
  await mkdir(dir, { recursive: true })
  const r = await run('tar', ['--numeric-owner', '-xpf', tarball, '-C', dir], { signal, timeoutMs: 600_000 })
  if (r.code !== 0) {
    if (r.aborted || r.timedOut) throw new RbqError('BUILD_TIMEOUT', 'unpacking the build root did not finish')
    throw new RbqError('BUILDER_UNAVAILABLE', `cannot unpack build root ${tarball}: ${r.stderr.trim()}`)
  }
}

/** Removes an unpacked build root without crossing into any file system mounted below it. */
export async function removeBuildRoot(dir: string): Promise<void> {
  await run('rm', ['-rf', '--one-file-system', dir], { timeoutMs: 600_000 })
}

/**
 * A build root as commands see it. Plain: an unpacked directory at `mountpoint`. Overlay:
 * `lowers` (top first, read-only, shared between builds) under this build's own `upper`,
 * mounted at `mountpoint` inside each command's mount namespace only (on the host,
 * `mountpoint` stays an empty directory).
 */
export interface BuildRoot {
  mountpoint: string
  overlay?: { lowers: string[]; upper: string; work: string }
}

const asRoot = (root: BuildRoot | string): BuildRoot => (typeof root === 'string' ? { mountpoint: root } : root)

/** Host path of `path` (absolute inside the root) to read what the build wrote there. */
export function hostPath(root: BuildRoot, path: string): string {
  return join(root.overlay?.upper ?? root.mountpoint, path)
}

/** Host path of the file a command would see at `path`: the top-most layer holding it (whiteouts aside). */
export async function visiblePath(root: BuildRoot, path: string): Promise<string> {
  const layers = root.overlay === undefined ? [root.mountpoint] : [root.overlay.upper, ...root.overlay.lowers]
  for (const l of layers) if (await exists(join(l, path))) return join(l, path)
  return join(layers[0] as string, path)
}

/**
 * Host path where a file at `path` (inside the root) can be written before a command sees it.
 * Overlay: the parent directories are created in the writable layer with the owner and mode
 * they have in the layers below (an overlay directory takes its metadata from the top layer).
 */
export async function writablePath(root: BuildRoot, path: string): Promise<string> {
  const o = root.overlay
  if (o === undefined) return join(root.mountpoint, path)
  const parts = path.split('/').filter((x) => x !== '')
  for (let i = 1; i < parts.length; i++) {
    const rel = parts.slice(0, i).join('/')
    const up = join(o.upper, rel)
    if (await exists(up)) continue
    let meta = { mode: 0o755, uid: 0, gid: 0 }
    for (const lower of o.lowers) {
      const st = await lstat(join(lower, rel)).catch(() => undefined)
      if (st?.isDirectory() === true) {
        meta = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid }
        break
      }
    }
    await mkdir(up, { mode: meta.mode })
    await chown(up, meta.uid, meta.gid)
    await chmod(up, meta.mode) // mkdir's mode is masked by the umask
  }
  return join(o.upper, ...parts)
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false
  )
}

// ---- warm path: cached base root, dependency layers, shared apt caches ----

/**
 * The tarball unpacked once, next to what is derived from it:
 * `<cache>/buildroot/<tarball name>-<tarball mtime>/` with `root/` (the base, never written to),
 * `layers/<key>/` (installed build dependencies, overlay upper dirs made read-only by use),
 * `apt-lists/` (apt's lists, shared by the apt steps), `tmp/` (writable layers being made).
 * A new tarball (weekly) gives a new directory; superseded ones are removed after 8 days
 * (longer than the longest job timeout).
 */
export interface BaseRoot {
  dir: string
  root: string
  layers: string
  aptLists: string
  /** Downloaded .debs, shared by every base of this cache (apt checks them against its lists). */
  aptArchives: string
  /** flock(1) file serialising the apt steps that use the shared lists and archives. */
  aptLock: string
  tmp: string
}

const unpackingBases = new Map<string, Promise<BaseRoot>>()
const SUPERSEDED_BASE_KEEP_MS = 8 * 86_400_000

export async function ensureBaseRoot(opts: BuildRootOptions): Promise<BaseRoot> {
  const tarball = await ensureBuildRoot(opts)
  const mtime = Math.floor((await stat(tarball)).mtimeMs)
  const dir = `${tarball.replace(/\.tar$/, '')}-${mtime}`
  const base: BaseRoot = {
    dir,
    root: join(dir, 'root'),
    layers: join(dir, 'layers'),
    aptLists: join(dir, 'apt-lists'),
    aptArchives: join(opts.cacheDir, 'apt-archives'),
    aptLock: join(dir, 'apt.lock'),
    tmp: join(dir, 'tmp')
  }
  if (await exists(join(dir, 'ready'))) return base
  const pending = unpackingBases.get(dir)
  if (pending !== undefined) return pending
  const job = (async () => {
    opts.onProgress?.({ phase: 'buildroot', message: `unpacking the base build root once into ${dir}` })
    const part = `${dir}.part-${process.pid}-${randomBytes(4).toString('hex')}`
    try {
      await unpackBuildRoot(tarball, join(part, 'root'), opts.signal)
      // apt's lists start as the base's (a later update only revalidates them)
      const lists = await run('cp', ['-a', join(part, 'root/var/lib/apt/lists'), join(part, 'apt-lists')], { timeoutMs: 600_000 })
      if (lists.code !== 0) throw new RbqError('BUILDER_UNAVAILABLE', `cannot copy apt lists: ${lists.stderr.trim()}`)
      for (const d of ['layers', 'tmp']) await mkdir(join(part, d))
      await writeFile(join(part, 'ready'), `${tarball}\n`)
      await rename(part, dir).catch(async (e: NodeJS.ErrnoException) => {
        if (!(await exists(join(dir, 'ready')))) throw e // else another process made it first
      })
    } finally {
      await rm(part, { recursive: true, force: true })
    }
    await mkdir(join(base.aptArchives, 'partial'), { recursive: true })
    await removeSupersededBases(tarball, dir)
    return base
  })().finally(() => unpackingBases.delete(dir))
  unpackingBases.set(dir, job)
  return job
}

async function removeSupersededBases(tarball: string, current: string): Promise<void> {
  const parent = dirname(tarball)
  const prefix = `${basename(tarball).replace(/\.tar$/, '')}-`
  for (const name of await readdir(parent)) {
    const path = join(parent, name)
    if (!name.startsWith(prefix) || path === current || !/^\d+$/.test(name.slice(prefix.length))) continue
    const st = await stat(path).catch(() => undefined)
    if (st !== undefined && Date.now() - st.mtimeMs > SUPERSEDED_BASE_KEEP_MS) await removeBuildRoot(path)
  }
}

let overlayProbe: Promise<string | undefined> | undefined

/**
 * Whether overlayfs can be mounted here with upper dirs in `scratch` (kernel support, a file
 * system that can be an upper layer). Undefined when it can, else why not. Asked once per process.
 */
export function overlayUnsupported(scratch: string): Promise<string | undefined> {
  overlayProbe ??= (async () => {
    const d = join(scratch, `overlay-probe-${process.pid}`)
    try {
      for (const x of ['l', 'u', 'w', 'm']) await mkdir(join(d, x), { recursive: true })
      const r = await run('unshare', ['--mount', '--propagation', 'private', 'mount', '-t', 'overlay', 'overlay', '-o', `lowerdir=${d}/l,upperdir=${d}/u,workdir=${d}/w`, `${d}/m`], { timeoutMs: 30_000 })
      return r.code === 0 ? undefined : `overlay mount failed: ${r.stderr.trim()}`
    } catch (e) {
      return `overlay mount failed: ${(e as Error).message}`
    } finally {
      await rm(d, { recursive: true, force: true })
    }
  })()
  return overlayProbe
}

/** A fresh, empty writable layer (upper + work dir on one file system) under `parent`. */
export async function newWritableLayer(parent: string): Promise<{ dir: string; upper: string; work: string }> {
  const dir = join(parent, `w-${Date.now()}-${process.pid}-${randomBytes(4).toString('hex')}`)
  await mkdir(join(dir, 'upper'), { recursive: true })
  await mkdir(join(dir, 'work'))
  return { dir, upper: join(dir, 'upper'), work: join(dir, 'work') }
}

const MAX_LAYERS = 32
const layersInUse = new Map<string, number>()

/**
 * The cached dependency layer for `key` (its upper dir, a read-only lower from now on), marked
 * as used for eviction, or undefined. Layout: `layers/<key>/upper` and `layers/<key>/plan`
 * (what apt installed; outside the root, so no build sees it).
 */
export async function useLayer(base: BaseRoot, key: string): Promise<string | undefined> {
  const path = join(base.layers, key)
  const now = new Date()
  if (!(await utimes(join(path, 'plan'), now, now).then(() => true, () => false))) return undefined
  layersInUse.set(path, (layersInUse.get(path) ?? 0) + 1)
  return join(path, 'upper')
}

/** The layer (upper dir from useLayer) is no longer used by this build. */
export function releaseLayer(upper: string): void {
  const path = dirname(upper)
  const n = (layersInUse.get(path) ?? 1) - 1
  if (n <= 0) layersInUse.delete(path)
  else layersInUse.set(path, n)
}

/**
 * Turns a writable layer (from newWritableLayer, after the dependency install; no overlay
 * mounted on it any more) into the cached layer for `key`; when another build made the same
 * one meanwhile, that one is kept (same packages) and ours removed. Then evicts the least
 * recently used layers beyond MAX_LAYERS that no build of this process uses and that were not
 * used in the last hour (a cache shared by two processes relies on that hour).
 */
export async function storeLayer(base: BaseRoot, layer: { dir: string; work: string }, key: string, plan: string[]): Promise<void> {
  const path = join(base.layers, key)
  await rm(layer.work, { recursive: true, force: true })
  await writeFile(join(layer.dir, 'plan'), `${plan.join('\n')}\n`)
  await rename(layer.dir, path).catch(async (e: NodeJS.ErrnoException) => {
    if (!(await exists(join(path, 'plan')))) throw e
    await removeBuildRoot(layer.dir)
  })
  const entries: { path: string; used: number }[] = []
  for (const name of await readdir(base.layers)) {
    const st = await stat(join(base.layers, name, 'plan')).catch(() => undefined)
    entries.push({ path: join(base.layers, name), used: st?.mtimeMs ?? 0 })
  }
  entries.sort((x, y) => y.used - x.used)
  for (const e of entries.slice(MAX_LAYERS)) {
    if (!layersInUse.has(e.path) && Date.now() - e.used > 3_600_000) await removeBuildRoot(e.path)
  }
}

/** Key of a dependency layer: the apt plan (what apt installs/removes, in order) and the apt sources. */
export function layerKey(plan: string[], aptSources: string): string {
  return createHash('sha256').update(JSON.stringify({ format: 1, aptSources, plan })).digest('hex').slice(0, 32)
}

/**
 * The packages `apt-get -s` would install or remove, as `Inst name version arch` / `Remv name`
 * lines in apt's order; the suite labels (which change with point releases) are left out.
 */
export function aptPlan(simulation: string): string[] {
  const plan: string[] = []
  for (const line of simulation.split('\n')) {
    const inst = /^Inst (\S+)(?: \[[^\]]*\])? \((\S+) .*\[([^\]]+)\]\)/.exec(line)
    if (inst !== null) plan.push(`Inst ${inst[1]} ${inst[2]} ${inst[3]}`)
    const remv = /^Remv (\S+)/.exec(line)
    if (remv !== null) plan.push(`Remv ${remv[1]}`)
  }
  return plan
}

export interface InRootOptions {
  /** false: a fresh network namespace with no interfaces up (the build itself). */
  network: boolean
  /** Run as root inside the chroot (installing build deps) or as BUILD_USER (everything else). */
  asRoot: boolean
  env: Record<string, string>
  log?: WriteStream
  onLine?: (line: string) => void
  signal?: AbortSignal
  timeoutMs?: number
  /** Host directories bind-mounted read-only at the same path inside (local `file:` apt repositories). */
  binds?: string[]
  /** Host directories bind-mounted writable at `target` inside (apt's shared lists and .deb cache). */
  writableBinds?: { source: string; target: string }[]
  /** Hold flock(1) on this file while the command runs. */
  lock?: string
}

// Runs inside the new namespaces, before chroot: the overlay (if any), fresh /proc, a private
// devpts and /dev/shm (the root already holds the static nodes null, zero, random, ...), binds.
const MOUNT_AND_CHROOT = `set -e
root=$1; userspec=$2; groups=$3; overlay=$4; nbinds=$5; shift 5
if [ -n "$overlay" ]; then mount -t overlay overlay -o "$overlay" "$root"; fi
while [ "$nbinds" -gt 0 ]; do
  mkdir -p "$root$3"; mount --bind "$2" "$root$3"
  if [ "$1" = ro ]; then mount -o remount,bind,ro "$root$3"; fi
  shift 3; nbinds=$((nbinds - 1))
done
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
mount --bind "$root/dev/pts/ptmx" "$root/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
exec chroot --userspec="$userspec" --groups="$groups" "$root" "$@"`

/** Runs `argv` inside a build root with a clean environment (`env -i`). */
export async function runInBuildRoot(rootOrDir: BuildRoot | string, argv: string[], opts: InRootOptions): Promise<RunResult> {
  const root = asRoot(rootOrDir)
  const ns = ['--mount', '--pid', '--fork', '--kill-child', '--propagation', 'private', ...(opts.network ? [] : ['--net'])]
  const user = opts.asRoot ? { uid: 0, gid: 0 } : BUILD_USER
  const env = Object.entries(opts.env).map(([k, v]) => `${k}=${v}`)
  const binds: string[] = []
  for (const b of opts.binds ?? []) binds.push('ro', checkedPath(b), b)
  for (const b of opts.writableBinds ?? []) binds.push('rw', checkedPath(b.source), checkedPath(b.target))
  const o = root.overlay
  const overlay = o === undefined ? '' : `lowerdir=${o.lowers.map(checkedPath).join(':')},upperdir=${checkedPath(o.upper)},workdir=${checkedPath(o.work)}`
  const cmd = [...ns, '--', '/bin/sh', '-c', MOUNT_AND_CHROOT, 'sh', root.mountpoint, `${user.uid}:${user.gid}`, String(user.gid), overlay, String(binds.length / 3), ...binds, '/usr/bin/env', '-i', ...env, ...argv]
  const how = { log: opts.log, onLine: opts.onLine, signal: opts.signal, timeoutMs: opts.timeoutMs }
  return opts.lock === undefined ? run('unshare', cmd, how) : run('flock', [opts.lock, 'unshare', ...cmd], how)
}

function checkedPath(p: string): string {
  if (!p.startsWith('/') || p.split('/').includes('..') || /[,:]/.test(p)) {
    throw new RbqError('CONFIG_INVALID', `mount path must be absolute, without "..", "," or ":": ${p}`)
  }
  return p
}
