/**
 * The `[rebuild]` section of the node config (node/node-config.ts calls rebuildConfigFromToml with
 * the parsed table). Unknown keys and bad values are CONFIG_INVALID naming the field.
 */
import { checkPattern, RbqError } from '../../protocol/index.js'
import { expandPath, TableReader } from '../config-reader.js'
import { DEFAULT_BUILDINFO_SOURCES, DEFAULT_EXACT_REPOSITORIES } from './debian/faithful.js'

export interface RebuildConfig {
  /** Run the rebuild pipeline at all (API rebuild requests need it too). */
  enabled: boolean
  /**
   * Fraction of each feed's selection this node rebuilds (sampler.ts). Unset: each feed's own
   * default — 1 for lists and recipes, 0.01 for the whole archive (feeds.ts ARCHIVE_DEFAULT_SHARE).
   */
  share: number | undefined
  /** Purl scope patterns a package must match to be sampled; empty = all. */
  packages: string[]
  concurrency: number
  maxAttempts: number
  jobTimeoutSeconds: number
  pollIntervalSeconds: number
  /** Directory of *.toml recipes (second feed); undefined = none. */
  recipesDir: string | undefined
  requireNetworkIsolation: boolean
  /** Unix socket of the privileged build helper (`rbq build-helper`); undefined = build in this process. */
  buildHelper: string | undefined
  /**
   * Other nodes' rebuild requests (gossip, node/p2p/demand.ts): `feed` honours those for a
   * package a feed of this node follows (sampled or not), `sample` only those its sample
   * includes, `off` none. At most `maxQueued` such jobs wait at once, and one requesting node
   * gets at most `perRequesterPerHour` honoured.
   */
  demand: { honour: DemandRule; maxQueued: number; perRequesterPerHour: number }
  /**
   * cacheDir: archive indexes, pool files, build root (default `<data>/cache/debian`; shareable).
   * buildinfoSources / exactRepositories: faithful rebuilds (debian/faithful.ts); an empty
   * buildinfoSources turns them off.
   */
  debian: {
    /**
     * `archive`: every source package of the release (main, with -updates/-security);
     * `sources`: the `sources` list; `auto`: the archive when `sources` is empty and this
     * machine can run Debian builds (rbq doctor), else the list.
     */
    follow: DebianFollow
    sources: string[]
    /** Source names (`*`, `?` wildcards) never followed from the archive. */
    exclude: string[]
    /** Source packages larger than this are not followed from the archive (0 = no limit). */
    maxSourceBytes: number
    /** Seconds between cheap InRelease checks; a changed one re-reads the index at once. */
    checkIntervalSeconds: number
    mirror: string | undefined
    suite: string | undefined
    cacheDir: string | undefined
    buildinfoSources: string[]
    exactRepositories: string[]
  }
}

export type DebianFollow = 'auto' | 'archive' | 'sources'
export type DemandRule = 'feed' | 'sample' | 'off'
export const DEFAULT_MAX_SOURCE_MIB = 100

export const DEFAULT_REBUILD_CONFIG_TOML = `[rebuild]
enabled = true
# Fraction (0..1) of each feed's selection this node rebuilds, drawn with a secret per-node seed.
# Unset: 1 for source lists and recipes, 0.01 when following the whole archive.
# share = 0.01
# Purl patterns a package must match to be rebuilt, e.g. ["pkg:deb/debian/lib*"]. Empty: all.
packages = []
# Builds at once; attempts per job (download failures are retried with exponential backoff).
concurrency = 1
max_attempts = 5
job_timeout_seconds = 14400
# Seconds between feed polls.
poll_interval_seconds = 3600
# Directory of *.toml recipes to rebuild (relative to this file). Unset: no recipe feed.
# recipes_dir = "recipes"
# Refuse recipe builds where the network cannot be cut off (default: build, and say so in the log).
require_network_isolation = false
# Build through the privileged build helper (rbq build-helper, its own systemd unit) at this
# Unix socket, so the node itself needs no root. Unset: build in this process (root for Debian).
# build_helper = "/run/rbq/build.sock"
# Other nodes' rebuild requests (rbq rebuild-request --network): "feed" honours those for a package
# a feed of this node follows, sampled or not; "sample" only those in its sample; "off" none.
demand = "feed"
# Requested jobs waiting at most, and honoured per requesting node per hour.
demand_max_queued = 100
demand_per_requester_per_hour = 10

[rebuild.debian]
# "archive": every source package of the release (main; with -updates and -security), sampled
# with share (default 0.01). "sources": the list below. "auto": the archive when the list is
# empty and this machine can run Debian builds (root, mmdebstrap: rbq doctor), else the list.
follow = "auto"
# Source packages followed (newest version of each) when following a list, e.g. ["base-files", "hello"].
sources = []
# Archive: source names never rebuilt (* and ? wildcards), and the largest source package
# taken (MiB, sum of its files; 0 = no limit).
exclude = []
max_source_mib = 100
# Seconds between InRelease checks (a conditional GET; a changed release re-reads the index).
check_interval_seconds = 300
# Archive and suite. Unset: read from this machine's apt sources.
# mirror = "http://deb.debian.org/debian"
# suite = "bookworm"
# Archive indexes, pool files and the ~0.5 GB build root. Unset: <data dir>/cache/debian.
# Nodes on one machine may share one.
# cache_dir = "/var/cache/rbq"
# Faithful rebuilds: where the official .buildinfo of a build is looked for, in order: URL
# templates ({prefix} {source} {version} {arch}; http(s) or file:) or local directories of
# <source>_<version>_<arch>.buildinfo files. [] = always rebuild with today's archive.
# buildinfo_sources = ["https://buildinfos.debian.net/buildinfo-pool/{prefix}/{source}/{source}_{version}_{arch}.buildinfo"]
# apt lines offering the exact versions it lists ({build_date} = its Build-Date, {suite});
# any apt repository works, file: ones too. When a version is missing, the rebuild is "current".
# exact_repositories = ["deb [check-valid-until=no] https://snapshot.debian.org/archive/debian/{build_date}/ unstable main"]
`

/** Reads the `[rebuild]` table; `reader` is node/node-config.ts's reader for that section. */
export function readRebuildConfig(t: TableReader, baseDir: string): RebuildConfig {
  const path = (p: string | undefined) => (p === undefined ? undefined : expandPath(p, baseDir))
  const checkScope = (p: string, field: string) => {
    try {
      checkPattern(p, field)
    } catch (e) {
      throw new RbqError('CONFIG_INVALID', `config ${(e as Error).message}`, { field, cause: e })
    }
  }
  const d = t.section('debian')
  const debian = {
    follow: d.oneOf<DebianFollow>('follow', ['auto', 'archive', 'sources'], 'auto'),
    sources: d.strings('sources', []),
    exclude: d.strings('exclude', [], checkSourceGlob),
    maxSourceBytes: d.int('max_source_mib', DEFAULT_MAX_SOURCE_MIB, 0, 1_000_000) * 2 ** 20,
    checkIntervalSeconds: d.int('check_interval_seconds', 300, 1, 7 * 86_400),
    mirror: d.string('mirror', undefined),
    suite: d.string('suite', undefined),
    cacheDir: path(d.string('cache_dir', undefined)),
    buildinfoSources: d
      .strings('buildinfo_sources', DEFAULT_BUILDINFO_SOURCES, checkBuildinfoSource)
      .map((s) => (/^(https?|file):/.test(s) ? s : expandPath(s, baseDir))),
    exactRepositories: d.strings('exact_repositories', DEFAULT_EXACT_REPOSITORIES, checkAptLine)
  }
  d.done()
  const config: RebuildConfig = {
    enabled: t.bool('enabled', true),
    share: optional(t.number('share', Number.NaN, 0, 1)),
    packages: t.strings('packages', [], checkScope),
    concurrency: t.int('concurrency', 1, 1, 64),
    maxAttempts: t.int('max_attempts', 5, 1, 100),
    jobTimeoutSeconds: t.int('job_timeout_seconds', 14_400, 1, 7 * 86_400),
    pollIntervalSeconds: t.int('poll_interval_seconds', 3600, 1, 7 * 86_400),
    recipesDir: path(t.string('recipes_dir', undefined)),
    requireNetworkIsolation: t.bool('require_network_isolation', false),
    buildHelper: path(t.string('build_helper', undefined)),
    demand: {
      honour: t.oneOf<DemandRule>('demand', ['feed', 'sample', 'off'], 'feed'),
      maxQueued: t.int('demand_max_queued', 100, 0, 100_000),
      perRequesterPerHour: t.int('demand_per_requester_per_hour', 10, 0, 10_000)
    },
    debian
  }
  t.done()
  return config
}

/** A number option read with the fallback NaN: unset. */
function optional(n: number): number | undefined {
  return Number.isNaN(n) ? undefined : n
}

/** A Debian source name, possibly with `*`/`?` wildcards. */
function checkSourceGlob(s: string, field: string): void {
  if (!/^[a-z0-9*?][a-z0-9+.*?-]*$/.test(s)) throw new RbqError('CONFIG_INVALID', `config ${field}: ${JSON.stringify(s)}: expected a source package name (lowercase; * and ? wildcards)`, { field })
}

function checkBuildinfoSource(s: string, field: string): void {
  if (/^[a-z][a-z0-9+.-]*:/.test(s) && !/^(https?|file):/.test(s)) {
    throw new RbqError('CONFIG_INVALID', `config ${field}: ${s}: expected an http(s):// or file: URL template, or a directory`, { field })
  }
  if (/^https?:/.test(s) && !s.includes('{version}')) {
    throw new RbqError('CONFIG_INVALID', `config ${field}: ${s}: a URL template needs {version} (and {source}, {arch})`, { field })
  }
}

/** `deb [options] URI SUITE [COMPONENT...]` (one-line sources.list format). */
function checkAptLine(s: string, field: string): void {
  if (!/^deb\s+(\[[^\]]*\]\s+)?(https?|file):\S+\s+\S+/.test(s.trim()) || s.includes('\n')) {
    throw new RbqError('CONFIG_INVALID', `config ${field}: ${JSON.stringify(s)}: expected an apt line "deb [options] URI SUITE [COMPONENT...]" (http, https or file URI)`, { field })
  }
}

/** The same, from a parsed TOML value (tests, tools). */
export function rebuildConfigFromToml(table: unknown, baseDir: string): RebuildConfig {
  if (table !== undefined && (typeof table !== 'object' || table === null || Array.isArray(table))) {
    throw new RbqError('CONFIG_INVALID', 'config rebuild: expected a table', { field: 'rebuild' })
  }
  return readRebuildConfig(new TableReader((table ?? {}) as Record<string, unknown>, 'rebuild'), baseDir)
}
