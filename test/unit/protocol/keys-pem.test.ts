/**
 * PEM keys (PKCS#8 private, SPKI public): what rbq writes is read back, and what other tools
 * write is accepted only when it passes the same key rule as every other key.
 */
import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { decodeKeyPem, generateSigningKey, publicKeyToPem, signingKeyToPem } from '../../../protocol/index.js'
import { errorCode } from '../../utils/errors.js'

/** SPKI DER header of an Ed25519 public key (RFC 8410); the 32 key bytes follow. */
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const spkiPem = (raw: Buffer) =>
  `-----BEGIN PUBLIC KEY-----\n${Buffer.concat([SPKI_ED25519_PREFIX, raw]).toString('base64')}\n-----END PUBLIC KEY-----\n`

describe('PEM keys', () => {
  it('round-trips private (PKCS#8) and public (SPKI) keys', () => {
    const key = generateSigningKey()
    const priv = signingKeyToPem(key)
    const pub = publicKeyToPem(key.publicKey)
    expect(priv).toMatch(/^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END PRIVATE KEY-----\n$/)
    expect(pub).toMatch(/^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n$/)
    const p = decodeKeyPem(priv)
    expect(p.kind).toBe('private')
    expect(p.kind === 'private' && Buffer.from(p.key.seed).equals(Buffer.from(key.seed))).toBe(true)
    expect(p.kind === 'private' ? p.key.publicKey.keyid : '').toBe(key.publicKey.keyid)
    const q = decodeKeyPem(pub)
    expect(q).toMatchObject({ kind: 'public', key: { keyid: key.publicKey.keyid, text: key.publicKey.text } })
  })

  it('reads keys made by OpenSSL through node:crypto (another writer)', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519')
    const priv = decodeKeyPem(String(privateKey.export({ format: 'pem', type: 'pkcs8' })))
    const pub = decodeKeyPem(String(publicKey.export({ format: 'pem', type: 'spki' })))
    expect(priv.kind === 'private' && pub.kind === 'public' && priv.key.publicKey.keyid === pub.key.keyid).toBe(true)
  })

  it('refuses small-order, other-algorithm, encrypted, several and no keys, naming the problem', () => {
    // The identity point (y = 1): OpenSSL imports it, the key rule refuses it.
    expect(errorCode(() => decodeKeyPem(spkiPem(Buffer.concat([Buffer.from([1]), Buffer.alloc(31)]))))).toBe('KEY_SMALL_ORDER')
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 })
    expect(() => decodeKeyPem(String(rsa.publicKey.export({ format: 'pem', type: 'spki' })), 'k.pem')).toThrow(/k\.pem: an rsa key; rbq signs and verifies with Ed25519 only/)
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    expect(errorCode(() => decodeKeyPem(String(ec.privateKey.export({ format: 'pem', type: 'pkcs8' }))))).toBe('KEY_INVALID')
    const { privateKey } = generateKeyPairSync('ed25519')
    const encrypted = String(privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'x' }))
    expect(() => decodeKeyPem(encrypted)).toThrow(/encrypted .*openssl pkey/)
    const two = publicKeyToPem(generateSigningKey().publicKey) + publicKeyToPem(generateSigningKey().publicKey)
    expect(() => decodeKeyPem(two)).toThrow(/2 PEM blocks/)
    expect(() => decodeKeyPem('ed25519:abc')).toThrow(/no PEM block/)
    expect(() => decodeKeyPem('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')).toThrow(/a "CERTIFICATE" block/)
    expect(errorCode(() => decodeKeyPem('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n'))).toBe('KEY_INVALID')
  })
})
