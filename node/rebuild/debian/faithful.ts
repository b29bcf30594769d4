/**
 * Faithful rebuilds: the environment an official Debian build recorded in its .buildinfo
 * (Installed-Build-Depends at exact versions, Build-Path, Environment, Build-Architecture,
 * Binary-Only-Changes for binNMUs), as Reproducible Builds rebuilders (debrebuild, rebuilderd)
 * use it. This module finds and reads the official .buildinfo and checks it is the archive's
 * build; builder.ts installs the versions in the build root and checks them with dpkg-query.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { RbqError } from '../../../protocol/errors.js'
import type { BinaryPackage, SourcePackage } from './archive.js'
import { proxyDispatcher } from '../../../common/http-proxy.js'
import { parseChecksumList, parseParagraph, stripClearsign } from '../../../debian/deb822.js'
import { versionWithoutEpoch } from '../../../debian/debian-version.js'

/** The public Debian buildinfo service (one .buildinfo per official build, by source). */
export const DEFAULT_BUILDINFO_SOURCES = ['https://buildinfos.debian.net/buildinfo-pool/{prefix}/{source}/{source}_{version}_{arch}.buildinfo']

/**
 * apt source lines that hold exact old versions: the public snapshot service, as it was when
 * the official build ran ({build_date}); unstable, where most builds happen, then the release.
 */
export const DEFAULT_EXACT_REPOSITORIES = [
  'deb [check-valid-until=no] https://snapshot.debian.org/archive/debian/{build_date}/ unstable main',
  'deb [check-valid-until=no] https://snapshot.debian.org/archive/debian/{build_date}/ {suite} main'
]

export interface FaithfulConfig {
  /**
   * Where official .buildinfo files are looked for, in order. Either a template (http(s):// or
   * file: URL, or an absolute path) with {prefix} {source} {version} {arch}, or a local
   * directory holding `<source>_<version>_<arch>.buildinfo` files. Empty: never faithful.
   */
  buildinfoSources: string[]
  /** apt source lines for exact versions; {build_date} (YYYYMMDDTHHMMSSZ) and {suite} are filled in. */
  repositories: string[]
  /** Per .buildinfo download (default 15 s): an unreachable service must not hold a build up. */
  fetchTimeoutMs?: number
}

export interface InstalledPackage {
  name: string
  /** Architecture qualifier as written (`libc6:amd64`), if any. */
  arch: string | undefined
  version: string
}

export interface OfficialBuildinfo {
  /** Public URI (http), or the file name for a local file: no local paths in statements. */
  uri: string
  sha256: string
  text: string
  source: string
  version: string
  architectures: string[]
  buildArchitecture: string | undefined
  buildPath: string | undefined
  buildDate: Date | undefined
  installed: InstalledPackage[]
  environment: Record<string, string>
  binaryOnlyChanges: string | undefined
  outputs: { name: string; sha256: string; size: number }[]
}

/** Variables the build's own setup owns; never taken from a .buildinfo. */
const RESERVED_ENV = new Set(['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'PWD'])

/** `{prefix}` of Debian's pool layout: `libh` for libhello, `h` for hello. */
export function poolPrefix(source: string): string {
  return source.startsWith('lib') && source.length > 3 ? source.slice(0, 4) : source.slice(0, 1)
}

/** Parses a .buildinfo (clearsigned or not). FEED_ERROR when it is not one. */
export function parseBuildinfo(text: string, uri: string): OfficialBuildinfo {
  const p = parseParagraph(stripClearsign(text).trim())
  const source = (p.first('Source') ?? '').split(/\s+/)[0] ?? ''
  const version = p.first('Version') ?? ''
  if (source === '' || version === '') throw new RbqError('FEED_ERROR', `${uri}: not a .buildinfo (no Source or Version)`)
  const installed: InstalledPackage[] = []
  for (const item of (p.get('Installed-Build-Depends') ?? '').split(',')) {
    const t = item.trim()
    if (t === '') continue
    const m = /^([a-z0-9][a-z0-9+.-]*)(?::([a-z0-9-]+))?\s*\(\s*=\s*([^)\s]+)\s*\)$/.exec(t)
    if (m === null) throw new RbqError('FEED_ERROR', `${uri}: Installed-Build-Depends entry not of the form "name (= version)": ${t}`)
    installed.push({ name: m[1] as string, arch: m[2], version: m[3] as string })
  }
  const environment: Record<string, string> = {}
  for (const line of (p.get('Environment') ?? '').split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*$/.exec(line)
    if (m !== null && !RESERVED_ENV.has(m[1] as string)) environment[m[1] as string] = (m[2] as string).replace(/\\(.)/g, '$1')
  }
  const date = Date.parse(p.first('Build-Date') ?? '')
  const boc = p.get('Binary-Only-Changes')
  return {
    uri,
    sha256: createHash('sha256').update(text, 'utf8').digest('hex'),
    text,
    source,
    version,
    architectures: (p.first('Architecture') ?? '').split(/\s+/).filter((a) => a !== ''),
    buildArchitecture: p.first('Build-Architecture'),
    buildPath: p.first('Build-Path'),
    buildDate: Number.isNaN(date) ? undefined : new Date(date),
    installed,
    environment,
    binaryOnlyChanges: boc === undefined ? undefined : multiline(boc),
    outputs: parseChecksumList(p.get('Checksums-Sha256')).map((e) => ({ name: e.name, sha256: e.hash, size: e.size }))
  }
}

/** A deb822 multi-line value (first line empty, ` .` for blank lines) as plain text. */
function multiline(value: string): string {
  return value
    .split('\n')
    .slice(1)
    .map((l) => (l.slice(1) === '.' ? '' : l.slice(1)))
    .join('\n')
}

/**
 * Looks for the official .buildinfo of `src` built on `arch` (then the arch-all build), binNMU
 * versions first. Returns the first one found, or undefined with the reasons in `notes`;
 * never throws for an unreachable service (a faithful rebuild is best effort).
 */
export async function findOfficialBuildinfo(
  src: SourcePackage,
  binaries: BinaryPackage[],
  arch: string,
  config: FaithfulConfig,
  notes: string[],
  signal?: AbortSignal
): Promise<OfficialBuildinfo | undefined> {
  const base = versionWithoutEpoch(src.version)
  const nmus = [...new Set(binaries.map((b) => b.binNmu).filter((s): s is string => s !== undefined))].sort().reverse()
  const versions = [...nmus.map((s) => base + s), base]
  const unreachable = new Set<string>()
  for (const where of config.buildinfoSources) {
    for (const version of versions) {
      for (const a of [arch, 'all']) {
        const vars: Record<string, string> = { prefix: poolPrefix(src.name), source: src.name, version, arch: a }
        const name = `${src.name}_${version}_${a}.buildinfo`
        const target = where.includes('{') ? where.replace(/\{(prefix|source|version|arch)\}/g, (_, k: string) => vars[k] as string) : join(where, name)
        if (/^https?:\/\//.test(target)) {
          const host = new URL(target).host
          if (unreachable.has(host)) continue
          const got = await fetchText(target, config.fetchTimeoutMs ?? 15_000, signal)
          if (got.text !== undefined) return parseBuildinfo(got.text, target)
          if (got.unreachable) {
            unreachable.add(host)
            notes.push(`${host} unreachable (${got.why}): no official .buildinfo from it`)
          }
          continue
        }
        const path = target.startsWith('file:') ? decodeURIComponent(new URL(target).pathname) : target
        const text = await readFile(path, 'utf8').catch(() => undefined)
        if (text !== undefined) return parseBuildinfo(text, basename(path))
      }
    }
  }
  notes.push(`no official .buildinfo for ${src.name} ${versions.join(' / ')} in ${config.buildinfoSources.length} source(s)`)
  return undefined
}

async function fetchText(url: string, timeoutMs: number, signal?: AbortSignal): Promise<{ text?: string; unreachable: boolean; why?: string }> {
  const timeout = AbortSignal.timeout(timeoutMs)
  try {
    const res = await fetch(url, { signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]), dispatcher: await proxyDispatcher(url) })
    if (res.ok) return { text: await res.text(), unreachable: false }
    await res.body?.cancel()
    return { unreachable: res.status >= 500, why: `HTTP ${res.status}` }
  } catch (e) {
    if (signal?.aborted === true) throw signal.reason
    const cause = (e as { cause?: { code?: string; message?: string } }).cause
    return { unreachable: true, why: timeout.aborted ? `no answer in ${timeoutMs} ms` : (cause?.code ?? cause?.message ?? (e as Error).message) }
  }
}

/**
 * Why this .buildinfo cannot be the archive's build of `src`, or undefined when it is: the
 * source and version must match and every .deb/.udeb it lists that the archive publishes must
 * have the archive's digest (dbgsym packages live in the debug archive and are skipped). This
 * binds an unsigned download to the signed Packages index.
 */
export function officialMismatch(bi: OfficialBuildinfo, src: SourcePackage, binaries: BinaryPackage[], arch: string): string | undefined {
  const base = versionWithoutEpoch(src.version)
  const v = versionWithoutEpoch(bi.version)
  if (bi.source !== src.name || !(v === base || (v.startsWith(base) && /^\+b\d+$/.test(v.slice(base.length))))) {
    return `${bi.uri} is for ${bi.source} ${bi.version}, not ${src.name} ${src.version}`
  }
  if (bi.buildArchitecture !== undefined && bi.buildArchitecture !== arch) return `${bi.uri} was built on ${bi.buildArchitecture}, this builder is ${arch}`
  const byName = new Map(binaries.map((b) => [basename(b.filename), b]))
  let matched = 0
  for (const o of bi.outputs.filter((x) => /\.u?deb$/.test(x.name) && !/-dbgsym_/.test(x.name))) {
    const b = byName.get(o.name)
    if (b === undefined) continue
    if (b.sha256 !== o.sha256) return `${bi.uri} lists ${o.name} with sha256 ${o.sha256}, the archive publishes ${b.sha256}: not the archive's build`
    matched++
  }
  return matched === 0 ? `${bi.uri} lists none of the archive's files for ${src.name} ${src.version}` : undefined
}

/** The repositories' apt lines with {build_date} and {suite} filled in. */
export function exactRepositoryLines(config: FaithfulConfig, bi: OfficialBuildinfo, suite: string): string[] {
  const date = (bi.buildDate ?? new Date()).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
  return config.repositories.map((l) => l.replace(/\{build_date\}/g, date).replace(/\{suite\}/g, suite))
}

/** Local directories of `file:` apt lines (bind-mounted read-only into the build root). */
export function fileRepositoryDirs(lines: string[]): string[] {
  const dirs: string[] = []
  for (const line of lines) {
    const uri = line.replace(/\[[^\]]*\]/, ' ').trim().split(/\s+/)[1]
    if (uri?.startsWith('file:') === true) dirs.push(decodeURIComponent(uri.slice('file:'.length).replace(/^\/\/(?=\/)/, '')))
  }
  return dirs
}

/** Which package(s) are not at their listed version, from `dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\n'`. */
export function versionDifferences(installed: InstalledPackage[], dpkgQuery: string): string[] {
  const have = new Map<string, string>()
  for (const line of dpkgQuery.split('\n')) {
    const [name, version, status] = line.trim().split(/\s+/)
    if (name !== undefined && version !== undefined && status?.startsWith('ii') === true) have.set(name, version)
  }
  const out: string[] = []
  for (const p of installed) {
    const got = have.get(p.name)
    if (got !== p.version) out.push(`${p.name} ${p.version} (${got === undefined ? 'not installed' : `have ${got}`})`)
  }
  return out
}
