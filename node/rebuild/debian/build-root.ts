/**
 * The isolated build root: a buildd-variant chroot of the suite made once by mmdebstrap, kept
 * as a tarball in our cache, and unpacked afresh for every build. Commands run inside it through
 * `unshare` (private mount and PID namespaces, optionally no network) and `chroot`, so mounts
 * vanish and every process dies with the namespace.
 */
import type { WriteStream } from 'node:fs'
import { mkdir, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { RbqError } from '../../../protocol/errors.js'
import type { OnProgress } from '../types.js'
import { archiveKey, DEBIAN_KEYRING } from './archive.js'
import type { ArchiveLocation } from './apt-sources.js'
import { run, type RunResult } from '../../run.js'

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
}

// Runs inside the new namespaces, before chroot: fresh /proc, a private devpts and /dev/shm
// (the tarball already holds the static nodes null, zero, random, ...), then read-only binds.
const MOUNT_AND_CHROOT = `set -e
root=$1; userspec=$2; groups=$3; nbinds=$4; shift 4
while [ "$nbinds" -gt 0 ]; do
  mkdir -p "$root$1"; mount --bind "$1" "$root$1"; mount -o remount,bind,ro "$root$1"
  shift; nbinds=$((nbinds - 1))
done
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
mount --bind "$root/dev/pts/ptmx" "$root/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
exec chroot --userspec="$userspec" --groups="$groups" "$root" "$@"`

/** Runs `argv` inside an unpacked build root with a clean environment (`env -i`). */
export async function runInBuildRoot(root: string, argv: string[], opts: InRootOptions): Promise<RunResult> {
  const ns = ['--mount', '--pid', '--fork', '--kill-child', '--propagation', 'private', ...(opts.network ? [] : ['--net'])]
  const user = opts.asRoot ? { uid: 0, gid: 0 } : BUILD_USER
  const env = Object.entries(opts.env).map(([k, v]) => `${k}=${v}`)
  const binds = opts.binds ?? []
  for (const b of binds) {
    if (!b.startsWith('/') || b.split('/').includes('..')) throw new RbqError('CONFIG_INVALID', `bind mount source must be an absolute path without "..": ${b}`)
  }
  return run(
    'unshare',
    [...ns, '--', '/bin/sh', '-c', MOUNT_AND_CHROOT, 'sh', root, `${user.uid}:${user.gid}`, String(user.gid), String(binds.length), ...binds, '/usr/bin/env', '-i', ...env, ...argv],
    { log: opts.log, onLine: opts.onLine, signal: opts.signal, timeoutMs: opts.timeoutMs }
  )
}
