/**
 * Which archive a .deb comes from, the way apt knows it: the file's exact digest is listed in a
 * Packages index apt verified, and that index belongs to a Release file (Origin, Label, Suite,
 * Codename). The gate's `allow_origins` matches these fields with the syntax of
 * unattended-upgrades' Origins-Pattern: `origin=Debian,label=Debian-Security` (every given
 * field must match; short keys o, l, a/suite, n/codename), or a bare word matching Origin or
 * Label. A file no verified index lists by digest has no origin: it is never allowlisted.
 */
import { promises as fs } from 'node:fs'
import { basename, join } from 'node:path'
import { RbqError } from '../../protocol/index.js'
import { binaryKey, lookupIndexedBinaries } from '../../debian/packages-index.js'
import type { BinaryControl } from '../../debian/binary-package.js'

export interface ArchiveOrigin {
  origin?: string
  label?: string
  suite?: string
  codename?: string
  /** The Release or InRelease file these fields come from. */
  release: string
}

const FIELDS = { origin: 'Origin', label: 'Label', suite: 'Suite', codename: 'Codename' } as const
type OriginField = keyof typeof FIELDS
const KEY_ALIASES: Record<string, OriginField> = { origin: 'origin', o: 'origin', label: 'label', l: 'label', suite: 'suite', archive: 'suite', a: 'suite', codename: 'codename', n: 'codename' }

export interface OriginPattern {
  text: string
  /** Undefined: a bare word, matching Origin or Label. */
  fields?: Partial<Record<OriginField, string>>
  bare?: string
}

const VALUE_RE = /^[A-Za-z0-9][A-Za-z0-9 ._~+-]*$/

export function parseOriginPattern(text: string, where: string): OriginPattern {
  const bad = (why: string) => new RbqError('CONFIG_INVALID', `${where}: "${text.slice(0, 80)}" ${why}`)
  if (!text.includes('=')) {
    if (!VALUE_RE.test(text)) throw bad('is not an origin (e.g. "Debian-Security" or "origin=Debian,label=Debian-Security")')
    return { text, bare: text }
  }
  const fields: Partial<Record<OriginField, string>> = {}
  for (const part of text.split(',')) {
    const eq = part.indexOf('=')
    const key = KEY_ALIASES[part.slice(0, eq).trim()]
    const value = part.slice(eq + 1).trim()
    if (eq < 0 || key === undefined) throw bad(`has "${part.slice(0, 40)}": expected origin=, label=, suite= (archive=) or codename= (o, l, a, n)`)
    if (!VALUE_RE.test(value)) throw bad(`has an empty or malformed value for ${key}`)
    if (fields[key] !== undefined) throw bad(`sets ${key} twice`)
    fields[key] = value
  }
  return { text, fields }
}

export function originMatches(pattern: OriginPattern, origin: ArchiveOrigin): boolean {
  if (pattern.bare !== undefined) return origin.origin === pattern.bare || origin.label === pattern.bare
  return Object.entries(pattern.fields ?? {}).every(([k, v]) => origin[k as OriginField] === v)
}

function releaseFields(text: string, release: string): ArchiveOrigin {
  const out: ArchiveOrigin = { release }
  for (const [key, name] of Object.entries(FIELDS) as [OriginField, string][]) {
    const m = new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(text)
    if (m?.[1] !== undefined && m[1].trim() !== '') out[key] = m[1].trim()
  }
  return out
}

/**
 * The Release file of an index in apt's lists dir: the longest `<prefix>_InRelease` (or
 * `_Release`) whose prefix starts the index's name (`host_debian_dists_bookworm_InRelease`
 * owns `host_debian_dists_bookworm_main_binary-amd64_Packages.lz4`; a flat repository's
 * `host_repo_._Release` owns `host_repo_._Packages`).
 */
export function releaseFileOf(indexName: string, releaseNames: readonly string[]): string | undefined {
  let best: { name: string; prefix: string } | undefined
  for (const name of releaseNames) {
    const prefix = name.replace(/_(?:In)?Release$/, '')
    if (!indexName.startsWith(`${prefix}_`)) continue
    const better = best === undefined || prefix.length > best.prefix.length || (prefix.length === best.prefix.length && name.endsWith('_InRelease'))
    if (better) best = { name, prefix }
  }
  return best?.name
}

/** For each file, the archives whose verified index lists its exact digest (one pass over the indexes). */
export async function originsOfFiles(files: readonly { control: BinaryControl; sha256: string }[], listsDir: string): Promise<ArchiveOrigin[][]> {
  if (files.length === 0) return []
  const found = await lookupIndexedBinaries(new Set(files.map((f) => binaryKey(f.control))), { listsDir })
  let names: string[]
  try {
    names = (await fs.readdir(listsDir)).filter((n) => /_(?:In)?Release$/.test(n))
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') names = []
    else throw new RbqError('FILE_UNREADABLE', `${listsDir}: ${(e as Error).message}`, { cause: e })
  }
  const releases = new Map<string, ArchiveOrigin>()
  const originOf = async (release: string): Promise<ArchiveOrigin> => {
    const known = releases.get(release)
    if (known !== undefined) return known
    let text: string
    try {
      text = await fs.readFile(join(listsDir, release), 'utf8')
    } catch (e) {
      throw new RbqError('FILE_UNREADABLE', `${join(listsDir, release)}: ${(e as Error).message}`, { cause: e })
    }
    const origin = releaseFields(text, join(listsDir, release))
    releases.set(release, origin)
    return origin
  }
  return Promise.all(
    files.map(async (f) => {
      const entry = (found.get(binaryKey(f.control)) ?? []).find((e) => e.sha256 === f.sha256)
      const out: ArchiveOrigin[] = []
      for (const index of entry?.indexes ?? (entry === undefined ? [] : [entry.index])) {
        const release = releaseFileOf(basename(index), names)
        if (release !== undefined) out.push(await originOf(release))
      }
      return out
    })
  )
}

/** `Origin/Label (suite)` for messages. */
export function describeOrigin(o: ArchiveOrigin): string {
  const name = [o.origin, o.label].filter((x, i, a) => x !== undefined && a.indexOf(x) === i).join('/')
  return `${name || basename(o.release)}${o.suite === undefined ? '' : ` (${o.suite})`}`
}
