/**
 * dpkg's status database (/var/lib/dpkg/status): which binary packages are on this system.
 * Read-only; pending entries in /var/lib/dpkg/updates (an interrupted dpkg run) are not merged,
 * so run `dpkg --configure -a` first when dpkg says so.
 */
import { RbqError } from '../protocol/index.js'
import { readFileBounded } from '../common/files.js'
import { parseParagraph, splitParagraphs } from './deb822.js'
import { controlFromParagraph, type BinaryControl } from './binary-package.js'

export const DEFAULT_DPKG_STATUS = '/var/lib/dpkg/status'
/** ~1 KB per installed package: 64 MiB is far beyond any real system. */
const MAX_STATUS_BYTES = 64 * 1024 * 1024

/**
 * The `Status:` want/error/state triple's last word. Files are on disk in every state except
 * `not-installed` and `config-files` (removed, only conffiles left).
 */
const ABSENT_STATES = new Set(['not-installed', 'config-files'])

export interface InstalledPackage extends BinaryControl {
  /** dpkg state, e.g. `installed`, `half-configured`. */
  state: string
}

export interface DpkgStatus {
  installed: InstalledPackage[]
  /** Removed packages whose conffiles remain (`rc` in dpkg -l): nothing to verify. */
  configFilesOnly: number
}

export function parseDpkgStatus(text: string, source = DEFAULT_DPKG_STATUS): DpkgStatus {
  const installed: InstalledPackage[] = []
  let configFilesOnly = 0
  for (const raw of splitParagraphs(text)) {
    let p
    try {
      p = parseParagraph(raw)
    } catch (e) {
      throw new RbqError('FILE_UNREADABLE', `${source}: ${(e as Error).message}`, { cause: e })
    }
    const state = (p.first('Status') ?? '').split(/\s+/)[2] ?? ''
    if (state === 'config-files') configFilesOnly++
    if (state === '' || ABSENT_STATES.has(state)) continue
    const control = controlFromParagraph(p)
    if (control === undefined) throw new RbqError('FILE_UNREADABLE', `${source}: an entry in state ${state} lacks Package, Version or Architecture`)
    installed.push({ ...control, state })
  }
  installed.sort((a, b) => (a.package < b.package ? -1 : a.package > b.package ? 1 : a.architecture < b.architecture ? -1 : 1))
  return { installed, configFilesOnly }
}

export async function readDpkgStatus(path = DEFAULT_DPKG_STATUS): Promise<DpkgStatus> {
  const bytes = await readFileBounded(path, MAX_STATUS_BYTES, 'dpkg status file')
  return parseDpkgStatus(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'), path)
}
