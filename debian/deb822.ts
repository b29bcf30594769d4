import { RbqError } from '../protocol/errors.js'

/**
 * deb822 control-file syntax (Debian Policy 5.1): paragraphs of `Name: value` fields separated
 * by blank lines, continuation lines starting with a space or tab. Used for InRelease, Sources,
 * Packages, .dsc, .buildinfo and apt `.sources` files.
 */

export interface Deb822Field {
  name: string
  /** First line trimmed; continuation lines follow after `\n`, kept verbatim (leading space included). */
  value: string
}

/** One paragraph, fields in file order. Names compare case-insensitively (Policy 5.1). */
export class Paragraph {
  constructor(readonly fields: Deb822Field[]) {}

  get(name: string): string | undefined {
    const lower = name.toLowerCase()
    return this.fields.find((f) => f.name.toLowerCase() === lower)?.value
  }

  /** The single-line value of a field, without continuation lines. */
  first(name: string): string | undefined {
    const v = this.get(name)
    return v === undefined ? undefined : (v.split('\n')[0] ?? '').trim()
  }
}

/** Splits text into raw paragraph strings without parsing them (cheap indexing of big indexes). */
export function splitParagraphs(text: string): string[] {
  return text
    .replace(/\r\n/g, '\n')
    .split(/\n[ \t]*\n/)
    .map((p) => p.replace(/^\n+|\n+$/g, ''))
    .filter((p) => p.trim() !== '' && !isAllComments(p))
}

function isAllComments(p: string): boolean {
  return p.split('\n').every((l) => l.startsWith('#') || l.trim() === '')
}

/** Parses one paragraph. Throws FEED_ERROR on a line that is neither a field, a continuation nor a comment. */
export function parseParagraph(text: string): Paragraph {
  const fields: Deb822Field[] = []
  for (const line of text.replace(/\r\n/g, '\n').split('\n')) {
    if (line.startsWith('#')) continue
    if (line.startsWith(' ') || line.startsWith('\t')) {
      const last = fields[fields.length - 1]
      if (last === undefined) throw new RbqError('FEED_ERROR', `deb822: continuation line before any field: ${JSON.stringify(line)}`)
      last.value += '\n' + line
      continue
    }
    const colon = line.indexOf(':')
    if (colon <= 0) throw new RbqError('FEED_ERROR', `deb822: malformed line: ${JSON.stringify(line)}`)
    fields.push({ name: line.slice(0, colon), value: line.slice(colon + 1).trim() })
  }
  return new Paragraph(fields)
}

export function parseDeb822(text: string): Paragraph[] {
  return splitParagraphs(text).map(parseParagraph)
}

/**
 * Returns the signed text of an OpenPGP clearsigned message, without checking the signature.
 * Only for files whose digest was already checked against a verified index (.dsc).
 */
export function stripClearsign(text: string): string {
  const lines = text.replace(/\r\n/g, '\n').split('\n')
  const begin = lines.indexOf('-----BEGIN PGP SIGNED MESSAGE-----')
  if (begin < 0) return text
  let i = begin + 1
  while (i < lines.length && lines[i] !== '') i++ // armor headers (Hash: ...)
  const end = lines.indexOf('-----BEGIN PGP SIGNATURE-----', i)
  return lines
    .slice(i + 1, end < 0 ? undefined : end)
    .map((l) => (l.startsWith('- ') ? l.slice(2) : l)) // dash-escaping (RFC 4880 7.1)
    .join('\n')
}

export interface ChecksumEntry {
  hash: string
  size: number
  name: string
}

/** Parses a `Checksums-Sha256:`/`SHA256:`/`Files:` multi-line value: ` <hash> <size> <name>` lines. */
export function parseChecksumList(value: string | undefined): ChecksumEntry[] {
  if (value === undefined) return []
  const out: ChecksumEntry[] = []
  for (const line of value.split('\n')) {
    const parts = line.trim().split(/\s+/)
    if (parts.length !== 3) continue // the (empty) first line of the field
    const [hash, size, name] = parts as [string, string, string]
    if (!/^[0-9a-f]+$/i.test(hash) || !/^\d+$/.test(size)) throw new RbqError('FEED_ERROR', `deb822: bad checksum line: ${line}`)
    out.push({ hash: hash.toLowerCase(), size: Number(size), name })
  }
  return out
}
