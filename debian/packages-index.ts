/**
 * The archive digests of binary packages, from the Packages indexes apt already downloaded and
 * verified (/var/lib/apt/lists/*_Packages*: apt checked each against its signed InRelease).
 * Compressed indexes (apt keeps .lz4 by default on Debian, or .gz/.xz/.zst) are read through
 * `apt-helper cat-file`, apt's own decompressor, so every format apt writes is readable.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { RbqError } from '../protocol/index.js'
import { run } from '../common/subprocess.js'
import { isSha256, type BinaryControl } from './binary-package.js'

export const DEFAULT_APT_LISTS = '/var/lib/apt/lists'
const APT_HELPER = '/usr/lib/apt/apt-helper'
const INDEX_NAME_RE = /_Packages(?:\.(?:gz|xz|lz4|zst|bz2|lzma))?$/

export interface IndexedBinary {
  sha256: string
  size: number
  /** Pool path, e.g. pool/main/h/hello/hello_2.10-3_amd64.deb */
  filename: string
  /** Raw `Source:` field, when present. */
  source: string | undefined
  /** The index it came from (the first one read). */
  index: string
  /** Every index listing this very file (same digest): the archives that vouch for it. */
  indexes?: string[]
}

/** `package version arch`: none of the three may contain a space. */
export function binaryKey(c: Pick<BinaryControl, 'package' | 'version' | 'architecture'>): string {
  return `${c.package} ${c.version} ${c.architecture}`
}

export async function listPackagesIndexes(listsDir = DEFAULT_APT_LISTS): Promise<string[]> {
  let names: string[]
  try {
    names = await fs.readdir(listsDir)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw new RbqError('FILE_UNREADABLE', `${listsDir}: ${(e as Error).message}`, { cause: e })
  }
  return names.filter((n) => INDEX_NAME_RE.test(n)).sort().map((n) => join(listsDir, n))
}

export async function readIndexText(path: string, signal?: AbortSignal): Promise<string> {
  if (path.endsWith('_Packages')) {
    try {
      return await fs.readFile(path, 'utf8')
    } catch (e) {
      throw new RbqError('FILE_UNREADABLE', `${path}: ${(e as Error).message}`, { cause: e })
    }
  }
  let r
  try {
    r = await run(APT_HELPER, ['cat-file', path], { timeoutMs: 120_000, ...(signal ? { signal } : {}) })
  } catch (e) {
    throw new RbqError('FILE_UNREADABLE', `cannot decompress ${path}: ${APT_HELPER} is not runnable (${(e as Error).message})`, { cause: e })
  }
  if (r.code !== 0) throw new RbqError('FILE_UNREADABLE', `cannot decompress ${path}: ${r.stderr.trim().split('\n').pop() ?? `exit ${r.code}`}`)
  return r.stdout.toString('utf8')
}

const FIELD_NAMES = ['Package', 'Version', 'Architecture', 'SHA256', 'Size', 'Filename', 'Source'] as const
const FIELD_RES = Object.fromEntries(FIELD_NAMES.map((n) => [n, new RegExp(`^${n}:[ \\t]*(.*)$`, 'm')])) as Record<(typeof FIELD_NAMES)[number], RegExp>
const field = (paragraph: string, name: (typeof FIELD_NAMES)[number]): string | undefined => FIELD_RES[name].exec(paragraph)?.[1]?.trim()

/**
 * Scans index text for the wanted (package, version, arch) keys without parsing every
 * paragraph (a Debian Packages index is ~60k paragraphs, 50 MB).
 */
export function scanPackagesIndex(text: string, index: string, wanted: ReadonlySet<string>, found: Map<string, IndexedBinary[]>): void {
  let start = 0
  while (start < text.length) {
    let end = text.indexOf('\n\n', start)
    if (end < 0) end = text.length
    const paragraph = text.slice(start, end)
    start = end + 2
    const pkg = field(paragraph, 'Package')
    const version = field(paragraph, 'Version')
    const arch = field(paragraph, 'Architecture')
    if (pkg === undefined || version === undefined || arch === undefined) continue
    const key = binaryKey({ package: pkg, version, architecture: arch })
    if (!wanted.has(key)) continue
    const sha256 = field(paragraph, 'SHA256')?.toLowerCase()
    if (!isSha256(sha256)) continue
    const entry: IndexedBinary = {
      sha256,
      size: Number(field(paragraph, 'Size') ?? NaN),
      filename: field(paragraph, 'Filename') ?? '',
      source: field(paragraph, 'Source'),
      index,
      indexes: [index]
    }
    const list = found.get(key)
    const same = list?.find((e) => e.sha256 === entry.sha256)
    if (list === undefined) found.set(key, [entry])
    else if (same === undefined) list.push(entry)
    else if (same.indexes === undefined) same.indexes = [same.index, index]
    else if (!same.indexes.includes(index)) same.indexes.push(index)
  }
}

/**
 * Looks up the wanted keys in every index. A key maps to several entries only when two
 * archives ship *different* files under the same package/version/arch (then the caller cannot
 * know which one is installed from the index alone).
 */
export async function lookupIndexedBinaries(
  wanted: ReadonlySet<string>,
  options: { listsDir?: string; indexes?: string[]; signal?: AbortSignal } = {}
): Promise<Map<string, IndexedBinary[]>> {
  const found = new Map<string, IndexedBinary[]>()
  if (wanted.size === 0) return found
  const indexes = options.indexes ?? (await listPackagesIndexes(options.listsDir))
  for (const index of indexes) {
    scanPackagesIndex(await readIndexText(index, options.signal), index, wanted, found)
  }
  return found
}
