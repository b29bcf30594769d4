/** Parsers for option values shared by several verbs; each failure is a USAGE error naming the flag. */
import { InvalidArgumentError, type Command } from 'commander'
import { join } from 'node:path'
import { defaultDataDir, defaultDataDirDescription } from '../common/data-dir.js'
import { canonicalPurl, RbqError, Sha256Hex } from '../protocol/index.js'

/** Help for a `--data <dir>` option: what the data dir is used for here, and the real default. */
export function dataDirHelp(what: string): string {
  return `${what} (default: ${defaultDataDirDescription()})`
}

/** Adds `--api URL` and `--data DIR` (how a verb finds the node: client/node-session.ts). */
export function withNodeOptions(cmd: Command): Command {
  return cmd
    .option('--api <url>', 'the node\'s API URL (default: $RBQ_API, else the api.url file in the data dir, else http://127.0.0.1:4778)')
    .option('--data <dir>', dataDirHelp('the node\'s data dir, for its API address and token'))
}

/** Help for an option defaulting to a file in the default data dir, e.g. signing.key. */
export function dataDirFileHelp(what: string, file: string): string {
  return `${what} (default: ${file} in the data dir: ${join(defaultDataDir(), file)})`
}

const SHA256_RE = new RegExp(Sha256Hex.pattern as string)

export function parseSha256Option(value: string): string {
  const v = value.toLowerCase()
  if (!SHA256_RE.test(v)) throw new InvalidArgumentError('expected 64 hex characters (a SHA-256 digest)')
  return v
}

export function parsePositiveInt(value: string): number {
  if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError('expected a positive integer')
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer')
  return n
}

export function parseNonNegativeInt(value: string): number {
  if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError('expected a non-negative integer')
  const n = Number(value)
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError('expected a non-negative integer')
  return n
}

export function parsePurlOption(value: string): string {
  try {
    return canonicalPurl(value, '--package')
  } catch (e) {
    throw new InvalidArgumentError(e instanceof RbqError ? e.message : String(e))
  }
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

/** `2027-11-22` (midnight UTC) or an RFC 3339 date-time. */
export function parseDateOption(value: string): Date {
  const ms = /^\d{4}-\d{2}-\d{2}(T.*)?$/.test(value) ? Date.parse(value) : NaN
  if (!Number.isFinite(ms)) throw new InvalidArgumentError('expected a date like 2027-11-22 or 2027-11-22T00:00:00Z')
  return new Date(ms)
}
