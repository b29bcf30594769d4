/**
 * Feeds: where the packages to rebuild come from. A feed lists entries (purl + what to build)
 * and resolves an explicit request for one purl.
 *   DebianFeed      source packages of the archive (signed indexes, debian/archive.ts), by name
 *   RecipeDirFeed   every *.toml recipe of a directory
 */
import { readdir } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { parsePurl, RbqError } from '../../protocol/index.js'
import { errorFields, silentLogger, type Logger } from '../logger.js'
import { openArchive, type ArchiveOptions, type DebianArchive } from './debian/archive.js'
import { debianSourcePurl } from './debian/builder.js'
import { loadRecipe } from './recipe/recipe.js'
import type { JobTarget } from './scheduler.js'

export interface FeedEntry {
  purl: string
  target: JobTarget
}

export interface RebuildFeed {
  readonly name: string
  /** The feed's current selection; entries that cannot be read are logged and left out. */
  entries(signal?: AbortSignal): Promise<FeedEntry[]>
  /** What to build for an explicitly requested purl, when this feed can build it. */
  resolve(purl: string, signal?: AbortSignal): Promise<FeedEntry | undefined>
  /**
   * Whether a job for `target` still belongs to what this feed follows by configuration (its
   * source names, its directory). Feed jobs persist across restarts; those of a package no
   * longer followed are dropped instead of being built.
   */
  follows(target: JobTarget): boolean
}

/**
 * The Debian source a purl names, `pkg:deb/debian/NAME[@VERSION][?arch=source]`, or undefined
 * for any other purl. Without a version, the builder and the feed take the newest in the suite
 * (DebianArchive.sourcePackage): `rbq rebuild` and `rbq rebuild-request` accept the same purls.
 */
export function debianSourceOfPurl(purl: string): { source: string; version?: string } | undefined {
  const p = parsePurl(purl)
  if (p.type !== 'deb' || p.namespace !== 'debian' || (p.qualifiers.arch !== undefined && p.qualifiers.arch !== 'source')) return undefined
  if (Object.keys(p.qualifiers).some((q) => q !== 'arch')) return undefined
  return { source: p.name, ...(p.version === undefined ? {} : { version: p.version }) }
}

export interface DebianFeedInit extends Pick<ArchiveOptions, 'mirror' | 'suite' | 'arch' | 'keyring' | 'etcApt'> {
  cacheDir: string
  /** Source package names followed (newest version in the suite). */
  sources: string[]
}

/**
 * The Debian archive (mirror and suite from the host's apt sources unless configured), read
 * through verified InRelease → Sources. Follows the configured source packages: each poll
 * yields their newest version, so a new upload becomes a new purl and a new job.
 */
export class DebianFeed implements RebuildFeed {
  readonly name = 'debian'
  private readonly logger: Logger

  constructor(
    private readonly init: DebianFeedInit,
    components: { logger?: Logger } = {}
  ) {
    this.logger = components.logger ?? silentLogger()
  }

  open(signal?: AbortSignal): Promise<DebianArchive> {
    const { sources: _sources, ...opts } = this.init
    return openArchive({ ...opts, ...(signal === undefined ? {} : { signal }) })
  }

  async entries(signal?: AbortSignal): Promise<FeedEntry[]> {
    if (this.init.sources.length === 0) return []
    const archive = await this.open(signal)
    const out: FeedEntry[] = []
    for (const name of this.init.sources) {
      try {
        const src = await archive.sourcePackage(name, undefined, signal)
        out.push({ purl: debianSourcePurl(src.name, src.version), target: { backend: 'debian', source: src.name, version: src.version } })
      } catch (e) {
        if (signal?.aborted === true) throw e
        this.logger.warn({ source: name, ...errorFields(e) }, 'debian feed: source package skipped')
      }
    }
    return out
  }

  /**
   * Any `pkg:deb/debian/NAME[@VERSION][?arch=source]`: without a version, the newest in the suite
   * (read from the archive now, so the job names the version it builds); with one, the builder
   * checks it exists.
   */
  async resolve(purl: string, signal?: AbortSignal): Promise<FeedEntry | undefined> {
    const wanted = debianSourceOfPurl(purl)
    if (wanted === undefined) return undefined
    const version = wanted.version ?? (await (await this.open(signal)).sourcePackage(wanted.source, undefined, signal)).version
    return { purl: debianSourcePurl(wanted.source, version), target: { backend: 'debian', source: wanted.source, version } }
  }

  follows(target: JobTarget): boolean {
    return target.backend === 'debian' && this.init.sources.includes(target.source)
  }
}

/** Every `*.toml` of a directory, read on each poll (so edits are picked up). */
export class RecipeDirFeed implements RebuildFeed {
  readonly name = 'recipes'
  private readonly dir: string
  private readonly logger: Logger

  constructor(dir: string, components: { logger?: Logger } = {}) {
    this.dir = resolve(dir)
    this.logger = components.logger ?? silentLogger()
  }

  async entries(): Promise<FeedEntry[]> {
    let names: string[]
    try {
      names = (await readdir(this.dir)).filter((n) => n.endsWith('.toml')).sort()
    } catch (e) {
      throw new RbqError('FEED_ERROR', `recipe directory ${this.dir}: ${(e as Error).message}`, { cause: e })
    }
    const byPurl = new Map<string, FeedEntry>()
    for (const name of names) {
      const path = join(this.dir, name)
      try {
        const recipe = await loadRecipe(path)
        const seen = byPurl.get(recipe.purl)
        if (seen !== undefined) {
          this.logger.warn({ recipe: path, purl: recipe.purl, kept: (seen.target as { recipe: string }).recipe }, 'recipe feed: two recipes build the same purl; keeping the first')
          continue
        }
        byPurl.set(recipe.purl, { purl: recipe.purl, target: { backend: 'recipe', recipe: path, sha256: recipe.origin.sha256 } })
      } catch (e) {
        this.logger.warn({ recipe: path, ...errorFields(e) }, 'recipe feed: recipe skipped')
      }
    }
    return [...byPurl.values()]
  }

  async resolve(purl: string): Promise<FeedEntry | undefined> {
    return (await this.entries()).find((e) => e.purl === purl)
  }

  follows(target: JobTarget): boolean {
    return target.backend === 'recipe' && dirname(resolve(target.recipe)) === this.dir
  }
}
