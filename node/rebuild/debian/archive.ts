/**
 * A Debian release as a feed: the main suite (e.g. bookworm) and its companion suites
 * (bookworm-updates, bookworm-security, from the host's apt sources). For each, InRelease is
 * fetched and verified with gpgv against the Debian archive keyring, then Sources and the
 * Packages indexes (main and debian-installer, for .udebs) are checked against the SHA256 list
 * it signs. Everything lives in a cache dir of ours; the host's apt configuration is only read.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join, normalize } from 'node:path'
import { promisify } from 'node:util'
import { gunzip } from 'node:zlib'
import { RbqError } from '../../../protocol/errors.js'
import { pickCompanionSuites, pickDebianArchive, readAptSources, type ArchiveLocation } from './apt-sources.js'
import { parseChecksumList, parseParagraph, type Paragraph } from '../../../debian/deb822.js'
import { downloadVerified, fetchBytes, type Expected } from './download.js'
import { run } from '../../../common/subprocess.js'
import { binNmuSuffix, compareVersions } from '../../../debian/debian-version.js'

export const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg'

export interface ArchiveOptions {
  /** Our own cache (InRelease, indexes, pool files). */
  cacheDir: string
  /** Override the mirror/suite read from the host's apt sources. */
  mirror?: string
  suite?: string
  /**
   * The `<suite>-updates` / `<suite>-security` suites read with the main one. Default: those the
   * host's apt sources list for the main suite's name; `[]` reads the main suite only.
   */
  companions?: ArchiveLocation[]
  /** Binary architecture whose Packages index is read (default: the host's). */
  arch?: string
  /** Where to read the host's apt sources from (default /etc/apt). */
  etcApt?: string
  keyring?: string
  /** A cached InRelease younger than this is reused without asking the mirror (default 1 h). */
  maxAgeMs?: number
  signal?: AbortSignal
}

export interface ReleaseInfo {
  suite: string | undefined
  codename: string | undefined
  date: Date
  validUntil: Date | undefined
  acquireByHash: boolean
  /** path relative to dists/<suite>/ → signed digest */
  sha256: Map<string, Expected>
}

export interface SourceFile {
  name: string
  sha256: string
  size: number
}

export interface SourcePackage {
  name: string
  version: string
  /** Mirror whose pool holds the files (the security archive has its own). */
  mirror: string
  /** Pool directory, e.g. pool/main/b/base-files */
  directory: string
  /** Every file of the source package, the .dsc included, with digests from the signed Sources. */
  files: SourceFile[]
  dsc: SourceFile
}

/** One source package as the archive-wide feed sees it (DebianArchive.allSources). */
export interface SourceSummary {
  name: string
  version: string
  /** Sum of the sizes of its files (.dsc, tarballs, diff). */
  bytes: number
  /** Suite the newest version comes from (e.g. bookworm-security). */
  suite: string
}

export interface BinaryPackage {
  name: string
  version: string
  /** Mirror whose pool holds the file. */
  mirror: string
  architecture: string
  /** Source version it was built from (differs from `version` for binNMUs). */
  sourceVersion: string
  /** `+bN` when this binary is a binNMU, else undefined. */
  binNmu: string | undefined
  /** Pool path, e.g. pool/main/h/hello/hello_2.10-3_amd64.deb (or a .udeb) */
  filename: string
  sha256: string
  size: number
}

/** Debian architecture name of this machine. */
export function hostArch(): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: 'i386', arm: 'armhf', ppc64: 'ppc64el', s390x: 's390x' }
  return map[process.arch] ?? process.arch
}

/** Parses the signed text of an InRelease (or a Release file). */
export function parseRelease(signedText: string): ReleaseInfo {
  const p = parseParagraph(signedText.trim())
  const date = parseDate(p.first('Date'))
  if (date === undefined) throw new RbqError('FEED_ERROR', 'InRelease has no valid Date field')
  const sha256 = new Map<string, Expected>()
  for (const e of parseChecksumList(p.get('SHA256'))) sha256.set(e.name, { sha256: e.hash, size: e.size })
  if (sha256.size === 0) throw new RbqError('FEED_ERROR', 'InRelease has no SHA256 list')
  return {
    suite: p.first('Suite'),
    codename: p.first('Codename'),
    date,
    validUntil: parseDate(p.first('Valid-Until')),
    acquireByHash: (p.first('Acquire-By-Hash') ?? '').toLowerCase() === 'yes',
    sha256
  }
}

function parseDate(v: string | undefined): Date | undefined {
  if (v === undefined) return undefined
  const ms = Date.parse(v)
  return Number.isNaN(ms) ? undefined : new Date(ms)
}

/**
 * Verifies an InRelease file with gpgv and returns the text that is actually signed (gpgv's
 * --output), so unsigned text around the signature can never reach the parser. Like apt, at
 * least one good signature from the keyring is required and no bad one is tolerated.
 */
export async function verifyInRelease(path: string, keyring = DEBIAN_KEYRING, signal?: AbortSignal): Promise<string> {
  try {
    await stat(keyring)
  } catch {
    throw new RbqError('BUILDER_UNAVAILABLE', `archive keyring ${keyring} not found (apt-get install debian-archive-keyring)`)
  }
  let r
  try {
    r = await run('gpgv', ['--status-fd', '2', '--keyring', keyring, '--output', '-', path], { signal, timeoutMs: 60_000 })
  } catch (e) {
    throw new RbqError('BUILDER_UNAVAILABLE', `cannot run gpgv (apt-get install gpgv): ${(e as Error).message}`, { cause: e })
  }
  const status = r.stderr.split('\n').filter((l) => l.startsWith('[GNUPG:] '))
  const good = status.filter((l) => l.startsWith('[GNUPG:] GOODSIG ')).length
  const bad = status.filter((l) => l.startsWith('[GNUPG:] BADSIG ')).length
  if (good === 0 || bad > 0) {
    throw new RbqError('FEED_ERROR', `InRelease signature not valid for ${keyring}: ${status.join('; ') || r.stderr.trim()}`)
  }
  return r.stdout.toString('utf8')
}

/** Decompresses an index by its file name: `.xz` with the xz tool, `.gz` with zlib. */
async function decompress(path: string, signal?: AbortSignal): Promise<Buffer> {
  if (path.endsWith('.gz')) return promisify(gunzip)(await readFile(path))
  if (!path.endsWith('.xz')) return readFile(path)
  let r
  try {
    r = await run('xz', ['-dc', path], { signal, timeoutMs: 120_000 })
  } catch (e) {
    throw new RbqError('BUILDER_UNAVAILABLE', `cannot run xz (apt-get install xz-utils): ${(e as Error).message}`, { cause: e })
  }
  if (r.code !== 0) throw new RbqError('FEED_ERROR', `xz -dc ${path} failed: ${r.stderr.trim()}`)
  return r.stdout
}

/**
 * Raw paragraphs grouped by a key, parsed only when looked up. Backed by the decompressed index
 * text and, per key, the character ranges of its paragraphs: a read-only Map-like view.
 */
export class ParagraphIndex {
  constructor(
    private readonly text: Buffer, // UTF-8
    private readonly ranges: Map<string, number[]> // key → [byte offset, byte length, ...]
  ) {}

  static empty(): ParagraphIndex {
    return new ParagraphIndex(Buffer.alloc(0), new Map())
  }

  get size(): number {
    return this.ranges.size
  }

  has(key: string): boolean {
    return this.ranges.has(key)
  }

  get(key: string): string[] | undefined {
    const r = this.ranges.get(key)
    if (r === undefined) return undefined
    const out: string[] = []
    for (let i = 0; i < r.length; i += 2) out.push(this.text.toString('utf8', r[i] as number, (r[i] as number) + (r[i + 1] as number)))
    return out
  }

  keys(): IterableIterator<string> {
    return this.ranges.keys()
  }

  *entries(): IterableIterator<[string, string[]]> {
    for (const k of this.ranges.keys()) yield [k, this.get(k) as string[]]
  }

  [Symbol.iterator](): IterableIterator<[string, string[]]> {
    return this.entries()
  }

  /** The same paragraphs as splitParagraphs(text.toString()), remembered by byte range. */
  static build(raw: Buffer, keyOf: (raw: string) => string | undefined): ParagraphIndex {
    // latin1: one char per byte, so string offsets are byte offsets; the separators and the
    // keys (package names) are ASCII, paragraphs are decoded as UTF-8 on lookup.
    let bytes = raw
    let text = raw.toString('latin1')
    if (text.includes('\r')) {
      text = text.replace(/\r\n/g, '\n')
      bytes = Buffer.from(text, 'latin1')
    }
    const ranges = new Map<string, number[]>()
    const add = (start: number, end: number) => {
      while (start < end && text.charCodeAt(start) === 10) start++
      while (end > start && text.charCodeAt(end - 1) === 10) end--
      if (start === end) return
      const para = text.slice(start, end)
      if (para.trim() === '' || para.split('\n').every((l) => l.startsWith('#') || l.trim() === '')) return
      const key = keyOf(para)
      if (key === undefined) return
      const list = ranges.get(key)
      if (list === undefined) ranges.set(key, [start, end - start])
      else list.push(start, end - start)
    }
    let from = 0
    for (const m of text.matchAll(/\n[ \t]*\n/g)) {
      add(from, m.index)
      from = m.index + m[0].length
    }
    add(from, text.length)
    return new ParagraphIndex(bytes, ranges)
  }

  /**
   * On-disk form, so a new process opens a parsed index in a fraction of a second instead of
   * decompressing and splitting it again: `<base>.txt` (the decompressed text) and `<base>.json`
   * (the key ranges and the text's sha256, checked on load: a truncated or altered text is
   * rebuilt from the verified compressed index).
   */
  async save(base: string): Promise<void> {
    const textSha256 = createHash('sha256').update(this.text).digest('hex')
    const tmp = `.part-${process.pid}-${randomBytes(4).toString('hex')}`
    await writeFile(base + '.txt' + tmp, this.text)
    await rename(base + '.txt' + tmp, base + '.txt')
    await writeFile(base + '.json' + tmp, JSON.stringify({ format: PARSED_INDEX_FORMAT, textSha256, ranges: [...this.ranges] }))
    await rename(base + '.json' + tmp, base + '.json')
  }

  /** The saved index, or undefined when absent, of another format, or not matching its text. */
  static async load(base: string): Promise<ParagraphIndex | undefined> {
    try {
      const meta = JSON.parse(await readFile(base + '.json', 'utf8')) as { format?: number; textSha256?: string; ranges?: [string, number[]][] }
      if (meta.format !== PARSED_INDEX_FORMAT || !Array.isArray(meta.ranges)) return undefined
      const text = await readFile(base + '.txt')
      if (createHash('sha256').update(text).digest('hex') !== meta.textSha256) return undefined
      return new ParagraphIndex(text, new Map(meta.ranges))
    } catch {
      return undefined
    }
  }
}

const PARSED_INDEX_FORMAT = 2

const sourceKey = (raw: string): string | undefined => /^Package:[ \t]*(\S+)/m.exec(raw)?.[1]
const binarySourceKey = (raw: string): string | undefined => /^Source:[ \t]*(\S+)/m.exec(raw)?.[1] ?? sourceKey(raw)

// Parsed indexes by their signed sha256, shared by every DebianArchive of this process (a
// Packages index is ~50 MB of text: parse it once per test run, not once per build).
const parsedIndexes = new Map<string, Promise<ParagraphIndex>>()
// The main suite's Sources + Packages are ~0.1 GB of text plus their key ranges; the
// debian-installer index and the -updates/-security suites are small next to them.
const MAX_PARSED_INDEXES = 10

/** One signed suite of the release. */
export interface Suite {
  location: ArchiveLocation
  release: ReleaseInfo
}

export class DebianArchive {
  /** The main suite first, then its companions (-updates, -security). */
  readonly suites: Suite[]
  /**
   * Optional indexes that could not be read (e.g. a mirror serving a debian-installer index
   * that does not match the signed digest). They count as empty; builders report these.
   */
  readonly warnings = new Set<string>()

  constructor(
    readonly location: ArchiveLocation,
    readonly arch: string,
    readonly release: ReleaseInfo,
    private readonly cacheDir: string,
    companions: Suite[] = []
  ) {
    this.suites = [{ location, release }, ...companions]
  }

  /** URL of a pool path, e.g. pool/main/b/base-files/base-files_12.4.dsc (default: the main mirror). */
  poolUrl(path: string, mirror = this.location.mirror): string {
    return `${mirror}/${safeRelative(path)}`
  }

  /** Where a pool file is cached locally (content-verified on every use); one tree per mirror. */
  poolCachePath(path: string, mirror = this.location.mirror): string {
    const tree = mirror === this.location.mirror ? 'mirror' : `mirror-${createHash('sha256').update(mirror).digest('hex').slice(0, 12)}`
    return join(this.cacheDir, tree, safeRelative(path))
  }

  /** Downloads (or re-checks the cached copy of) a pool file against its signed digest. */
  async fetchPoolFile(path: string, expected: Expected, signal?: AbortSignal, mirror = this.location.mirror): Promise<string> {
    const local = this.poolCachePath(path, mirror)
    await downloadVerified(this.poolUrl(path, mirror), local, expected, signal)
    return local
  }

  /** The newest version of a source package in any suite of the release (or exactly `version`). */
  async sourcePackage(name: string, version?: string, signal?: AbortSignal): Promise<SourcePackage> {
    const candidates: SourcePackage[] = []
    for (const suite of this.suites) {
      const index = await this.index(suite, 'main/source/Sources', sourceKey, signal, suite !== this.suites[0])
      for (const raw of index.get(name) ?? []) {
        const p = parseParagraph(raw)
        if ((p.first('Extra-Source-Only') ?? 'no') === 'yes') continue // kept only for Built-Using
        if (version !== undefined && p.first('Version') !== version) continue
        candidates.push(toSourcePackage(p, suite.location.mirror))
      }
    }
    // Stable sort: for one version in two suites (a point release), the main suite's entry wins.
    const p = candidates.sort((a, b) => compareVersions(b.version, a.version))[0]
    if (p === undefined) {
      throw new RbqError('FEED_ERROR', `source package ${name}${version === undefined ? '' : ` ${version}`} is not in ${this.describe()}`)
    }
    return p
  }

  /**
   * Every source package of the release (main): the newest version of each name over all
   * suites, with its total size (every file of the source package). Extra-Source-Only entries
   * (kept only for Built-Using) are left out. What the archive-wide feed samples from.
   */
  async allSources(signal?: AbortSignal): Promise<SourceSummary[]> {
    const newest = new Map<string, SourceSummary>()
    for (const suite of this.suites) {
      const index = await this.index(suite, 'main/source/Sources', sourceKey, signal, suite !== this.suites[0])
      for (const [name, raws] of index) {
        for (const raw of raws) {
          if (/^Extra-Source-Only:[ \t]*yes/im.test(raw)) continue
          const version = /^Version:[ \t]*(\S+)/m.exec(raw)?.[1]
          if (version === undefined) continue
          const seen = newest.get(name)
          if (seen !== undefined && compareVersions(version, seen.version) <= 0) continue
          const files = /^Checksums-Sha256:[^\n]*((?:\n[ \t][^\n]*)*)/im.exec(raw)?.[1] ?? ''
          const bytes = files.split('\n').reduce((sum, line) => sum + Number(/^\s+[0-9a-f]{64}\s+(\d+)\s/i.exec(line)?.[1] ?? 0), 0)
          newest.set(name, { name, version, bytes, suite: suite.location.suite })
        }
      }
    }
    return [...newest.values()]
  }

  /** Digest of each suite's signed Sources index: equal digests, equal source lists. */
  sourcesDigests(): string[] {
    return this.suites.map((s) => {
      const e = ['.xz', '.gz'].map((ext) => s.release.sha256.get(`main/source/Sources${ext}`)).find((x) => x !== undefined)
      return `${s.location.mirror} ${s.location.suite} ${e?.sha256 ?? 'none'}`
    })
  }

  /**
   * The binaries built from this exact source version, from every Packages index of every suite
   * (main/binary-<arch> and main/debian-installer/binary-<arch> for .udebs); a file listed in
   * two suites (same pool path) counts once.
   */
  async binaries(src: SourcePackage, signal?: AbortSignal): Promise<BinaryPackage[]> {
    const found = new Map<string, BinaryPackage>()
    for (const suite of this.suites) {
      for (const base of [`main/binary-${this.arch}/Packages`, `main/debian-installer/binary-${this.arch}/Packages`]) {
        const optional = suite !== this.suites[0] || base.includes('debian-installer')
        const index = await this.index(suite, base, binarySourceKey, signal, optional)
        for (const raw of index.get(src.name) ?? []) {
          const b = toBinaryPackage(parseParagraph(raw), src.version, suite.location.mirror)
          if (b.sourceVersion === src.version && !found.has(b.filename)) found.set(b.filename, b)
        }
      }
    }
    return [...found.values()]
  }

  describe(): string {
    const suites = this.suites.map((s) => (s.location.mirror === this.location.mirror ? s.location.suite : `${s.location.mirror} ${s.location.suite}`))
    return `${this.location.mirror} ${suites.join(', ')} main/${this.arch}`
  }

  /**
   * Fetches (or reuses) the .xz or .gz flavour of an index listed in a suite's InRelease, checked
   * by digest. `optional`: an index the suite does not list is empty instead of an error.
   */
  private async index(suite: Suite, base: string, keyOf: (raw: string) => string | undefined, signal: AbortSignal | undefined, optional: boolean): Promise<ParagraphIndex> {
    const { release, location } = suite
    const flavour = ['.xz', '.gz'].find((ext) => release.sha256.has(base + ext))
    if (flavour === undefined) {
      if (optional) return ParagraphIndex.empty()
      throw new RbqError('FEED_ERROR', `${base}.{xz,gz} not listed in InRelease of ${location.mirror} ${location.suite}`)
    }
    if (optional) {
      try {
        return await this.index(suite, base, keyOf, signal, false)
      } catch (e) {
        if (signal?.aborted === true || !(e instanceof RbqError && (e.code === 'DOWNLOAD_FAILED' || e.code === 'CHECKSUM_MISMATCH'))) throw e
        this.warnings.add(`${location.mirror} ${location.suite} ${base}${flavour} not read (${e.message}); counted as empty`)
        return ParagraphIndex.empty()
      }
    }
    const path = base + flavour
    const expected = release.sha256.get(path) as Expected
    const cached = parsedIndexes.get(expected.sha256)
    if (cached !== undefined) return cached
    const load = (async () => {
      // Parsed once per index digest and key, kept next to the compressed index across restarts.
      const parsed = join(this.cacheDir, 'indexes', `${expected.sha256}.${keyOf === sourceKey ? 'by-package' : 'by-source'}`)
      const saved = await ParagraphIndex.load(parsed)
      if (saved !== undefined) return saved
      const local = join(this.cacheDir, 'indexes', `${expected.sha256}${flavour}`)
      const byHash = path.replace(/[^/]+$/, `by-hash/SHA256/${expected.sha256}`)
      const dists = `${location.mirror}/dists/${location.suite}`
      try {
        await downloadVerified(`${dists}/${release.acquireByHash ? byHash : path}`, local, expected, signal)
      } catch (e) {
        // Like apt: a by-hash file a mirror lacks (seen for debian-installer on the security
        // archive) is fetched by its plain name; the signed digest is checked either way.
        if (!(release.acquireByHash && e instanceof RbqError && e.code === 'DOWNLOAD_FAILED')) throw e
        await downloadVerified(`${dists}/${path}`, local, expected, signal)
      }
      const index = ParagraphIndex.build(await decompress(local, signal), keyOf)
      await index.save(parsed).catch(() => undefined) // a cache only: a full disk must not fail the build
      return index
    })()
    parsedIndexes.set(expected.sha256, load)
    load.catch(() => parsedIndexes.delete(expected.sha256))
    while (parsedIndexes.size > MAX_PARSED_INDEXES) parsedIndexes.delete(parsedIndexes.keys().next().value as string)
    return load
  }
}

function toSourcePackage(p: Paragraph, mirror: string): SourcePackage {
  const name = p.first('Package') ?? ''
  const version = p.first('Version') ?? ''
  const directory = p.first('Directory') ?? ''
  const files = parseChecksumList(p.get('Checksums-Sha256')).map((e) => ({ name: e.name, sha256: e.hash, size: e.size }))
  const dsc = files.find((f) => f.name.endsWith('.dsc'))
  if (name === '' || version === '' || directory === '' || dsc === undefined) {
    throw new RbqError('FEED_ERROR', `Sources entry for ${name || '?'} lacks Version, Directory or a .dsc in Checksums-Sha256`)
  }
  return { name, version, mirror, directory, files, dsc }
}

function toBinaryPackage(p: Paragraph, wantedSourceVersion: string, mirror: string): BinaryPackage {
  const version = p.first('Version') ?? ''
  const sourceField = /^\S+\s*\(([^)]+)\)/.exec(p.first('Source') ?? '')
  const sourceVersion = sourceField?.[1] ?? version
  return {
    name: p.first('Package') ?? '',
    version,
    mirror,
    architecture: p.first('Architecture') ?? '',
    sourceVersion,
    binNmu: sourceVersion === wantedSourceVersion ? binNmuSuffix(version, sourceVersion) : undefined,
    filename: p.first('Filename') ?? '',
    sha256: (p.first('SHA256') ?? '').toLowerCase(),
    size: Number(p.first('Size') ?? 'NaN')
  }
}

/** Paths come from signed indexes, but never let one climb out of the mirror or the cache. */
function safeRelative(path: string): string {
  const n = normalize(path)
  if (n.startsWith('/') || n.startsWith('..') || n.split('/').includes('..')) {
    throw new RbqError('FEED_ERROR', `unsafe path in archive index: ${path}`)
  }
  return n
}

/**
 * Opens a release: finds the archive (options, else the host's apt sources) and its companion
 * suites, and for each fetches and verifies InRelease (openSuite).
 */
export async function openArchive(opts: ArchiveOptions): Promise<DebianArchive> {
  const explicit = opts.mirror !== undefined && opts.suite !== undefined
  const entries = explicit && opts.companions !== undefined ? [] : await readAptSources(opts.etcApt)
  const host = explicit ? undefined : pickDebianArchive(entries)
  if (!explicit && host === undefined) {
    throw new RbqError(
      'FEED_ERROR',
      `no Debian archive (".../debian <suite> main") in ${opts.etcApt ?? '/etc/apt'}/sources.list{,.d}; pass mirror and suite explicitly`
    )
  }
  const location: ArchiveLocation = {
    mirror: (opts.mirror ?? host?.mirror ?? '').replace(/\/+$/, ''),
    suite: opts.suite ?? host?.suite ?? ''
  }
  const release = await openSuite(location, opts)
  const companions: Suite[] = []
  for (const c of opts.companions ?? pickCompanionSuites(entries, location)) {
    const loc = { mirror: c.mirror.replace(/\/+$/, ''), suite: c.suite }
    companions.push({ location: loc, release: await openSuite(loc, opts) })
  }
  return new DebianArchive(location, opts.arch ?? hostArch(), release, opts.cacheDir, companions)
}

/**
 * Fetches and verifies one suite's InRelease unless a verified copy younger than `maxAgeMs` is
 * cached. Refuses an InRelease past its Valid-Until or older than the one already cached (rollback).
 */
async function openSuite(location: ArchiveLocation, opts: ArchiveOptions): Promise<ReleaseInfo> {
  const keyring = opts.keyring ?? DEBIAN_KEYRING
  const dir = join(opts.cacheDir, 'archive', archiveKey(location))
  await mkdir(dir, { recursive: true })
  const cachedPath = join(dir, 'InRelease')

  let cached: ReleaseInfo | undefined
  let cachedAge = Infinity
  try {
    cachedAge = Date.now() - (await stat(cachedPath)).mtimeMs
    cached = parseRelease(await verifyInRelease(cachedPath, keyring, opts.signal))
  } catch (e) {
    if (e instanceof RbqError && e.code === 'BUILDER_UNAVAILABLE') throw e
    if (cachedAge !== Infinity) await rm(cachedPath, { force: true }) // unreadable or tampered: refetch
    cached = undefined
  }

  let release = cached
  if (cached === undefined || cachedAge > (opts.maxAgeMs ?? 3_600_000) || isExpired(cached)) {
    const url = `${location.mirror}/dists/${location.suite}/InRelease`
    const fresh = `${cachedPath}.new`
    await writeFile(fresh, await fetchBytes(url, opts.signal))
    try {
      release = parseRelease(await verifyInRelease(fresh, keyring, opts.signal))
      if (cached !== undefined && release.date < cached.date) {
        throw new RbqError('FEED_ERROR', `${url} is older (${release.date.toISOString()}) than the one already seen (${cached.date.toISOString()}): rollback refused`)
      }
    } catch (e) {
      await rm(fresh, { force: true })
      throw e
    }
    await rename(fresh, cachedPath)
  }
  if (release === undefined || isExpired(release)) {
    throw new RbqError('FEED_ERROR', `InRelease of ${location.mirror} ${location.suite} expired on ${release?.validUntil?.toISOString()}`)
  }
  return release
}

function isExpired(r: ReleaseInfo): boolean {
  return r.validUntil !== undefined && r.validUntil.getTime() < Date.now()
}

/** Cache directory name for a mirror+suite: readable, and unique thanks to a digest suffix. */
export function archiveKey(l: ArchiveLocation): string {
  const readable = `${l.mirror.replace(/^https?:\/\//, '')}_${l.suite}`.replace(/[^A-Za-z0-9.+-]+/g, '_')
  const digest = createHash('sha256').update(`${l.mirror} ${l.suite}`).digest('hex').slice(0, 12)
  return `${readable}-${digest}`
}
