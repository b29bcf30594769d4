/**
 * Byte-level helpers shared by every decoder: hashing, strict base64, bounded JSON and JCS.
 * Pure functions (hashing uses node:crypto, which does no I/O).
 */
import { createHash } from 'node:crypto'
import canonicalizeJcs from 'canonicalize'
import { MAX_JSON_DEPTH } from './constants.js'
import { RbqError } from './errors.js'

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const utf8Encoder = new TextEncoder()

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex')
}

export function utf8(text: string): Uint8Array {
  return utf8Encoder.encode(text)
}

/** Strict UTF-8 decode: invalid sequences are an error, not U+FFFD. */
export function decodeUtf8(bytes: Uint8Array, field: string): string {
  try {
    return utf8Decoder.decode(bytes)
  } catch {
    throw new RbqError('JSON_MALFORMED', `${field}: not valid UTF-8`, { field })
  }
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

const HEX_RE = /^(?:[0-9a-f]{2})*$/
export function fromHex(hex: string, field: string): Uint8Array {
  if (!HEX_RE.test(hex)) throw new RbqError('SCHEMA_INVALID', `${field}: not lowercase hex`, { field })
  return new Uint8Array(Buffer.from(hex, 'hex'))
}

const B64_STD_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const B64_URL_RE = /^[A-Za-z0-9_-]*$/

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

export function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')
}

/**
 * Standard base64 with padding (RFC 4648 §4), canonical only: the decoded bytes must encode
 * back to the same text, so one byte string has exactly one accepted spelling.
 */
export function fromBase64(text: string, field: string): Uint8Array {
  if (!B64_STD_RE.test(text)) {
    throw new RbqError('BASE64_INVALID', `${field}: not standard padded base64`, { field })
  }
  const bytes = Buffer.from(text, 'base64')
  if (bytes.toString('base64') !== text) {
    throw new RbqError('BASE64_INVALID', `${field}: non-canonical base64 (stray bits)`, { field })
  }
  return new Uint8Array(bytes)
}

/** base64url without padding (RFC 4648 §5), canonical only. */
export function fromBase64Url(text: string, field: string): Uint8Array {
  if (!B64_URL_RE.test(text) || text.length % 4 === 1) {
    throw new RbqError('BASE64_INVALID', `${field}: not unpadded base64url`, { field })
  }
  const bytes = Buffer.from(text, 'base64url')
  if (bytes.toString('base64url') !== text) {
    throw new RbqError('BASE64_INVALID', `${field}: non-canonical base64url (stray bits)`, { field })
  }
  return new Uint8Array(bytes)
}

/**
 * Rejects nesting deeper than `maxDepth` before JSON.parse sees the text, so hostile input
 * cannot exhaust the stack. Linear scan; brackets inside strings are skipped.
 */
function checkDepth(text: string, maxDepth: number, field: string): void {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c /* \ */) i++
      else if (c === 0x22 /* " */) inString = false
    } else if (c === 0x22) {
      inString = true
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > maxDepth) {
        throw new RbqError('JSON_MALFORMED', `${field}: JSON nested deeper than ${maxDepth}`, { field })
      }
    } else if (c === 0x7d || c === 0x5d) {
      depth--
    }
  }
}

/** Parses JSON text with a depth bound; any failure is a typed JSON_MALFORMED error. */
export function parseJson(text: string, field: string, maxDepth = MAX_JSON_DEPTH): unknown {
  checkDepth(text, maxDepth, field)
  try {
    return JSON.parse(text) as unknown
  } catch (e) {
    throw new RbqError('JSON_MALFORMED', `${field}: malformed JSON (${(e as Error).message})`, { field })
  }
}

/** JCS (RFC 8785) canonical text of a JSON value. */
export function canonicalJson(value: unknown): string {
  const text = canonicalizeJcs(value)
  if (text === undefined) throw new RbqError('SCHEMA_INVALID', 'value has no JSON form')
  return text
}

export function canonicalBytes(value: unknown): Uint8Array {
  return utf8(canonicalJson(value))
}

/**
 * Decodes bytes that must be JCS-canonical JSON: valid UTF-8, bounded depth, parseable, and
 * byte-identical to their own canonical form (so duplicate keys, whitespace, key order and
 * number spellings are all rejected).
 */
export function parseCanonicalJson(bytes: Uint8Array, field: string): unknown {
  const text = decodeUtf8(bytes, field)
  const value = parseJson(text, field)
  let canonical: string | undefined
  try {
    canonical = canonicalizeJcs(value)
  } catch {
    canonical = undefined
  }
  if (canonical !== text) {
    throw new RbqError('NOT_CANONICAL', `${field}: not in canonical JSON form (RFC 8785 JCS)`, { field })
  }
  return value
}
