/**
 * The apt configuration snippet that turns on the install gate.
 *
 * Protocol: `DPkg::Pre-Install-Pkgs` hooks run (through `sh -c`) after apt has downloaded and
 * verified the archives and before dpkg unpacks any of them; a non-zero exit status makes apt
 * abort before dpkg changes anything. `DPkg::Tools::Options::<first word of the command>::Version
 * "3"` asks for protocol version 3 (client/apt/hook-input.ts): apt's configuration, then one line
 * per package with name, versions, architectures and the .deb path, as apt-listbugs and
 * apt-listchanges read it. `dpkg -i` runs no apt hooks: the gate only sees what apt installs.
 *
 * The command starts a *launcher*: a stable path to rbq (the `rbq` on PATH, e.g.
 * /usr/local/bin/rbq from `npm install -g`, or one the admin names), never the node binary and
 * checkout that ran `install`, which move when Node is upgraded or the clone is deleted. When the
 * launcher cannot start (sh's 126/127: missing, not executable, its interpreter gone) the command
 * drains apt's input, says what is wrong and how to fix it, and exits 1: the installation is
 * refused (fail closed) with a reason rather than "returned error code (127)".
 *
 * The file carries a marker line so `uninstall` only ever removes a file `install` wrote.
 */
import { spawnSync } from 'node:child_process'
import { accessSync, constants, promises as fs, statSync } from 'node:fs'
import { delimiter, isAbsolute, join } from 'node:path'
import { RbqError } from '../../protocol/index.js'
import { HOOK_PROTOCOL_VERSION } from './hook-input.js'

export const DEFAULT_APT_CONF_DIR = '/etc/apt/apt.conf.d'
/** 80: after distribution defaults (00-70), before local overrides people put at 99. */
export const APT_CONF_FILE_NAME = '80rbq'
const MARKER = '// rebuild-quorum apt gate: written by `rbq apt-hook install`, removed by `rbq apt-hook uninstall`.'

/** The PATH apt has under systemd (unattended-upgrades, apt-daily-upgrade) and sudo's secure_path. */
export const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

export interface AptHookSettings {
  /** Absolute path of the program apt starts (`rbq`). */
  launcher: string
  /** The gate settings file the hook reads. */
  gateConfig: string
  /** Where the gate is installed, when not the default (named in the uninstall hint). */
  aptConfDir?: string
}

/** Characters apt's config parser cannot carry inside a quoted string, or sh would misread. */
const UNSAFE_RE = /["\\\u0000-\u001f\u007f]/

/** POSIX sh quoting: plain words stay readable, anything else is single-quoted. */
export function shellQuote(arg: string): string {
  if (UNSAFE_RE.test(arg)) {
    throw new RbqError('USAGE', `cannot put ${JSON.stringify(arg)} in an apt configuration string (quotes, backslashes and control characters are not allowed)`)
  }
  if (/^[A-Za-z0-9_/.:=@%+,-]+$/.test(arg)) return arg
  return `'${arg.replace(/'/g, `'\\''`)}'`
}

/** apt keys the protocol version on the command's first word: the launcher must be one plain word. */
const LAUNCHER_RE = /^\/[A-Za-z0-9_/.+@%,:=-]+$/

export function checkLauncherPath(launcher: string): string {
  if (!LAUNCHER_RE.test(launcher)) {
    throw new RbqError('USAGE', `launcher ${JSON.stringify(launcher.slice(0, 200))}: must be an absolute path without spaces or shell characters (apt keys the hook's protocol version on it)`)
  }
  return launcher
}

/** The shell command apt runs. */
export function aptHookCommand(settings: AptHookSettings): string {
  const launcher = checkLauncherPath(settings.launcher)
  const run = [launcher, 'apt-hook', 'run', '--gate-config', settings.gateConfig, ...(settings.aptConfDir === undefined ? [] : ['--apt-conf-dir', settings.aptConfDir])]
  // Inside a single-quoted sh string: a quoted directory would end it.
  const uninstall = uninstallCommand(settings.aptConfDir).includes("'") ? 'rbq apt-hook uninstall --apt-conf-dir DIR' : uninstallCommand(settings.aptConfDir)
  const fix =
    `echo 'rbq: refusing the installation: the apt gate cannot start its launcher' ${launcher} '(exit '$s'): missing, not executable, or its Node.js is gone.' ` +
    `'Fix: install rbq system-wide (sudo npm install -g rebuild-quorum-VERSION.tgz), or point the gate at a working rbq: rbq apt-hook install --launcher PATH;' ` +
    `'or remove the gate: ${uninstall}' >&2`
  return `${run.map(shellQuote).join(' ')}; s=$?; case $s in 126|127) cat >/dev/null; ${fix}; exit 1;; esac; exit $s`
}

export function aptHookConfig(settings: AptHookSettings): string {
  return [
    MARKER,
    `// The gate's settings (mode, per-verdict actions, allowlists): ${settings.gateConfig}`,
    '// apt runs the command after downloading and before dpkg unpacks anything; a non-zero exit',
    '// aborts the installation. `dpkg -i FILE.deb` bypasses apt and this gate: use `apt install ./FILE.deb`.',
    `DPkg::Pre-Install-Pkgs { "${aptHookCommand(settings)}"; };`,
    `// Hook protocol ${HOOK_PROTOCOL_VERSION}: package names, versions, architectures and .deb paths on stdin.`,
    `DPkg::Tools::Options::${settings.launcher}::Version "${HOOK_PROTOCOL_VERSION}";`,
    ''
  ].join('\n')
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return statSync(path).isFile()
  } catch {
    return false
  }
}

/** The first executable `rbq` on `path` (a PATH string), as an absolute path. */
export function findLauncher(path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!isAbsolute(dir)) continue
    const candidate = join(dir, 'rbq')
    if (isExecutableFile(candidate)) return candidate
  }
  return undefined
}

/**
 * Runs `<launcher> --version` the way apt will (the system PATH, no terminal) and returns the
 * version it prints; any failure is an error saying what to fix.
 */
export function checkLauncher(launcher: string): string {
  checkLauncherPath(launcher)
  if (!isExecutableFile(launcher)) throw new RbqError('FILE_NOT_FOUND', `launcher ${launcher} is not an executable file`)
  const r = spawnSync(launcher, ['--version'], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: SYSTEM_PATH, LC_ALL: 'C.UTF-8' } })
  const version = r.stdout?.trim() ?? ''
  if (r.error !== undefined || r.status !== 0 || !/^\d+\.\d+\.\d+\S*$/.test(version)) {
    const lines = (r.stderr ?? '').trim().split('\n')
    // Node's crash output ends with its version: name the error line instead.
    const why = r.error?.message ?? (lines.find((l) => /Error\b/.test(l)) ?? (lines.pop() || `exit status ${r.status ?? r.signal}`))
    throw new RbqError('USAGE', `launcher ${launcher} does not run with the system PATH apt uses (${SYSTEM_PATH}): \`${launcher} --version\` failed: ${why.slice(0, 300)}`)
  }
  return version
}

/** The command that removes the gate installed in `confDir` (hints name it exactly). */
export function uninstallCommand(confDir = DEFAULT_APT_CONF_DIR): string {
  return confDir === DEFAULT_APT_CONF_DIR ? 'rbq apt-hook uninstall' : `rbq apt-hook uninstall --apt-conf-dir ${shellQuote(confDir)}`
}

export function aptConfPath(confDir = DEFAULT_APT_CONF_DIR): string {
  return join(confDir, APT_CONF_FILE_NAME)
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await fs.readFile(path, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new RbqError('FILE_UNREADABLE', `${path}: ${(e as Error).message}`, { cause: e })
  }
}

function isOurs(text: string): boolean {
  return text.startsWith(MARKER)
}

/**
 * Writes (or rewrites) the snippet atomically, mode 0644 like every apt.conf.d file. Refuses
 * to replace a file of the same name that `install` did not write.
 */
export async function installAptHook(settings: AptHookSettings, confDir = DEFAULT_APT_CONF_DIR): Promise<{ path: string; replaced: boolean }> {
  const path = aptConfPath(confDir)
  const existing = await readIfExists(path)
  if (existing !== undefined && !isOurs(existing)) {
    throw new RbqError('FILE_EXISTS', `${path} exists and was not written by rbq; refusing to overwrite it`)
  }
  const text = aptHookConfig(settings)
  try {
    await fs.mkdir(confDir, { recursive: true })
    const tmp = `${path}.rbq-tmp-${process.pid}`
    await fs.writeFile(tmp, text, { mode: 0o644 })
    await fs.chmod(tmp, 0o644) // the umask may have narrowed it; apt runs as root but users read configs
    await fs.rename(tmp, path)
  } catch (e) {
    throw new RbqError('FILE_UNREADABLE', `cannot write ${path}: ${(e as Error).message}`, { cause: e })
  }
  return { path, replaced: existing !== undefined }
}

/** Removes exactly the file `install` wrote. Returns false when it was not installed. */
export async function uninstallAptHook(confDir = DEFAULT_APT_CONF_DIR): Promise<{ path: string; removed: boolean }> {
  const path = aptConfPath(confDir)
  const existing = await readIfExists(path)
  if (existing === undefined) return { path, removed: false }
  if (!isOurs(existing)) throw new RbqError('FILE_EXISTS', `${path} was not written by rbq; refusing to remove it`)
  try {
    await fs.unlink(path)
  } catch (e) {
    throw new RbqError('FILE_UNREADABLE', `cannot remove ${path}: ${(e as Error).message}`, { cause: e })
  }
  return { path, removed: true }
}
