/**
 * A .deb file in hand: its SHA-256 and its identifying control fields, read with
 * `dpkg-deb --field` (dpkg's own parser; we never unpack anything ourselves).
 */
import { RbqError } from '../protocol/index.js'
import { sha256File } from '../common/files.js'
import { parseParagraph } from './deb822.js'
import { run } from '../common/subprocess.js'
import { artifactQueryOf, controlFromParagraph, type BinaryControl } from './binary-package.js'
import type { ArtifactQuery } from '../protocol/api.js'

export interface DebFile {
  path: string
  sha256: string
  size: number
  control: BinaryControl
  query: ArtifactQuery
}

/** dpkg-deb reads only the control member; a few seconds is plenty even for huge packages. */
const DPKG_DEB_TIMEOUT_MS = 30_000

export async function readDebControl(path: string): Promise<BinaryControl> {
  let r
  try {
    r = await run('dpkg-deb', ['--field', path], { timeoutMs: DPKG_DEB_TIMEOUT_MS, env: { ...process.env, LC_ALL: 'C.UTF-8' } })
  } catch (e) {
    throw new RbqError('BUILDER_UNAVAILABLE', `cannot run dpkg-deb (is dpkg installed?): ${(e as Error).message}`, { cause: e })
  }
  if (r.code !== 0) {
    const why = r.stderr.trim().split('\n').pop() ?? `exit code ${r.code}`
    throw new RbqError('FILE_UNREADABLE', `${path} is not a readable Debian package: ${why}`)
  }
  let control: BinaryControl | undefined
  try {
    control = controlFromParagraph(parseParagraph(r.stdout.toString('utf8').trim()))
  } catch (e) {
    throw new RbqError('FILE_UNREADABLE', `${path}: malformed control fields: ${(e as Error).message}`, { cause: e })
  }
  if (control === undefined) throw new RbqError('FILE_UNREADABLE', `${path}: control lacks Package, Version or Architecture`)
  return control
}

export async function inspectDeb(path: string): Promise<DebFile> {
  const [{ sha256, size }, control] = await Promise.all([sha256File(path), readDebControl(path)])
  return { path, sha256, size, control, query: artifactQueryOf(control, sha256) }
}

