/**
 * The fast canonical-form check (isCanonicalJsonText, used by parseCanonicalJson) against the
 * reference it short-cuts: strict UTF-8, depth check, JSON.parse, JCS re-encoding compared with
 * the text. Same acceptance, same error code and message, on random and mutated input.
 */
import canonicalizeJcs from 'canonicalize'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonicalJson, isCanonicalJsonText, isRbqError, parseCanonicalJson, parseJson, RbqError, signAttestation, generateSigningKey, frameText } from '../../protocol/index.js'
import { rebuildStatementArb } from '../utils/arbitraries.js'

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** parseCanonicalJson as it was before the fast scan: the normative definition. */
function referenceParse(bytes: Uint8Array, field: string): unknown {
  let text: string
  try {
    text = strictUtf8.decode(bytes)
  } catch {
    throw new RbqError('JSON_MALFORMED', `${field}: not valid UTF-8`, { field })
  }
  const value = parseJson(text, field)
  let canonical: string | undefined
  try {
    canonical = canonicalizeJcs(value)
  } catch {
    canonical = undefined
  }
  if (canonical !== text) throw new RbqError('NOT_CANONICAL', `${field}: not in canonical JSON form (RFC 8785 JCS)`, { field })
  return value
}

type Outcome = { ok: true; value: unknown } | { ok: false; code: string; message: string }

function outcome(parse: (bytes: Uint8Array, field: string) => unknown, bytes: Uint8Array): Outcome {
  try {
    return { ok: true, value: parse(bytes, 'x') }
  } catch (e) {
    if (!isRbqError(e)) throw e
    return { ok: false, code: e.code, message: e.message }
  }
}

function agrees(text: string): void {
  const bytes = new Uint8Array(Buffer.from(text, 'utf8'))
  expect(outcome(parseCanonicalJson, bytes)).toEqual(outcome(referenceParse, bytes))
  // The scan's own promise: whatever it vouches for and parses is its own JCS form.
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return
  }
  if (isCanonicalJsonText(text)) expect(canonicalizeJcs(value)).toBe(text)
}

/** Text edits that make canonical JSON non-canonical (or invalid) in the ways that matter. */
const mutation: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), what: fc.constantFrom(' ', '\n', '\t', ',', '"', '\\', '0', '-', '.5', 'e1', 'E+2', '{', '}', '[', ']', ':', 'true', '\\u0041', '\\/', '\\u001f', '\\u001F', '\\ud800', '\u00e9', '\ud83d\ude00', '\ud800') }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), what: fc.string({ minLength: 1, maxLength: 2, unit: 'binary' }) })
)

type Edit = { kind: 'insert' | 'replace'; at: number; what: string } | { kind: 'delete'; at: number; length: number }

function mutate(text: string, m: Edit): string {
  const at = text.length === 0 ? 0 : m.at % (text.length + 1)
  if (m.kind === 'insert') return text.slice(0, at) + m.what + text.slice(at)
  if (m.kind === 'delete') return text.slice(0, at) + text.slice(at + m.length)
  return text.slice(0, at) + m.what + text.slice(at + m.what.length)
}

/** Non-canonical spellings of a value: whitespace, member order, duplicates, number forms. */
function respell(value: unknown, next: () => number): string {
  if (Array.isArray(value)) return `[${value.map((v) => respell(v, next)).join(next() < 0.5 ? ', ' : ',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
    if (next() < 0.5) entries.reverse()
    if (entries.length > 0 && next() < 0.2) entries.push(entries[0] as [string, unknown])
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${respell(v, next)}`).join(',')}}`
  }
  if (typeof value === 'number' && Number.isInteger(value) && next() < 0.25) return `${value}.0`
  return JSON.stringify(value)
}

/** A small seeded generator (mulberry32), so a failing case replays from its seed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

describe('fast canonical check', () => {
  it('agrees with the re-encoding check on canonical texts of random JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 20 }), (value) => agrees(canonicalJson(value))),
      { numRuns: 1000 }
    )
  })

  it('agrees on random JSON spelled the way JSON.stringify does, with and without indentation', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.boolean(), (value, indent) => agrees(JSON.stringify(value, null, indent ? 1 : undefined))),
      { numRuns: 1000 }
    )
  })

  it('agrees on non-canonical respellings (member order, duplicates, whitespace, number forms)', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.integer(), (value, seed) => agrees(respell(value, seeded(seed)))),
      { numRuns: 1000 }
    )
  })

  it('agrees on canonical texts with random edits', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 8 }), fc.array(mutation, { minLength: 1, maxLength: 3 }), (value, edits) => {
        let text = canonicalJson(value)
        for (const edit of edits) text = mutate(text, edit)
        agrees(text)
      }),
      { numRuns: 3000 }
    )
  })

  it('agrees on real frames and their payloads, and on edited frames', () => {
    const key = generateSigningKey()
    fc.assert(
      fc.property(rebuildStatementArb(key), mutation, (statement, edit) => {
        const frame = signAttestation(key, statement)
        const text = frameText(frame.bytes)
        expect(isCanonicalJsonText(text)).toBe(true)
        agrees(text)
        agrees(Buffer.from(frame.payload).toString('utf8'))
        agrees(mutate(text, edit))
      }),
      { numRuns: 200 }
    )
  })

  it('agrees on number spellings, escapes, depth and encodings at the edges', () => {
    const texts = [
      '0', '-0', '1', '-1', '01', '1.0', '1e3', '1E3', '123456789012345', '1234567890123456', '9007199254740993', '-123456789012345',
      '"a"', '"\\u0041"', '"\\/"', '"\\u001f"', '"\\u001F"', '"\\u0008"', '"\\b"', '"\\u007f"', '"\u007f"', '"\u2028"', '"\\ud800"', '"\\ud83d\\ude00"', '"\ud83d\ude00"',
      '{"a":1,"a":2}', '{"b":1,"a":2}', '{"a":1,"b":2}', '{"":1,"a":2}', '{"a\\u0000":1,"a":2}', '{"\\u0061":1}', '{"é":1,"z":2}', '{"z":1,"é":2}',
      '{"\ud83d\ude00":1,"\uffff":2}', '{"\uffff":1,"\ud83d\ude00":2}', '{"__proto__":1}', '{"10":1,"9":2}', '{"9":1,"10":2}',
      '[]', '{}', '[{}]', '[ ]', ' 1', '1 ', '\ufeff1', 'tru', 'true', 'nul', 'fals', '[true,false,null]', '[1,]', '{"a"}', '"',
      '['.repeat(16) + ']'.repeat(16), '['.repeat(17) + ']'.repeat(17), '['.repeat(17), '{"a":'.repeat(16) + '1' + '}'.repeat(16), '{"a":'.repeat(17) + '1' + '}'.repeat(17)
    ]
    for (const text of texts) agrees(text)
    // Invalid UTF-8 and a BOM as bytes.
    for (const bytes of [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xef, 0xbb, 0xbf, 0x31], [0x22, 0xe2, 0x82, 0x22]]) {
      const b = new Uint8Array(bytes)
      expect(outcome(parseCanonicalJson, b)).toEqual(outcome(referenceParse, b))
    }
  })

  it('vouches for plain canonical JSON itself (the re-encoding is the exception, not the rule)', () => {
    const plain = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: 'small' }, fc.integer({ min: -1e14, max: 1e14 }), fc.boolean(), fc.constant(null), fc.string({ unit: 'grapheme-ascii' }), tie('array'), tie('object')),
      array: fc.array(tie('value'), { maxLength: 4 }),
      object: fc.dictionary(fc.string({ unit: 'grapheme-ascii' }).filter((k) => JSON.stringify(k) === `"${k}"`), tie('value'), { maxKeys: 4 })
    })).value
    fc.assert(
      fc.property(plain, (value) => {
        const text = canonicalJson(value)
        fc.pre(text.split('[').length + text.split('{').length - 2 <= 16)
        expect(isCanonicalJsonText(text)).toBe(true)
      }),
      { numRuns: 1000 }
    )
  })
})
