/**
 * Byte-level helpers shared by every decoder: hashing, strict base64, bounded JSON and JCS.
 * Pure functions (hashing uses node:crypto, which does no I/O).
 */
import { isAscii, isUtf8 } from 'node:buffer'
import { hash } from 'node:crypto'
import canonicalizeJcs from 'canonicalize'
import { MAX_JSON_DEPTH } from './constants.js'
import { RbqError } from './errors.js'

const utf8Encoder = new TextEncoder()

export function sha256Hex(data: Uint8Array | string): string {
  return hash('sha256', data, 'hex') // one-shot: no Hash object per call
}

export function utf8(text: string): Uint8Array {
  return utf8Encoder.encode(text)
}

/** Strict UTF-8 decode: invalid sequences are an error, not U+FFFD. */
export function decodeUtf8(bytes: Uint8Array, field: string): string {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  // Frames are ASCII in practice: validated and decoded without a UTF-8 decoder.
  if (isAscii(buffer)) return buffer.toString('latin1')
  if (!isUtf8(buffer)) throw new RbqError('JSON_MALFORMED', `${field}: not valid UTF-8`, { field })
  return buffer.toString('utf8') // a leading BOM is kept (and JSON.parse refuses it)
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
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
  // Canonical output is always standard padded base64, so a text equal to the re-encoding of
  // its bytes passes the pattern too; the pattern only picks the message of a refusal.
  const bytes = Buffer.from(text, 'base64')
  if (bytes.toString('base64') !== text) {
    if (!B64_STD_RE.test(text)) throw new RbqError('BASE64_INVALID', `${field}: not standard padded base64`, { field })
    throw new RbqError('BASE64_INVALID', `${field}: non-canonical base64 (stray bits)`, { field })
  }
  return new Uint8Array(bytes) // a copy: small Buffers are views into a shared pool
}

/** base64url without padding (RFC 4648 §5), canonical only. */
export function fromBase64Url(text: string, field: string): Uint8Array {
  const bytes = Buffer.from(text, 'base64url')
  if (bytes.toString('base64url') !== text) {
    if (!B64_URL_RE.test(text) || text.length % 4 === 1) throw new RbqError('BASE64_INVALID', `${field}: not unpadded base64url`, { field })
    throw new RbqError('BASE64_INVALID', `${field}: non-canonical base64url (stray bits)`, { field })
  }
  return new Uint8Array(bytes) // a copy: small Buffers are views into a shared pool
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
  return parseJsonUnbounded(text, field)
}

/** JSON.parse with the typed error; only for text whose depth is already known to be bounded. */
function parseJsonUnbounded(text: string, field: string): unknown {
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
  // One scan vouches for depth and canonical form of almost every valid frame; what it cannot
  // vouch for takes the reference path (depth check, parse, re-encoding), with its errors.
  if (isCanonicalJsonText(text)) return parseJsonUnbounded(text, field)
  const value = parseJson(text, field)
  checkCanonicalByReencoding(text, value, field)
  return value
}

/**
 * The reference check (step 4 and 13 of SPEC.md §4.2): the JCS re-encoding of the parsed value
 * must equal the text. isCanonicalJsonText never accepts what this refuses (property-tested).
 */
export function checkCanonicalByReencoding(text: string, value: unknown, field: string): void {
  let canonical: string | undefined
  try {
    canonical = canonicalizeJcs(value)
  } catch {
    canonical = undefined
  }
  if (canonical !== text) {
    throw new RbqError('NOT_CANONICAL', `${field}: not in canonical JSON form (RFC 8785 JCS)`, { field })
  }
}

const isDigit = (c: number) => c >= 0x30 && c <= 0x39
const isLowerHex = (c: number) => isDigit(c) || (c >= 0x61 && c <= 0x66)

/**
 * `\u00XX` exactly as JCS (JSON.stringify) writes it: a control character that has no short
 * escape (\b \t \n \f \r), in lowercase hex. `at` is the index of the first of the 4 digits.
 */
function isCanonicalUnicodeEscape(text: string, at: number): boolean {
  if (text.charCodeAt(at) !== 0x30 || text.charCodeAt(at + 1) !== 0x30) return false
  const hi = text.charCodeAt(at + 2)
  const lo = text.charCodeAt(at + 3)
  if ((hi !== 0x30 && hi !== 0x31) || !isLowerHex(lo)) return false
  const code = (hi - 0x30) * 16 + (lo <= 0x39 ? lo - 0x30 : lo - 0x61 + 10)
  return code !== 0x08 && code !== 0x09 && code !== 0x0a && code !== 0x0c && code !== 0x0d
}

/**
 * A structural scan of JSON text: true when the text, if JSON.parse accepts it, is certainly
 * its own JCS form and nested at most `maxDepth` deep (bracket count outside strings, as
 * checkDepth counts) — no whitespace outside strings, every object's member names strictly
 * increasing by UTF-16 code units (so no duplicates), strings with only the escapes JCS writes
 * and no surrogate code units, numbers that are integers of at most 15 digits (not "-0").
 * False means "cannot vouch" (a member name with an escape, a fraction, an exponent, a long
 * number, a surrogate…), never "not canonical": the caller then compares with the re-encoding.
 */
const SURROGATE_RE = /[\ud800-\udfff]/

export function isCanonicalJsonText(text: string, maxDepth = MAX_JSON_DEPTH): boolean {
  // Per open container (index = depth): object or array, and the last member name seen.
  const inObject: boolean[] = [false]
  const lastKey: (string | undefined)[] = [undefined]
  let depth = 0
  let expectKey = false
  // Surrogates: JCS refuses lone ones; leave every surrogate to the re-encoding check. (On a
  // one-byte string, such as ASCII text, this pattern fails without scanning.)
  if (SURROGATE_RE.test(text)) return false
  let backslash = text.indexOf('\\')
  const n = text.length
  let i = 0
  while (i < n) {
    const c = text.charCodeAt(i)
    if (c === 0x22 /* " */) {
      // Jump from quote to quote; escapes (only ever inside strings) are checked where they are.
      const start = i + 1
      let j = start
      let escaped = false
      for (;;) {
        const quote = text.indexOf('"', j)
        if (quote === -1) return false
        if (backslash === -1 || backslash > quote) {
          j = quote
          break
        }
        escaped = true
        const e = text.charCodeAt(backslash + 1)
        // \" \\ \b \f \n \r \t
        if (e === 0x22 || e === 0x5c || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) j = backslash + 2
        else if (e === 0x75 /* u */ && isCanonicalUnicodeEscape(text, backslash + 2)) j = backslash + 6
        else return false
        backslash = text.indexOf('\\', j)
      }
      if (expectKey) {
        if (escaped) return false
        const key = text.slice(start, j)
        const previous = lastKey[depth]
        if (previous !== undefined && !(previous < key)) return false
        lastKey[depth] = key
        expectKey = false
      }
      i = j + 1
      continue
    }
    switch (c) {
      case 0x7b /* { */:
        if (++depth > maxDepth) return false
        inObject[depth] = true
        lastKey[depth] = undefined
        expectKey = true
        break
      case 0x5b /* [ */:
        if (++depth > maxDepth) return false
        inObject[depth] = false
        expectKey = false
        break
      case 0x7d /* } */:
      case 0x5d /* ] */:
        depth--
        expectKey = false
        break
      case 0x2c /* , */:
        expectKey = inObject[depth] === true
        break
      case 0x3a /* : */:
        break
      case 0x74:
        if (!text.startsWith('true', i)) return false
        i += 4
        continue
      case 0x6e:
        if (!text.startsWith('null', i)) return false
        i += 4
        continue
      case 0x66:
        if (!text.startsWith('false', i)) return false
        i += 5
        continue
      default: {
        // An integer of 1–15 digits, no leading zero, not -0: printed back digit for digit.
        let j = i
        if (c === 0x2d /* - */) j++
        const first = j
        while (j < n && isDigit(text.charCodeAt(j))) j++
        const digits = j - first
        if (digits === 0 || digits > 15) return false
        if (text.charCodeAt(first) === 0x30 && (digits > 1 || c === 0x2d)) return false
        const next = text.charCodeAt(j)
        if (next === 0x2e /* . */ || next === 0x65 /* e */ || next === 0x45 /* E */) return false
        i = j
        continue
      }
    }
    i++
  }
  return true
}
