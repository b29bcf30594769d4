/**
 * Naming a Debian binary package the way attestations do: the purl of the *source* package it
 * was built from (`pkg:deb/debian/<source>@<source version>?arch=source`) and the artifact name
 * of the .deb (`<package>_<version without epoch>_<arch>.deb`, as in the archive's pool).
 * Shared by the apt gate (fields from `dpkg-deb --field`), `rbq health` (dpkg's status file)
 * and the rebuilderd bridge (Packages index entries).
 */
import { Sha256Hex } from '../protocol/index.js'
import type { ArtifactQuery } from '../protocol/api.js'
import { PackageURL } from 'packageurl-js'
import type { Paragraph } from './deb822.js'
import { versionWithoutEpoch } from './debian-version.js'

/** purl of a Debian source package, e.g. pkg:deb/debian/hello@2.10-3?arch=source */
export function debianSourcePurl(name: string, version: string): string {
  return new PackageURL('deb', 'debian', name, version, { arch: 'source' }, undefined).toString()
}

/** The control fields that identify a binary package. */
export interface BinaryControl {
  package: string
  version: string
  architecture: string
  /** The raw `Source:` field: absent, `name`, or `name (version)`. */
  source?: string | undefined
}

export interface SourceRef {
  name: string
  version: string
}


const BINNMU_RE = /\+b\d+$/

/**
 * The source package a binary was built from. `Source: name (version)` is explicit; without a
 * version the source version is the binary's, minus a binNMU suffix (`+bN`), which names a
 * rebuild of the same source and never appears in Sources.
 */
export function sourceOf(control: BinaryControl): SourceRef {
  const field = control.source?.trim() ?? ''
  const m = /^(\S+)(?:\s*\(\s*([^)\s]+)\s*\))?$/.exec(field)
  const name = field === '' || m === null ? control.package : (m[1] as string)
  const version = m?.[2] ?? control.version.replace(BINNMU_RE, '')
  return { name, version }
}

/** `pkg:deb/debian/<source>@<source version>?arch=source` (canonical purl). */
export function sourcePurlOf(control: BinaryControl): string {
  const src = sourceOf(control)
  return debianSourcePurl(src.name, src.version)
}

/** `<package>_<version without epoch>_<arch>.deb`: the file name in the archive's pool. */
export function debArtifactName(control: Pick<BinaryControl, 'package' | 'version' | 'architecture'>): string {
  return `${control.package}_${versionWithoutEpoch(control.version)}_${control.architecture}.deb`
}

export function artifactQueryOf(control: BinaryControl, sha256: string): ArtifactQuery {
  return { package: sourcePurlOf(control), artifact: debArtifactName(control), sha256 }
}

/** The identifying fields of a control paragraph (dpkg status, Packages, DEBIAN/control). */
export function controlFromParagraph(p: Paragraph): BinaryControl | undefined {
  const pkg = p.first('Package')
  const version = p.first('Version')
  const architecture = p.first('Architecture')
  if (!pkg || !version || !architecture) return undefined
  return { package: pkg, version, architecture, source: p.first('Source') }
}

const SHA256_RE = new RegExp(Sha256Hex.pattern as string)
export function isSha256(text: unknown): text is string {
  return typeof text === 'string' && SHA256_RE.test(text)
}

/** `name:arch` as dpkg prints it for humans. */
export function displayName(control: Pick<BinaryControl, 'package' | 'version' | 'architecture'>): string {
  return `${control.package}:${control.architecture} ${control.version}`
}
