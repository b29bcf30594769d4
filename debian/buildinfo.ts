/**
 * Inputs digest of a Debian rebuild (node/rebuild/debian/README.md, "Inputs digest"): SHA-256 of
 * the canonical form of a .buildinfo — the node's own generated one for a `current` rebuild, the
 * official one for a `faithful` rebuild — with Build-Date and the output checksums removed.
 *
 * Canonical form, exactly:
 *  1. strip an OpenPGP clearsign wrapper if any; parse the single deb822 paragraph;
 *  2. drop the fields Build-Date, Checksums-Md5, Checksums-Sha1 and Checksums-Sha256 (in a
 *     binary-only build they list only the outputs);
 *  3. append `Checksums-Sha256:` listing the source package files (the .dsc and the files it
 *     names), one ` <sha256> <size> <name>` line each, sorted by name: the inputs;
 *  4. write every field as `Name: value` + LF (`Name:` + LF when the first line is empty), in
 *     file order, the first line trimmed and continuation lines verbatim (leading space kept);
 *     LF line ends, UTF-8, nothing after the last field's LF.
 */
import { createHash } from 'node:crypto'
import { parseParagraph, stripClearsign } from './deb822.js'

export interface InputFile {
  name: string
  sha256: string
  size: number
}

const DROPPED = new Set(['build-date', 'checksums-md5', 'checksums-sha1', 'checksums-sha256'])

export function canonicalBuildinfo(buildinfo: string, sourceFiles: InputFile[]): string {
  const p = parseParagraph(stripClearsign(buildinfo).trim())
  const kept = p.fields.filter((f) => !DROPPED.has(f.name.toLowerCase()))
  const inputs = [...sourceFiles]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((f) => `\n ${f.sha256} ${f.size} ${f.name}`)
    .join('')
  const line = (name: string, value: string): string =>
    value === '' || value.startsWith('\n') ? `${name}:${value}\n` : `${name}: ${value}\n`
  return [...kept, { name: 'Checksums-Sha256', value: inputs }].map((f) => line(f.name, f.value)).join('')
}

export function inputsDigest(buildinfo: string, sourceFiles: InputFile[]): string {
  return createHash('sha256').update(canonicalBuildinfo(buildinfo, sourceFiles), 'utf8').digest('hex')
}
