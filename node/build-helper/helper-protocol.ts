/**
 * The build helper's request protocol (node/build-helper/README.md): newline-delimited JSON
 * over a local Unix stream socket, one build per connection.
 *
 *   node → helper   one line: {"v":1,"op":"build","target":{…},"timeout_seconds":N}
 *   helper → node   {"type":"accepted"} {"type":"progress",…}* {"type":"log","data":base64}*
 *                   then {"type":"result","result":{…}} or {"type":"error","code","message"}
 *
 * The request is all the node can say, and it is checked strictly here: exact keys, a recipe
 * given by absolute path and the SHA-256 the node scheduled (the helper builds only recipes
 * inside its own recipes_dir), a Debian source name and version in Debian's own syntax.
 */
import { RbqError, type ErrorCode } from '../../protocol/index.js'
import type { JobTarget } from '../rebuild/scheduler.js'
import type { ProgressPhase, RebuildResult } from '../rebuild/rebuild-types.js'

export const BUILD_HELPER_PROTOCOL_VERSION = 1
/** A request is one short line; anything longer is refused before it is parsed. */
export const MAX_REQUEST_BYTES = 4096
/** Raw log bytes per `log` message (base64 in the line). */
export const LOG_CHUNK_BYTES = 48 * 1024
/** Longest line the client accepts from the helper (a result with many artifacts). */
export const MAX_RESPONSE_LINE_BYTES = 1024 * 1024
export const MAX_TIMEOUT_SECONDS = 7 * 86_400
/** Where the helper listens by default (the systemd socket unit, `rbq build-helper --socket`). */
export const DEFAULT_BUILD_SOCKET = '/run/rbq/build.sock'

export interface BuildRequest {
  v: 1
  op: 'build'
  target: JobTarget
  timeoutSeconds: number
}

/** The result as sent: dates as ISO text, no paths of the helper's machine. */
export type WireResult = Omit<RebuildResult, 'startedOn' | 'finishedOn' | 'artifacts' | 'log'> & {
  startedOn: string
  finishedOn: string
  artifacts: { name: string; sha256: string; size: number }[]
  log: { sha256: string; size: number }
}

export type HelperMessage =
  | { type: 'accepted' }
  | { type: 'progress'; phase: ProgressPhase; message: string }
  | { type: 'log'; data: string }
  | { type: 'result'; result: WireResult }
  | { type: 'error'; code: ErrorCode; message: string }

const PHASES: readonly ProgressPhase[] = ['fetch', 'verify', 'buildroot', 'build', 'compare', 'diff', 'done']
const DEBIAN_SOURCE = /^[a-z0-9][a-z0-9+.-]{1,99}$/
const DEBIAN_VERSION = /^([0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~-]{0,126}$/
const SHA256 = /^[0-9a-f]{64}$/

function invalid(message: string): RbqError {
  return new RbqError('HELPER_REQUEST_INVALID', `build helper request: ${message}`)
}

function exactKeys(o: Record<string, unknown>, keys: readonly string[], what: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw invalid(`unknown field ${JSON.stringify(k)} in ${what}`)
  for (const k of keys) if (!(k in o)) throw invalid(`missing field "${k}" in ${what}`)
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x)
}

/** Parses and checks one request line (without its newline); HELPER_REQUEST_INVALID naming the problem. */
export function parseBuildRequest(line: Uint8Array): BuildRequest {
  if (line.length > MAX_REQUEST_BYTES) throw invalid(`over ${MAX_REQUEST_BYTES} bytes`)
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(line)
  } catch {
    throw invalid('not UTF-8')
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw invalid('not JSON')
  }
  if (!isObject(json)) throw invalid('not a JSON object')
  exactKeys(json, ['v', 'op', 'target', 'timeout_seconds'], 'the request')
  if (json.v !== BUILD_HELPER_PROTOCOL_VERSION) throw invalid(`protocol version ${JSON.stringify(json.v)} (this helper speaks ${BUILD_HELPER_PROTOCOL_VERSION})`)
  if (json.op !== 'build') throw invalid(`op ${JSON.stringify(json.op)}: the helper only builds ("build")`)
  const timeout = json.timeout_seconds
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 1 || timeout > MAX_TIMEOUT_SECONDS) {
    throw invalid(`timeout_seconds: an integer 1..${MAX_TIMEOUT_SECONDS}`)
  }
  const t = json.target
  if (!isObject(t)) throw invalid('target: not an object')
  let target: JobTarget
  if (t.backend === 'recipe') {
    exactKeys(t, ['backend', 'recipe', 'sha256'], 'target')
    if (typeof t.recipe !== 'string' || !t.recipe.startsWith('/') || t.recipe.length > 1024 || t.recipe.includes('\0') || !t.recipe.endsWith('.toml')) {
      throw invalid('target.recipe: an absolute path to a .toml recipe')
    }
    if (typeof t.sha256 !== 'string' || !SHA256.test(t.sha256)) throw invalid('target.sha256: 64 lowercase hex digits')
    target = { backend: 'recipe', recipe: t.recipe, sha256: t.sha256 }
  } else if (t.backend === 'debian') {
    exactKeys(t, ['backend', 'source', 'version'], 'target')
    if (typeof t.source !== 'string' || !DEBIAN_SOURCE.test(t.source)) throw invalid('target.source: a Debian source package name')
    if (typeof t.version !== 'string' || !DEBIAN_VERSION.test(t.version)) throw invalid('target.version: a Debian version')
    target = { backend: 'debian', source: t.source, version: t.version }
  } else {
    throw invalid(`target.backend ${JSON.stringify(t.backend)}: "recipe" or "debian"`)
  }
  return { v: 1, op: 'build', target, timeoutSeconds: timeout }
}

export function encodeRequest(target: JobTarget, timeoutSeconds: number): string {
  return `${JSON.stringify({ v: BUILD_HELPER_PROTOCOL_VERSION, op: 'build', target, timeout_seconds: timeoutSeconds })}\n`
}

export function encodeMessage(m: HelperMessage): string {
  return `${JSON.stringify(m)}\n`
}

export function toWire(r: RebuildResult): WireResult {
  const { startedOn, finishedOn, artifacts, log, ...rest } = r
  // Only the RebuildResult fields travel (a builder's extras, e.g. networkIsolation, stay here).
  const known: (keyof typeof rest)[] = ['package', 'outcome', 'upstream', 'inputs', 'backend', 'diff', 'environment', 'environmentNote', 'failure']
  const picked = Object.fromEntries(known.filter((k) => rest[k] !== undefined).map((k) => [k, rest[k]])) as Omit<WireResult, 'startedOn' | 'finishedOn' | 'artifacts' | 'log'>
  return {
    ...picked,
    startedOn: startedOn.toISOString(),
    finishedOn: finishedOn.toISOString(),
    artifacts: artifacts.map((a) => ({ name: a.name, sha256: a.sha256, size: a.size })),
    log: { sha256: log.sha256, size: log.size }
  }
}

/** Checks a helper message line enough to act on it; a broken helper is a BUILDER_UNAVAILABLE. */
export function parseHelperMessage(line: string): HelperMessage {
  let m: unknown
  try {
    m = JSON.parse(line)
  } catch {
    throw new RbqError('BUILDER_UNAVAILABLE', 'build helper sent a line that is not JSON')
  }
  if (!isObject(m) || typeof m.type !== 'string') throw new RbqError('BUILDER_UNAVAILABLE', 'build helper sent a message without a type')
  switch (m.type) {
    case 'accepted':
      return { type: 'accepted' }
    case 'progress':
      if (typeof m.message !== 'string' || !PHASES.includes(m.phase as ProgressPhase)) break
      return { type: 'progress', phase: m.phase as ProgressPhase, message: m.message }
    case 'log':
      if (typeof m.data !== 'string') break
      return { type: 'log', data: m.data }
    case 'error':
      if (typeof m.code !== 'string' || typeof m.message !== 'string') break
      return { type: 'error', code: m.code as ErrorCode, message: m.message }
    case 'result':
      if (!isObject(m.result)) break
      return { type: 'result', result: m.result as unknown as WireResult }
  }
  throw new RbqError('BUILDER_UNAVAILABLE', `build helper sent a malformed "${m.type}" message`)
}

/**
 * Splits a byte stream into lines, refusing a line over `max` bytes (the peer gets no chance
 * to make us buffer without bound). Returns the lines completed by `chunk`.
 */
export class LineSplitter {
  private parts: Buffer[] = []
  private size = 0
  constructor(private readonly max: number) {}

  push(chunk: Buffer): Buffer[] {
    const lines: Buffer[] = []
    let start = 0
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, start)) {
      this.append(chunk.subarray(start, i))
      lines.push(Buffer.concat(this.parts))
      this.parts = []
      this.size = 0
      start = i + 1
    }
    this.append(chunk.subarray(start))
    return lines
  }

  private append(b: Buffer): void {
    if (b.length === 0) return
    this.size += b.length
    if (this.size > this.max) throw new RbqError('HELPER_REQUEST_INVALID', `line over ${this.max} bytes`)
    this.parts.push(b)
  }
}
