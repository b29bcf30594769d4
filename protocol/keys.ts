/**
 * Ed25519 identities: key ids, the `ed25519:` text form, the public-key acceptance rule,
 * and the key-file format (bytes only; reading and writing files lives in identity/).
 *
 * One signature rule everywhere (SPEC.md §Signatures): a public key must decode to a curve
 * point that is not of small order (checked with @noble/ed25519), and signatures are verified
 * by OpenSSL through node:crypto.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto'
import { Point } from '@noble/ed25519'
import { remember } from './bounded-cache.js'
import { PUBLIC_KEY_PREFIX } from './constants.js'
import { fromBase64Url, parseJson, sha256Hex, toBase64Url } from './encoding.js'
import { RbqError } from './errors.js'

/** Lowercase hex SHA-256 of the 32 raw public-key bytes. */
export type KeyId = string

export interface PublicKey {
  readonly raw: Uint8Array // 32 bytes
  readonly keyid: KeyId
  readonly text: string // ed25519:<base64url>
}

export interface SigningKey {
  readonly publicKey: PublicKey
  /** OpenSSL private key object; never serialised except by encodeKeyFile. */
  readonly privateKey: KeyObject
  readonly seed: Uint8Array // 32-byte RFC 8032 private key
}

export function keyIdOf(raw: Uint8Array): KeyId {
  return sha256Hex(raw)
}

/**
 * The acceptance rule for public keys: exactly 32 bytes, a valid point encoding, and not of
 * small order (a small-order key lets one signature verify for many messages).
 */
export function checkPublicKeyBytes(raw: Uint8Array, field = 'publicKey'): void {
  if (raw.length !== 32) {
    throw new RbqError('KEY_INVALID', `${field}: an Ed25519 public key is 32 bytes, got ${raw.length}`, { field })
  }
  let point: Point
  try {
    point = Point.fromBytes(raw)
  } catch {
    throw new RbqError('KEY_INVALID', `${field}: not a valid Ed25519 point encoding`, { field })
  }
  if (point.isSmallOrder()) {
    throw new RbqError('KEY_SMALL_ORDER', `${field}: public key has small order`, { field })
  }
}

/** Builds a PublicKey from raw bytes after applying the acceptance rule. */
export function publicKeyFromRaw(raw: Uint8Array, field = 'publicKey'): PublicKey {
  checkPublicKeyBytes(raw, field)
  const copy = new Uint8Array(raw)
  return { raw: copy, keyid: keyIdOf(copy), text: PUBLIC_KEY_PREFIX + toBase64Url(copy) }
}

/**
 * Keys that passed the rule, by text form. The point decode + small-order check costs as much
 * as a signature verification, and a network sees the same few keys over and over. Bounded;
 * oldest evicted first. Only accepted keys are cached, so a refusal always re-runs the rule.
 */
const ACCEPTED_KEY_CACHE_MAX = 10_000
const acceptedKeys = new Map<string, PublicKey>()

/** Parses `ed25519:<base64url, no padding>`. */
export function parsePublicKey(text: unknown, field = 'publicKey'): PublicKey {
  if (typeof text === 'string') {
    const cached = acceptedKeys.get(text)
    if (cached !== undefined) return cached
  }
  if (typeof text !== 'string' || !text.startsWith(PUBLIC_KEY_PREFIX)) {
    throw new RbqError('KEY_INVALID', `${field}: expected "${PUBLIC_KEY_PREFIX}<base64url>"`, { field })
  }
  const raw = fromBase64Url(text.slice(PUBLIC_KEY_PREFIX.length), field)
  const pk = publicKeyFromRaw(raw, field)
  remember(acceptedKeys, ACCEPTED_KEY_CACHE_MAX, text, pk)
  return pk
}

// --- node:crypto key objects -------------------------------------------------------------

/** KeyObject import costs more than a verify; cache them, bounded (oldest evicted first). */
const KEY_OBJECT_CACHE_MAX = 10_000
const keyObjectCache = new Map<string, KeyObject>()

export function publicKeyObject(pk: PublicKey): KeyObject {
  let ko = keyObjectCache.get(pk.keyid)
  if (ko === undefined) {
    // JWK import is about twice as fast as DER/SPKI import.
    ko = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: toBase64Url(pk.raw) }, format: 'jwk' })
    remember(keyObjectCache, KEY_OBJECT_CACHE_MAX, pk.keyid, ko)
  }
  return ko
}

/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows (RFC 8410). */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

export function signingKeyFromSeed(seed: Uint8Array): SigningKey {
  if (seed.length !== 32) throw new RbqError('KEY_INVALID', `private key: expected 32 bytes, got ${seed.length}`)
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' })
  const x = createPublicKey(privateKey).export({ format: 'jwk' }).x
  const raw = fromBase64Url(String(x), 'publicKey')
  return { publicKey: publicKeyFromRaw(raw), privateKey, seed: new Uint8Array(seed) }
}

export function generateSigningKey(): SigningKey {
  const { privateKey } = generateKeyPairSync('ed25519')
  const jwk = privateKey.export({ format: 'jwk' })
  return signingKeyFromSeed(fromBase64Url(String(jwk.d), 'privateKey'))
}

export function signBytes(key: SigningKey, message: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, message, key.privateKey))
}

/** The project's one verification rule (see module comment). Never throws on bad input. */
export function verifyBytes(pk: PublicKey, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false
  try {
    return verify(null, message, publicKeyObject(pk), signature)
  } catch {
    return false
  }
}

/** Applies the full rule to raw bytes (key checks + OpenSSL); used by the worker pool and vectors. */
export function verifyRaw(publicKeyRaw: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  let pk: PublicKey
  try {
    pk = publicKeyFromRaw(publicKeyRaw)
  } catch {
    return false
  }
  return verifyBytes(pk, message, signature)
}

// --- key file format ---------------------------------------------------------------------

export const KEY_FILE_TYPE = 'rbq-ed25519-private-key'

/** Key file: one canonical-ish JSON object; the private key is the 32-byte seed, base64url. */
export interface KeyFile {
  type: typeof KEY_FILE_TYPE
  publicKey: string
  privateKey: string
}

export function encodeKeyFile(key: SigningKey): string {
  const file: KeyFile = { type: KEY_FILE_TYPE, publicKey: key.publicKey.text, privateKey: toBase64Url(key.seed) }
  return JSON.stringify(file, null, 2) + '\n'
}

export function decodeKeyFile(text: string, source = 'key file'): SigningKey {
  const value = parseJson(text, source)
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RbqError('KEY_INVALID', `${source}: expected a JSON object`)
  }
  const obj = value as Record<string, unknown>
  for (const k of Object.keys(obj)) {
    if (k !== 'type' && k !== 'publicKey' && k !== 'privateKey') {
      throw new RbqError('KEY_INVALID', `${source}: unknown field "${k}"`, { field: k })
    }
  }
  if (obj.type !== KEY_FILE_TYPE) {
    throw new RbqError('KEY_INVALID', `${source}: "type" must be "${KEY_FILE_TYPE}"`, { field: 'type' })
  }
  if (typeof obj.privateKey !== 'string') {
    throw new RbqError('KEY_INVALID', `${source}: "privateKey" missing`, { field: 'privateKey' })
  }
  const key = signingKeyFromSeed(fromBase64Url(obj.privateKey, 'privateKey'))
  if (obj.publicKey !== key.publicKey.text) {
    throw new RbqError('KEY_INVALID', `${source}: "publicKey" does not belong to "privateKey"`, { field: 'publicKey' })
  }
  return key
}

// --- PEM (PKCS#8 private keys, SPKI public keys) ----------------------------------------
//
// The form other tools read: cosign, in-toto-golang, securesystemslib and OpenSSL take an
// Ed25519 public key as SPKI PEM ("PUBLIC KEY") and a private key as PKCS#8 PEM ("PRIVATE KEY",
// RFC 8410). Imported keys pass the same acceptance rule as every other key.

/** SPKI PEM of a public key (`-----BEGIN PUBLIC KEY-----`). */
export function publicKeyToPem(pk: PublicKey): string {
  return String(publicKeyObject(pk).export({ format: 'pem', type: 'spki' }))
}

/** Unencrypted PKCS#8 PEM of a private key (`-----BEGIN PRIVATE KEY-----`). */
export function signingKeyToPem(key: SigningKey): string {
  return String(key.privateKey.export({ format: 'pem', type: 'pkcs8' }))
}

export type PemKey = { readonly kind: 'private'; readonly key: SigningKey } | { readonly kind: 'public'; readonly key: PublicKey }

const PEM_LABEL = /-----BEGIN ([A-Z0-9 ]+)-----/g

/**
 * Reads one Ed25519 key from PEM text: PKCS#8 `PRIVATE KEY` or SPKI `PUBLIC KEY`. Encrypted
 * keys, other algorithms, several keys in one text and small-order public keys are refused
 * with KEY_INVALID / KEY_SMALL_ORDER naming the problem.
 */
export function decodeKeyPem(text: string, source = 'PEM'): PemKey {
  const labels = [...text.matchAll(PEM_LABEL)].map((m) => m[1]!)
  if (labels.length === 0) throw new RbqError('KEY_INVALID', `${source}: no PEM block (expected -----BEGIN PRIVATE KEY----- or -----BEGIN PUBLIC KEY-----)`)
  if (labels.length > 1) throw new RbqError('KEY_INVALID', `${source}: ${labels.length} PEM blocks (${labels.join(', ')}); give one key per file`)
  const label = labels[0]!
  if (label === 'ENCRYPTED PRIVATE KEY' || label.startsWith('ENCRYPTED')) {
    throw new RbqError('KEY_INVALID', `${source}: the key is encrypted (${label}); decrypt it first, e.g. openssl pkey -in FILE -out plain.pem`)
  }
  if (label !== 'PRIVATE KEY' && label !== 'PUBLIC KEY') {
    throw new RbqError('KEY_INVALID', `${source}: a "${label}" block; expected PKCS#8 "PRIVATE KEY" or SPKI "PUBLIC KEY" (openssl pkey converts other forms)`)
  }
  let ko: KeyObject
  try {
    ko = label === 'PRIVATE KEY' ? createPrivateKey({ key: text, format: 'pem' }) : createPublicKey({ key: text, format: 'pem' })
  } catch (e) {
    throw new RbqError('KEY_INVALID', `${source}: not a readable ${label === 'PRIVATE KEY' ? 'PKCS#8 private' : 'SPKI public'} key (${(e as Error).message})`, { cause: e })
  }
  if (ko.asymmetricKeyType !== 'ed25519') {
    throw new RbqError('KEY_INVALID', `${source}: an ${ko.asymmetricKeyType ?? 'unknown'} key; rbq signs and verifies with Ed25519 only`)
  }
  const jwk = ko.export({ format: 'jwk' })
  if (label === 'PUBLIC KEY') return { kind: 'public', key: publicKeyFromRaw(fromBase64Url(String(jwk.x), 'publicKey'), `${source}: public key`) }
  const key = signingKeyFromSeed(fromBase64Url(String(jwk.d), 'privateKey'))
  return { kind: 'private', key }
}
