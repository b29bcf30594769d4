/**
 * Debian version strings: `[epoch:]upstream[-revision]`, compared as dpkg does
 * (Debian Policy 5.6.12; the algorithm is dpkg's lib/dpkg/version.c verrevcmp).
 */

export interface DebianVersion {
  epoch: number
  upstream: string
  revision: string
}

export function parseVersion(v: string): DebianVersion {
  const colon = v.indexOf(':')
  const epoch = colon >= 0 ? Number(v.slice(0, colon)) : 0
  const rest = colon >= 0 ? v.slice(colon + 1) : v
  const dash = rest.lastIndexOf('-')
  return {
    epoch: Number.isInteger(epoch) ? epoch : 0,
    upstream: dash >= 0 ? rest.slice(0, dash) : rest,
    revision: dash >= 0 ? rest.slice(dash + 1) : ''
  }
}

/** The version as it appears in file names (.deb, .dsc, .buildinfo): without the epoch. */
export function versionWithoutEpoch(v: string): string {
  const colon = v.indexOf(':')
  return colon >= 0 ? v.slice(colon + 1) : v
}

/** Negative if a < b, 0 if equal, positive if a > b. */
export function compareVersions(a: string, b: string): number {
  const va = parseVersion(a)
  const vb = parseVersion(b)
  if (va.epoch !== vb.epoch) return va.epoch - vb.epoch
  return verrevcmp(va.upstream, vb.upstream) || verrevcmp(va.revision, vb.revision)
}

/** binNMU suffix (`+bN`) of a binary version built from `sourceVersion`, or undefined. */
export function binNmuSuffix(binaryVersion: string, sourceVersion: string): string | undefined {
  if (!binaryVersion.startsWith(sourceVersion)) return undefined
  const rest = binaryVersion.slice(sourceVersion.length)
  return /^\+b\d+$/.test(rest) ? rest : undefined
}

const isDigit = (c: string): boolean => c >= '0' && c <= '9'

function order(c: string): number {
  if (c === '') return 0
  if (isDigit(c)) return 0
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0)
  if (c === '~') return -1
  return c.charCodeAt(0) + 256
}

function verrevcmp(a: string, b: string): number {
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    let firstDiff = 0
    while ((i < a.length && !isDigit(a.charAt(i))) || (j < b.length && !isDigit(b.charAt(j)))) {
      const ac = order(a.charAt(i))
      const bc = order(b.charAt(j))
      if (ac !== bc) return ac - bc
      i++
      j++
    }
    while (a.charAt(i) === '0') i++
    while (b.charAt(j) === '0') j++
    while (isDigit(a.charAt(i)) && isDigit(b.charAt(j))) {
      if (firstDiff === 0) firstDiff = a.charCodeAt(i) - b.charCodeAt(j)
      i++
      j++
    }
    if (isDigit(a.charAt(i))) return 1
    if (isDigit(b.charAt(j))) return -1
    if (firstDiff !== 0) return firstDiff
  }
  return 0
}
