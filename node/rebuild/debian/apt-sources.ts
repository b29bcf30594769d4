/**
 * Reads where the Debian archive is from the host's apt sources, read-only: both the one-line
 * `.list` format and deb822 `.sources` files (sources.list(5)). We never write apt configuration.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { RbqError } from '../../../protocol/errors.js'
import { parseDeb822 } from '../../../debian/deb822.js'

export interface AptSourceEntry {
  types: string[] // deb, deb-src
  uris: string[]
  suites: string[]
  components: string[]
  enabled: boolean
}

/** The archive a builder reads: `<mirror>/dists/<suite>/...`, `<mirror>/pool/...`. */
export interface ArchiveLocation {
  mirror: string // no trailing slash, e.g. http://deb.debian.org/debian
  suite: string // e.g. bookworm
}

/** One-line format: `deb [opt=val ...] uri suite [component...]`. */
export function parseSourcesList(text: string): AptSourceEntry[] {
  const out: AptSourceEntry[] = []
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').replace(/\[[^\]]*\]/, ' ').trim()
    if (line === '') continue
    const [type, uri, suite, ...components] = line.split(/\s+/)
    if (type === undefined || uri === undefined || suite === undefined) continue
    if (type !== 'deb' && type !== 'deb-src') continue
    out.push({ types: [type], uris: [uri], suites: [suite], components, enabled: true })
  }
  return out
}

/** deb822 format: paragraphs with Types/URIs/Suites/Components/Enabled. */
export function parseDeb822Sources(text: string): AptSourceEntry[] {
  const words = (v: string | undefined): string[] => (v ?? '').split(/\s+/).filter((w) => w !== '')
  return parseDeb822(text).map((p) => ({
    types: words(p.get('Types')),
    uris: words(p.get('URIs')),
    suites: words(p.get('Suites')),
    components: words(p.get('Components')),
    enabled: (p.first('Enabled') ?? 'yes').toLowerCase() !== 'no'
  }))
}

/**
 * Picks the Debian main archive: an enabled entry whose URI path ends in `/debian` (so not
 * debian-security or debian-debug) with the `main` component; its first suite without a `-`
 * (the release itself, not `-updates`/`-backports`).
 */
export function pickDebianArchive(entries: AptSourceEntry[]): ArchiveLocation | undefined {
  for (const e of entries) {
    if (!e.enabled || !e.components.includes('main')) continue
    if (!e.types.some((t) => t === 'deb' || t === 'deb-src')) continue
    const uri = e.uris.find((u) => /^https?:\/\/[^/]+(\/.*)?\/debian\/?$/.test(u))
    const suite = e.suites.find((s) => !s.includes('-') && !s.endsWith('/'))
    if (uri !== undefined && suite !== undefined) return { mirror: uri.replace(/\/+$/, ''), suite }
  }
  return undefined
}

/**
 * The suites that complete a release, from the same apt sources: `<suite>-updates` and
 * `<suite>-security` (the latter usually at another mirror path, e.g. .../debian-security).
 * A source version may be published in any of them; backports and proposed-updates are not
 * part of the release and are left out.
 */
export function pickCompanionSuites(entries: AptSourceEntry[], main: ArchiveLocation): ArchiveLocation[] {
  const wanted = [`${main.suite}-updates`, `${main.suite}-security`]
  const out: ArchiveLocation[] = []
  for (const e of entries) {
    if (!e.enabled || !e.components.includes('main') || !e.types.includes('deb')) continue
    for (const suite of e.suites.filter((s) => wanted.includes(s))) {
      const uri = e.uris.find((u) => /^https?:\/\//.test(u))
      if (uri === undefined) continue
      const loc = { mirror: uri.replace(/\/+$/, ''), suite }
      if (!out.some((o) => o.mirror === loc.mirror && o.suite === loc.suite)) out.push(loc)
    }
  }
  return out
}

/** Reads `<etcApt>/sources.list` then `sources.list.d/*.{list,sources}` in apt's (sorted) order. */
export async function readAptSources(etcApt = '/etc/apt'): Promise<AptSourceEntry[]> {
  const entries: AptSourceEntry[] = []
  const main = await readOptional(join(etcApt, 'sources.list'))
  if (main !== undefined) entries.push(...parseSourcesList(main))
  let names: string[] = []
  try {
    names = (await readdir(join(etcApt, 'sources.list.d'))).sort()
  } catch {
    // no sources.list.d: fine
  }
  for (const name of names) {
    const path = join(etcApt, 'sources.list.d', name)
    if (name.endsWith('.list')) entries.push(...parseSourcesList((await readOptional(path)) ?? ''))
    else if (name.endsWith('.sources')) {
      try {
        entries.push(...parseDeb822Sources((await readOptional(path)) ?? ''))
      } catch {
        // apt would refuse a malformed file too; the other files still count
      }
    }
  }
  return entries
}

/** The host's Debian archive, or FEED_ERROR saying how to configure one. */
export async function hostArchiveLocation(etcApt = '/etc/apt'): Promise<ArchiveLocation> {
  const found = pickDebianArchive(await readAptSources(etcApt))
  if (found === undefined) {
    throw new RbqError(
      'FEED_ERROR',
      `no Debian archive (".../debian <suite> main") in ${etcApt}/sources.list{,.d}; pass mirror and suite explicitly`
    )
  }
  return found
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch {
    return undefined
  }
}
