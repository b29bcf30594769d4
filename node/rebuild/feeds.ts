/**
 * Feeds: where the packages to rebuild come from. A feed lists entries (purl + what to build)
 * and resolves an explicit request for one purl.
 *   DebianFeed      source packages of the archive (signed indexes, debian/archive.ts): a list
 *                   of names, or every source package of the release (`follow = "archive"`)
 *   RecipeDirFeed   every *.toml recipe of a directory
 */
import { createHash } from 'node:crypto'
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { parsePurl, RbqError } from '../../protocol/index.js'
import { errorFields, silentLogger, type Logger } from '../../common/logger.js'
import { archiveKey, openArchive, type ArchiveOptions, type DebianArchive } from './debian/archive.js'
import { proxyDispatcher } from '../../common/http-proxy.js'
import { debianSourcePurl } from '../../debian/binary-package.js'
import { loadRecipe } from './recipe/recipe.js'
import type { JobTarget } from './scheduler.js'

export interface FeedEntry {
  purl: string
  target: JobTarget
  /**
   * A version the feed's previous index did not have (a new upload: point release, security
   * update, new package): queued before the rest of the sample.
   */
  upload?: boolean
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
  /**
   * Cheap check whether the feed's source changed since it was last read (Debian: InRelease);
   * the pipeline re-reads the feed when it says so. Absent: only the periodic poll reads it.
   */
  changed?(signal?: AbortSignal): Promise<boolean>
  /** Called once the entries of the last `entries()` are queued: the feed may remember them as seen. */
  commit?(): Promise<void>
  /** The share to sample with when `[rebuild] share` is not set (default 1). */
  readonly defaultShare?: number
}

/** Default `share` of the archive-wide feed (node/rebuild/README.md, "Archive-wide feed"). */
export const ARCHIVE_DEFAULT_SHARE = 0.01

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
  /** `sources`: the names in `sources`; `archive`: every source package of the release (main). */
  follow?: 'sources' | 'archive'
  /** Source package names followed (newest version in the release) when `follow = "sources"`. */
  sources: string[]
  /** Source names (`*` and `?` wildcards) never followed from the archive. */
  exclude?: string[]
  /** Source packages larger than this (sum of their files) are not followed from the archive. */
  maxSourceBytes?: number
  /**
   * Where the versions of the last index read are kept (JSON), so that a version not in it is a
   * new upload, across restarts too. Unset: kept in memory only (the first read finds none new).
   */
  statePath?: string
}

interface DebianFeedState {
  /** sourcesDigests() of the index the versions were read from. */
  digests: string[]
  /** Source name → newest version. */
  versions: Record<string, string>
}

/** `*` any run of characters, `?` one character; everything else literal. */
export function globMatcher(patterns: readonly string[]): (name: string) => boolean {
  if (patterns.length === 0) return () => false
  const escape = (p: string) => p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')
  const re = new RegExp(`^(?:${patterns.map(escape).join('|')})$`)
  return (name) => re.test(name)
}

/**
 * The Debian archive (mirror and suite from the host's apt sources unless configured), read
 * through verified InRelease → Sources, with the -updates/-security suites. Follows either the
 * configured source packages or every source package of the release; each read yields their
 * newest version, so a new upload becomes a new purl (a fresh sampler draw) and a new job, and
 * one whose version the previous read did not have is marked `upload` (queued first).
 */
export class DebianFeed implements RebuildFeed {
  readonly name = 'debian'
  readonly defaultShare: number
  private readonly logger: Logger
  private readonly excluded: (name: string) => boolean
  private state: DebianFeedState | undefined
  private stateLoaded = false
  private pending: DebianFeedState | undefined
  /** Set by changed(): the next read fetches InRelease again instead of trusting the cached one. */
  private refresh = false
  private lastArchive: DebianArchive | undefined

  constructor(
    private readonly init: DebianFeedInit,
    components: { logger?: Logger } = {}
  ) {
    this.logger = components.logger ?? silentLogger()
    this.excluded = globMatcher(init.exclude ?? [])
    this.defaultShare = this.followsArchive ? ARCHIVE_DEFAULT_SHARE : 1
  }

  get followsArchive(): boolean {
    return this.init.follow === 'archive'
  }

  open(signal?: AbortSignal, maxAgeMs?: number): Promise<DebianArchive> {
    const { sources: _s, follow: _f, exclude: _e, maxSourceBytes: _m, statePath: _p, ...opts } = this.init
    return openArchive({ ...opts, ...(signal === undefined ? {} : { signal }), ...(maxAgeMs === undefined ? {} : { maxAgeMs }) })
  }

  async entries(signal?: AbortSignal): Promise<FeedEntry[]> {
    if (!this.followsArchive && this.init.sources.length === 0) return []
    const archive = await this.open(signal, this.refresh ? 0 : undefined)
    this.refresh = false
    this.lastArchive = archive
    const previous = await this.loadState()
    const current: DebianFeedState = { digests: archive.sourcesDigests(), versions: {} }
    const out: FeedEntry[] = []
    const add = (name: string, version: string) => {
      current.versions[name] = version
      const before = previous?.versions[name]
      const upload = previous !== undefined && before !== version
      out.push({ purl: debianSourcePurl(name, version), target: { backend: 'debian', source: name, version }, ...(upload ? { upload } : {}) })
    }
    if (this.followsArchive) {
      for (const s of await archive.allSources(signal)) {
        if (this.excluded(s.name) || s.bytes > (this.init.maxSourceBytes ?? Infinity)) {
          current.versions[s.name] = s.version // seen, so not "new" should the filter change
          continue
        }
        add(s.name, s.version)
      }
    } else {
      for (const name of this.init.sources) {
        try {
          const src = await archive.sourcePackage(name, undefined, signal)
          add(src.name, src.version)
        } catch (e) {
          if (signal?.aborted === true) throw e
          this.logger.warn({ source: name, ...errorFields(e) }, 'debian feed: source package skipped')
        }
      }
    }
    this.pending = current
    return out
  }

  /** Remembers the versions just read as seen (after the pipeline queued them). */
  async commit(): Promise<void> {
    const next = this.pending
    if (next === undefined) return
    this.pending = undefined
    this.state = next
    if (this.init.statePath === undefined) return
    await mkdir(dirname(this.init.statePath), { recursive: true })
    const tmp = `${this.init.statePath}.tmp`
    await writeFile(tmp, JSON.stringify(next))
    await rename(tmp, this.init.statePath)
  }

  /**
   * Whether any suite's InRelease differs from the verified copy in the cache: a conditional GET
   * (If-Modified-Since the cached copy's time; a 304 costs a few hundred bytes), else the SHA-256
   * of the body compared with the cached file's. Before the first read: true.
   */
  async changed(signal?: AbortSignal): Promise<boolean> {
    const archive = this.lastArchive
    if (archive === undefined) return true
    for (const { location } of archive.suites) {
      const cached = join(this.init.cacheDir, 'archive', archiveKey(location), 'InRelease')
      let local: { sha256: string; mtime: Date }
      try {
        local = { sha256: createHash('sha256').update(await readFile(cached)).digest('hex'), mtime: (await stat(cached)).mtime }
      } catch {
        this.refresh = true
        return true
      }
      const url = `${location.mirror}/dists/${location.suite}/InRelease`
      let res: Response
      try {
        res = await fetch(url, { headers: { 'if-modified-since': local.mtime.toUTCString() }, dispatcher: await proxyDispatcher(url), ...(signal === undefined ? {} : { signal }) })
      } catch (e) {
        if (signal?.aborted === true) throw e
        throw new RbqError('DOWNLOAD_FAILED', `cannot fetch ${url}: ${(e as Error).message}`, { cause: e })
      }
      if (res.status === 304) continue
      if (!res.ok) {
        await res.body?.cancel()
        throw new RbqError('DOWNLOAD_FAILED', `cannot fetch ${url}: HTTP ${res.status}`)
      }
      const remote = createHash('sha256').update(Buffer.from(await res.arrayBuffer())).digest('hex')
      if (remote !== local.sha256) {
        this.refresh = true
        return true
      }
    }
    return false
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

  /**
   * Archive: any source not excluded (the size limit is applied when the index is read);
   * list: the listed names.
   */
  follows(target: JobTarget): boolean {
    if (target.backend !== 'debian') return false
    return this.followsArchive ? !this.excluded(target.source) : this.init.sources.includes(target.source)
  }

  private async loadState(): Promise<DebianFeedState | undefined> {
    if (this.stateLoaded || this.init.statePath === undefined) return this.state
    this.stateLoaded = true
    try {
      const parsed = JSON.parse(await readFile(this.init.statePath, 'utf8')) as DebianFeedState
      if (Array.isArray(parsed.digests) && typeof parsed.versions === 'object' && parsed.versions !== null) this.state = parsed
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.warn({ state: this.init.statePath, ...errorFields(e) }, 'debian feed: previous index state unreadable; no version counts as new this time')
    }
    return this.state
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
