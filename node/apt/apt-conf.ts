/**
 * The apt configuration snippet that turns on the install gate.
 *
 * Protocol: `DPkg::Pre-Install-Pkgs` hooks run (through `sh -c`) after apt has downloaded and
 * verified the archives and before dpkg unpacks any of them. With the default protocol version 1
 * (no `DPkg::Tools::Options::<cmd>::Version` set) apt writes the absolute path of every .deb it
 * is about to install or upgrade to the hook's stdin, one per line; a non-zero exit status makes
 * apt abort before dpkg changes anything. Version 1 is all the gate needs: it judges files, not
 * transitions (removals need no verdict).
 *
 * The file carries a marker line so `uninstall` only ever removes a file `install` wrote.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { RbqError } from '../../protocol/index.js'

export const DEFAULT_APT_CONF_DIR = '/etc/apt/apt.conf.d'
/** 80: after distribution defaults (00-70), before local overrides people put at 99. */
export const APT_CONF_FILE_NAME = '80rbq'
const MARKER = '// rebuild-quorum apt gate: written by `rbq apt-hook install`, removed by `rbq apt-hook uninstall`.'

export interface AptHookSettings {
  /** argv that starts `rbq` (absolute node binary and script, or the rbq bin path). */
  rbq: readonly string[]
  /** Print refusals but let the installation go ahead. */
  warnOnly: boolean
  /** Extra arguments passed to `rbq apt-hook run` (e.g. `--api URL`, `--data DIR`). */
  runArgs?: readonly string[]
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

/** The shell command apt runs. */
export function aptHookCommand(settings: AptHookSettings): string {
  const argv = [...settings.rbq, 'apt-hook', 'run', ...(settings.warnOnly ? ['--warn-only'] : []), ...(settings.runArgs ?? [])]
  return argv.map(shellQuote).join(' ')
}

export function aptHookConfig(settings: AptHookSettings): string {
  const mode = settings.warnOnly
    ? '// Mode: warn only. Packages that do not meet the policy are reported, never refused.'
    : '// Mode: enforce. apt aborts when a package does not meet the policy or the node is not running.'
  return [
    MARKER,
    '// apt passes the .deb paths on stdin, one per line (Pre-Install-Pkgs protocol version 1),',
    '// after downloading and before dpkg unpacks anything; a non-zero exit aborts the installation.',
    mode,
    `DPkg::Pre-Install-Pkgs { "${aptHookCommand(settings)}"; };`,
    ''
  ].join('\n')
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
