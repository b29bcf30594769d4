import { describe, expect, it } from 'vitest'
import {
  decodeKeyFile,
  encodeKeyFile,
  generateSigningKey,
  keyIdOf,
  parsePublicKey,
  sha256Hex
} from '../../../protocol/index.js'
import { errorCode } from '../../utils/errors.js'

const code = errorCode

describe('keys', () => {
  it('key id is the SHA-256 of the raw public key; text form round-trips', () => {
    const key = generateSigningKey()
    expect(key.publicKey.keyid).toBe(sha256Hex(key.publicKey.raw))
    expect(keyIdOf(key.publicKey.raw)).toBe(key.publicKey.keyid)
    expect(key.publicKey.text).toMatch(/^ed25519:[A-Za-z0-9_-]{43}$/)
    expect(parsePublicKey(key.publicKey.text).keyid).toBe(key.publicKey.keyid)
  })

  it('refuses malformed and small-order public keys with a typed error', () => {
    expect(code(() => parsePublicKey('ssh-ed25519 AAAA'))).toBe('KEY_INVALID')
    expect(code(() => parsePublicKey('ed25519:AAAA'))).toBe('KEY_INVALID') // 3 bytes
    expect(code(() => parsePublicKey('ed25519:***'))).toBe('BASE64_INVALID')
    const identity = Buffer.concat([Buffer.from([1]), Buffer.alloc(31)]).toString('base64url')
    expect(code(() => parsePublicKey(`ed25519:${identity}`))).toBe('KEY_SMALL_ORDER')
    // y = 2^255 - 19 + 1: a non-canonical encoding, not a valid point for our rule
    const nonCanonical = Buffer.from('eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', 'hex').toString('base64url')
    expect(code(() => parsePublicKey(`ed25519:${nonCanonical}`))).toMatch(/KEY_INVALID|KEY_SMALL_ORDER/)
    expect(code(() => parsePublicKey(42))).toBe('KEY_INVALID')
  })

  it('key files round-trip and refuse tampering', () => {
    const key = generateSigningKey()
    const text = encodeKeyFile(key)
    expect(decodeKeyFile(text).publicKey.keyid).toBe(key.publicKey.keyid)
    const other = generateSigningKey()
    const mixed = JSON.parse(text)
    mixed.publicKey = other.publicKey.text
    expect(code(() => decodeKeyFile(JSON.stringify(mixed)))).toBe('KEY_INVALID')
    expect(code(() => decodeKeyFile('{"type":"rbq-ed25519-private-key","privateKey":"AAAA"}'))).toBe('KEY_INVALID')
    expect(code(() => decodeKeyFile(JSON.stringify({ ...JSON.parse(text), extra: 1 })))).toBe('KEY_INVALID')
    expect(code(() => decodeKeyFile('not json'))).toBe('JSON_MALFORMED')
  })
})
