/**
 * What apt writes to a `DPkg::Pre-Install-Pkgs` hook's stdin (apt.conf(5), "Version 2 of this
 * protocol"), parsed strictly: anything that does not fit is an error naming the line, and the
 * gate refuses the installation (it cannot know what it would let through).
 *
 * Version 1 (apt's default): one .deb path per line.
 * Version 3 (what `rbq apt-hook install` asks for, as apt-listbugs and apt-listchanges do):
 *
 *   VERSION 3
 *   <apt configuration, one key=value per line, %-encoded>
 *   <blank line>
 *   <package> <old version> <old arch> <old multi-arch> <direction> <new version> <new arch> <new multi-arch> <action>
 *
 * Versions and architectures are `-` when there is none (a first installation has no old
 * version); direction is `<` (upgrade), `>` (downgrade) or `=`; multi-arch is `same`, `foreign`,
 * `allowed`, `none` (apt's historical spelling) or `no`; the action is `**CONFIGURE**`,
 * `**REMOVE**` or the absolute path of the .deb about to be unpacked. Only unpacks carry a file.
 */
import { join, isAbsolute } from 'node:path'
import { RbqError } from '../../protocol/index.js'

export interface HookAction {
  package: string
  oldVersion: string | null
  oldArchitecture: string | null
  direction: '<' | '>' | '='
  newVersion: string | null
  newArchitecture: string | null
  /** `configure`, `remove`, or `unpack` with the .deb path. */
  action: 'configure' | 'remove' | 'unpack'
  path?: string
}

export interface HookInput {
  version: 1 | 3
  /** The .deb files apt is about to unpack, in apt's order. */
  debs: { path: string; announced?: HookAction }[]
  /** Version 3 only: apt's configuration (last value of each key). */
  config: Map<string, string>
}

/** Versions rbq speaks: 1 (paths) and 3; apt sends the highest it has when asked for more. */
export const HOOK_PROTOCOL_VERSION = 3

const PACKAGE_RE = /^[a-z0-9][a-z0-9+.-]*$/
const VERSION_RE = /^(?:\d+:)?[A-Za-z0-9.+~-]+$/
const ARCH_RE = /^[a-z0-9][a-z0-9-]*$/
const MULTI_ARCH = new Set(['same', 'foreign', 'allowed', 'none', 'no'])
const DIRECTIONS = new Set(['<', '>', '='])

function invalid(line: number, message: string): RbqError {
  return new RbqError('HOOK_INPUT_INVALID', `apt hook input line ${line}: ${message}`)
}

function percentDecode(text: string, line: number): string {
  try {
    return decodeURIComponent(text)
  } catch {
    throw invalid(line, 'malformed %-encoding in the configuration')
  }
}

/** `-` or a version with its architecture (both absent together). */
function versionAndArch(version: string, arch: string, multiArch: string, line: number, which: string): { version: string | null; arch: string | null } {
  if (!MULTI_ARCH.has(multiArch)) throw invalid(line, `${which} multi-arch "${multiArch.slice(0, 20)}" is not same, foreign, allowed, none or no`)
  if (version === '-') {
    if (arch !== '-') throw invalid(line, `${which} architecture "${arch.slice(0, 20)}" without a ${which} version`)
    return { version: null, arch: null }
  }
  if (!VERSION_RE.test(version)) throw invalid(line, `${which} version "${version.slice(0, 40)}" is not a Debian version`)
  if (!ARCH_RE.test(arch)) throw invalid(line, `${which} architecture "${arch.slice(0, 20)}" is not an architecture name`)
  return { version, arch }
}

/** One version-3 package action line (1-based `line` for messages). */
export function parseActionLine(text: string, line: number): HookAction {
  const fields = text.split(' ')
  if (fields.length < 9) throw invalid(line, `expected 9 space-separated fields (package, old version/arch/multi-arch, direction, new version/arch/multi-arch, action), got ${fields.length}`)
  const [pkg, oldV, oldA, oldM, dir, newV, newA, newM] = fields as [string, string, string, string, string, string, string, string]
  // The action is the rest of the line: a file: repository's path may contain spaces.
  const action = fields.slice(8).join(' ')
  if (!PACKAGE_RE.test(pkg)) throw invalid(line, `"${pkg.slice(0, 40)}" is not a package name`)
  if (!DIRECTIONS.has(dir)) throw invalid(line, `direction "${dir.slice(0, 10)}" is not <, > or =`)
  const old = versionAndArch(oldV, oldA, oldM, line, 'old')
  const next = versionAndArch(newV, newA, newM, line, 'new')
  const base = { package: pkg, oldVersion: old.version, oldArchitecture: old.arch, direction: dir as HookAction['direction'], newVersion: next.version, newArchitecture: next.arch }
  if (action === '**CONFIGURE**') return { ...base, action: 'configure' }
  if (action === '**REMOVE**') return { ...base, action: 'remove' }
  if (!isAbsolute(action) || !action.endsWith('.deb')) throw invalid(line, `action "${action.slice(0, 80)}" is neither **CONFIGURE**, **REMOVE** nor the absolute path of a .deb`)
  if (next.version === null) throw invalid(line, `${pkg}: a .deb to unpack without a new version`)
  return { ...base, action: 'unpack', path: action }
}

/**
 * Parses the hook's stdin. Without a `VERSION` line it is version 1 (paths, blank lines
 * ignored); `VERSION 3` is parsed as above; any other version is refused.
 */
export function parseHookInput(text: string): HookInput {
  const lines = text.split('\n')
  if (lines[lines.length - 1] === '') lines.pop()
  const first = lines[0] ?? ''
  if (!first.startsWith('VERSION ')) {
    const paths = lines.filter((l) => l.trim() !== '')
    for (const [i, p] of paths.entries()) {
      if (!isAbsolute(p)) throw invalid(i + 1, `"${p.slice(0, 80)}" is not an absolute .deb path (protocol version 1)`)
    }
    return { version: 1, debs: paths.map((path) => ({ path })), config: new Map() }
  }
  if (first !== `VERSION ${HOOK_PROTOCOL_VERSION}`) {
    throw invalid(1, `apt sent hook protocol "${first.slice(0, 20)}"; rbq apt-hook run speaks versions 1 and 3 (rbq apt-hook install sets DPkg::Tools::Options::<launcher>::Version "3")`)
  }
  const config = new Map<string, string>()
  let i = 1
  for (; i < lines.length && lines[i] !== ''; i++) {
    const l = lines[i] as string
    const eq = l.indexOf('=')
    if (eq <= 0) throw invalid(i + 1, `configuration line "${l.slice(0, 60)}" is not key=value`)
    config.set(percentDecode(l.slice(0, eq), i + 1), percentDecode(l.slice(eq + 1), i + 1))
  }
  if (i >= lines.length) throw invalid(i, 'the configuration section does not end with a blank line')
  const debs: HookInput['debs'] = []
  for (i++; i < lines.length; i++) {
    const action = parseActionLine(lines[i] as string, i + 1)
    if (action.action === 'unpack') debs.push({ path: action.path as string, announced: action })
  }
  return { version: 3, debs, config }
}

/**
 * apt's `FindDir`: a relative Dir::State::lists is under Dir::State, itself under Dir. Where
 * apt keeps the Packages indexes it verified (the throwaway root of a test, a chroot, or
 * /var/lib/apt/lists).
 */
export function aptListsDir(config: ReadonlyMap<string, string>): string | undefined {
  const lists = config.get('Dir::State::lists')
  if (lists === undefined) return undefined
  if (isAbsolute(lists)) return lists
  const state = config.get('Dir::State') ?? 'var/lib/apt/'
  if (isAbsolute(state)) return join(state, lists)
  return join(config.get('Dir') ?? '/', state, lists)
}
