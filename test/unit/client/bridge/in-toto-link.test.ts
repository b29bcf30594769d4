import { describe, expect, it } from 'vitest'
import {
  inTotoCanonicalJson,
  parsePublicKeysResponse,
  parseRebuilderdPublicKeys,
  verifyRebuilderdLink
} from '../../../../client/bridge/in-toto-link.js'
import { isRbqError } from '../../../../protocol/index.js'
import { makeRebuilderdKey, signedLink } from '../../../utils/rebuilderd-server.js'

/** The public key PEM rebuilderd's own test (daemon/src/attestation.rs, test_load_privkey) expects. */
const REBUILDERD_TEST_PEM = '-----BEGIN PUBLIC KEY-----\r\nMCwwBwYDK2VwBQADIQAHnJJrD5YT1S3Tp9iU9/ZXj7mBsUcDkdkkrufZZYAa8A==\r\n-----END PUBLIC KEY-----\r\n'
const FILE = 'hello_2.10-3_amd64.deb'
const DIGEST = 'ab'.repeat(32)
const bytes = (s: string) => new TextEncoder().encode(s)

function refusal(f: () => unknown): Error {
  try {
    f()
  } catch (e) {
    return e as Error
  }
  throw new Error('expected a refusal')
}

describe('rebuilderd in-toto links', () => {
  it('reads rebuilderd\'s PEM (in-toto-rs SPKI with a NULL parameter) and the RFC 8410 form', () => {
    const [k] = parseRebuilderdPublicKeys(REBUILDERD_TEST_PEM, 'test')
    expect(Buffer.from(k!.raw).toString('hex')).toBe('079c926b0f9613d52dd3a7d894f7f6578fb981b1470391d924aee7d965801af0')
    const rfc = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(k!.raw)]).toString('base64')
    const [k2] = parseRebuilderdPublicKeys(`-----BEGIN PUBLIC KEY-----\n${rfc}\n-----END PUBLIC KEY-----\n`, 'rfc')
    expect(k2!.keyids).toEqual(k!.keyids)
    expect(isRbqError(refusal(() => parseRebuilderdPublicKeys('nothing here', 'x')), 'KEY_INVALID')).toBe(true)
    const rsaish = Buffer.alloc(44, 1).toString('base64')
    expect(refusal(() => parseRebuilderdPublicKeys(`-----BEGIN PUBLIC KEY-----\n${rsaish}\n-----END PUBLIC KEY-----`, 'x')).message).toMatch(/not an Ed25519 public key/)
  })

  it('computes the key id rebuilderd signs with, and reads /api/v1/meta/public-keys', () => {
    const key = makeRebuilderdKey()
    const [k] = parsePublicKeysResponse(JSON.stringify({ current: [key.pem] }), 'keys')
    expect(k!.keyid).toBe(key.keyid)
    expect(isRbqError(refusal(() => parsePublicKeysResponse('{"keys":[]}', 'keys')), 'SCHEMA_INVALID')).toBe(true)
  })

  it('canonical JSON: sorted keys bytewise, no whitespace, no floats', () => {
    expect(inTotoCanonicalJson({ b: [1, 'x\n'], a: null, é: true, Z: {} })).toBe('{"Z":{},"a":null,"b":[1,"x\\n"],"é":true}')
    expect(() => inTotoCanonicalJson({ a: 1.5 })).toThrow(/non-integer/)
  })

  it('verifies a link signed by a pinned key and gives its product digests', () => {
    const key = makeRebuilderdKey()
    const pinned = parseRebuilderdPublicKeys(key.pem, 'pin')
    const link = verifyRebuilderdLink(bytes(signedLink(FILE, DIGEST, [key])), pinned, 'a')
    expect(link.keyid).toBe(key.keyid)
    expect(link.products.get(FILE)).toBe(DIGEST)
    // A daemon that transparently signs appends its signature after the worker's: one pinned one suffices.
    const worker = makeRebuilderdKey()
    expect(verifyRebuilderdLink(bytes(signedLink(FILE, DIGEST, [worker, key])), pinned, 'b').keyid).toBe(key.keyid)
  })

  it('refuses a tampered link, a link signed by another key, and an unsigned one', () => {
    const key = makeRebuilderdKey()
    const pinned = parseRebuilderdPublicKeys(key.pem, 'pin')
    const tampered = signedLink(FILE, DIGEST, [key]).replace(DIGEST, 'cd'.repeat(32))
    const e1 = refusal(() => verifyRebuilderdLink(bytes(tampered), pinned, 'tampered'))
    expect(isRbqError(e1, 'SIGNATURE_INVALID')).toBe(true)
    expect(e1.message).toMatch(/^tampered: no valid signature by a pinned key/)
    const other = makeRebuilderdKey()
    expect(refusal(() => verifyRebuilderdLink(bytes(signedLink(FILE, DIGEST, [other])), pinned, 'other')).message).toContain(`signed by ${other.keyid.slice(0, 16)}`)
    expect(isRbqError(refusal(() => verifyRebuilderdLink(bytes(signedLink(FILE, DIGEST, [])), pinned, 'none')), 'SIGNATURE_INVALID')).toBe(true)
    expect(isRbqError(refusal(() => verifyRebuilderdLink(bytes('{"signatures":[],"signed":{"_type":"layout"}}'), pinned, 'layout')), 'SCHEMA_INVALID')).toBe(true)
  })
})
