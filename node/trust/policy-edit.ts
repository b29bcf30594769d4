/**
 * Edits a policy file's TOML text the way a person would, so `rbq trust add|remove` keep the
 * admin's comments, order and layout: a root is appended as a `[[root]]` table at the end of the
 * file; a removed root's table goes with the comment lines directly above its header (no blank
 * line between) and the blank lines before the next table. Callers re-parse the result and
 * compare it with the policy they meant to write (these are text operations; the file may use
 * forms they do not foresee, such as an inline `root = [...]` array).
 */
import { formatRoot, type TrustRoot } from '../consensus/policy.js'

const ROOT_HEADER = /^\s*\[\[\s*["']?root["']?\s*\]\]\s*(#.*)?$/
const TABLE_HEADER = /^\s*\[/
const COMMENT = /^\s*#/
const BLANK = /^\s*$/

function eolOf(text: string): string {
  return text.includes('\r\n') ? '\r\n' : '\n'
}

/** `text` with `root` appended as a new `[[root]]` table, after one blank line. */
export function appendRoot(text: string, root: TrustRoot): string {
  const eol = eolOf(text)
  const body = text.length === 0 || text.endsWith('\n') ? text : text + eol
  const gap = body.length === 0 || body.endsWith(`${eol}${eol}`) ? '' : eol
  return body + gap + formatRoot(root).join(eol) + eol
}

/**
 * `text` without the `index`-th `[[root]]` table (0-based, file order), or undefined when the
 * file has fewer `[[root]]` headers (e.g. roots written as an inline array).
 */
export function removeRoot(text: string, index: number): string | undefined {
  const lines = text.split('\n') // a '\r' stays on its line and is kept as it is
  const headers = lines.flatMap((l, i) => (ROOT_HEADER.test(l.replace(/\r$/, '')) ? [i] : []))
  const header = headers[index]
  if (header === undefined) return undefined
  // The table runs to the next table header; comments and blanks just above that header belong
  // to it (at the end of the file: closing notes stay).
  let end = header + 1
  while (end < lines.length && !TABLE_HEADER.test(lines[end]!)) end++
  while (end - 1 > header && (COMMENT.test(lines[end - 1]!) || BLANK.test(lines[end - 1]!.replace(/\r$/, '')))) end--
  // Comment lines directly above the header describe this root.
  let start = header
  while (start > 0 && COMMENT.test(lines[start - 1]!)) start--
  // And one blank line before it, so tables stay separated by one blank line.
  if (start > 0 && BLANK.test(lines[start - 1]!.replace(/\r$/, ''))) start--
  else if (end < lines.length && BLANK.test(lines[end]!.replace(/\r$/, ''))) end++
  return [...lines.slice(0, start), ...lines.slice(end)].join('\n')
}
