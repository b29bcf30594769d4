/**
 * What the Debian builder needs on this machine, checked without changing anything. `rbq doctor`
 * prints the report; tests use it to decide whether the real-archive tests can run.
 */
import { stat } from 'node:fs/promises'
import { DEBIAN_KEYRING } from './archive.js'
import { hasCommand, run } from '../../../common/subprocess.js'

export interface DoctorCheck {
  name: string
  ok: boolean
  /** false: the builder runs without it, with less (e.g. no diffoscope summary). */
  required: boolean
  detail: string
  /** Debian package that provides it, when installing one fixes it. */
  aptPackage?: string
}

export interface DebianDoctorReport {
  backend: 'debian'
  /** Every required check passed. */
  ready: boolean
  checks: DoctorCheck[]
  /** `apt-get install` these for the missing required checks. */
  install: string[]
  /** ...and these for the missing optional ones. */
  suggest: string[]
}

const TOOLS: { cmd: string; pkg: string; required: boolean; why: string }[] = [
  { cmd: 'mmdebstrap', pkg: 'mmdebstrap', required: true, why: 'creates the build root' },
  { cmd: 'gpgv', pkg: 'gpgv', required: true, why: 'verifies InRelease' },
  { cmd: 'xz', pkg: 'xz-utils', required: true, why: 'decompresses the archive indexes' },
  { cmd: 'tar', pkg: 'tar', required: true, why: 'unpacks the cached build root' },
  { cmd: 'chroot', pkg: 'coreutils', required: true, why: 'enters the build root' },
  { cmd: 'unshare', pkg: 'util-linux', required: true, why: 'private mounts, PIDs and no network for builds' },
  { cmd: 'diffoscope', pkg: 'diffoscope-minimal', required: false, why: 'explains mismatches' },
  { cmd: 'readelf', pkg: 'binutils', required: false, why: 'lets diffoscope compare ELF binaries (build-id tags)' },
  // Builds use the build root's own dpkg-dev; a host copy only helps to compare by hand.
  { cmd: 'dpkg-buildpackage', pkg: 'dpkg-dev', required: false, why: 'host copy, for manual baselines only' },
  { cmd: 'dpkg-source', pkg: 'dpkg-dev', required: false, why: 'host copy, for manual baselines only' }
]

export async function debianDoctor(opts: { keyring?: string } = {}): Promise<DebianDoctorReport> {
  const checks: DoctorCheck[] = []
  const isRoot = process.getuid?.() === 0
  checks.push({
    name: 'root',
    ok: isRoot,
    required: true,
    detail: isRoot ? 'running as root' : 'not root: builds need chroot, mount and network namespaces (run the node as root)'
  })
  for (const t of TOOLS) {
    const ok = await hasCommand(t.cmd)
    checks.push({ name: t.cmd, ok, required: t.required, detail: ok ? `found (${t.why})` : `missing: ${t.why}`, aptPackage: t.pkg })
  }
  const keyring = opts.keyring ?? DEBIAN_KEYRING
  const hasKeyring = await stat(keyring).then(() => true, () => false)
  checks.push({ name: 'archive keyring', ok: hasKeyring, required: true, detail: hasKeyring ? keyring : `${keyring} missing`, aptPackage: 'debian-archive-keyring' })
  checks.push(await namespacesCheck(isRoot))

  const missing = (required: boolean): string[] =>
    [...new Set(checks.filter((c) => !c.ok && c.required === required && c.aptPackage !== undefined).map((c) => c.aptPackage as string))]
  return { backend: 'debian', ready: checks.every((c) => c.ok || !c.required), checks, install: missing(true), suggest: missing(false) }
}

/** The exact namespaces a build uses; they can be denied inside containers even to root. */
async function namespacesCheck(isRoot: boolean): Promise<DoctorCheck> {
  const name = 'namespaces'
  if (!isRoot) return { name, ok: false, required: true, detail: 'not checked: needs root' }
  try {
    const r = await run('unshare', ['--mount', '--pid', '--fork', '--net', 'true'], { timeoutMs: 10_000 })
    return r.code === 0
      ? { name, ok: true, required: true, detail: 'mount, PID and network namespaces work' }
      : { name, ok: false, required: true, detail: `unshare --mount --pid --net failed: ${r.stderr.trim()}` }
  } catch (e) {
    return { name, ok: false, required: true, detail: `cannot run unshare: ${(e as Error).message}`, aptPackage: 'util-linux' }
  }
}
