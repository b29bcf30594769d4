import { describe, expect, it } from 'vitest'
import { fromBase64, fromBase64Url, parseCanonicalJson, parseJson, utf8 } from '../../../protocol/index.js'
import { errorCode } from '../../utils/errors.js'

const code = errorCode

describe('strict base64', () => {
  it('accepts canonical padded base64 and refuses everything else', () => {
    expect(Buffer.from(fromBase64('aGVsbG8=', 'x')).toString()).toBe('hello')
    expect(code(() => fromBase64('aGVsbG8', 'x'))).toBe('BASE64_INVALID') // missing padding
    expect(code(() => fromBase64('aGVs bG8=', 'x'))).toBe('BASE64_INVALID') // whitespace
    expect(code(() => fromBase64('aGVsbG9=', 'x'))).toBe('BASE64_INVALID') // stray bits
    expect(code(() => fromBase64('aGVsbG8_', 'x'))).toBe('BASE64_INVALID') // url alphabet
  })
  it('accepts canonical unpadded base64url only', () => {
    expect(fromBase64Url('aGVsbG8', 'x')).toHaveLength(5)
    expect(code(() => fromBase64Url('aGVsbG8=', 'x'))).toBe('BASE64_INVALID')
    expect(code(() => fromBase64Url('aGVsbG9', 'x'))).toBe('BASE64_INVALID')
    expect(code(() => fromBase64Url('a', 'x'))).toBe('BASE64_INVALID')
  })
})

describe('JSON decoding', () => {
  it('bounds depth before parsing', () => {
    expect(code(() => parseJson('['.repeat(17) + ']'.repeat(17), 'x'))).toBe('JSON_MALFORMED')
    expect(parseJson('['.repeat(16) + ']'.repeat(16), 'x')).toBeDefined()
    // brackets inside strings do not count
    expect(parseJson(JSON.stringify({ a: '[[[[[[[[[[[[[[[[[[[[[[' }), 'x')).toEqual({ a: '[[[[[[[[[[[[[[[[[[[[[[' })
  })
  it('rejects invalid UTF-8, duplicate keys, whitespace and non-canonical numbers', () => {
    expect(code(() => parseCanonicalJson(new Uint8Array([0x7b, 0xff, 0x7d]), 'x'))).toBe('JSON_MALFORMED')
    expect(code(() => parseCanonicalJson(utf8('{"a":1,"a":2}'), 'x'))).toBe('NOT_CANONICAL')
    expect(code(() => parseCanonicalJson(utf8('{"a": 1}'), 'x'))).toBe('NOT_CANONICAL')
    expect(code(() => parseCanonicalJson(utf8('{"a":1.0}'), 'x'))).toBe('NOT_CANONICAL')
    expect(code(() => parseCanonicalJson(utf8('{"b":1,"a":2}'), 'x'))).toBe('NOT_CANONICAL')
    expect(parseCanonicalJson(utf8('{"a":2,"b":1}'), 'x')).toEqual({ a: 2, b: 1 })
  })
})
