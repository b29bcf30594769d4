/**
 * Pins the project's one Ed25519 rule (protocol/keys.ts: reject small-order public keys, then
 * OpenSSL verify) against every public vector in test/vectors/ed25519/ (provenance in its
 * README.md). If a Node/OpenSSL upgrade or a code change moves any accept/reject bit, this
 * fails: every node must agree.
 */
import { readFileSync } from 'node:fs'
import * as ed from '@noble/ed25519'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { generateSigningKey, signBytes, signingKeyFromSeed, verifyRaw } from '../../../protocol/index.js'

const dir = new URL('../../vectors/ed25519/', import.meta.url)
const load = <T>(name: string): T => JSON.parse(readFileSync(new URL(name, dir), 'utf8')) as T
const hex = (x: string) => new Uint8Array(Buffer.from(x, 'hex'))
const bits = (xs: boolean[]) => xs.map((b) => (b ? '1' : '0')).join('')

describe('Ed25519 rule pinned against public vectors', () => {
  it('RFC 8032 §7.1: every vector verifies, and our signing reproduces the signatures', () => {
    const vectors = load<{ priv: string; pub: string; msg: string; sig: string }[]>('rfc8032.json')
    expect(vectors.length).toBeGreaterThan(0)
    for (const v of vectors) {
      expect(verifyRaw(hex(v.pub), hex(v.msg), hex(v.sig))).toBe(true)
      const key = signingKeyFromSeed(hex(v.priv))
      expect(Buffer.from(key.publicKey.raw).toString('hex')).toBe(v.pub)
      expect(Buffer.from(signBytes(key, hex(v.msg))).toString('hex')).toBe(v.sig)
    }
  })

  it('Wycheproof: our verdict equals the expected result for all 150 tests', () => {
    const file = load<{ testGroups: { publicKey: { pk: string }; tests: { tcId: number; msg: string; sig: string; result: string }[] }[] }>('wycheproof.json')
    let n = 0
    for (const group of file.testGroups) {
      for (const t of group.tests) {
        n++
        expect(verifyRaw(hex(group.publicKey.pk), hex(t.msg), hex(t.sig)), `tcId ${t.tcId}`).toBe(t.result === 'valid')
      }
    }
    expect(n).toBe(150)
  })

  it('"Taming the many EdDSAs" edge cases: accept bits are exactly 001100000000', () => {
    // OpenSSL alone accepts 111100000001. Our key rule refuses cases 0 and 1 (small-order
    // public keys) and case 11 (a non-canonical point encoding) before OpenSSL runs.
    const cases = load<{ message: string; pub_key: string; signature: string }[]>('edge-cases.json')
    expect(cases).toHaveLength(12)
    expect(bits(cases.map((c) => verifyRaw(hex(c.pub_key), hex(c.message), hex(c.signature))))).toBe('001100000000')
  })

  it('ZIP 215: none of the 196 crafted pairs is accepted', () => {
    // OpenSSL alone accepts 12 of them: 8 have small-order public keys and 4 non-canonical
    // point encodings, all refused by our key rule.
    const pairs = load<{ vk_bytes: string; sig_bytes: string }[]>('zip215.json')
    expect(pairs).toHaveLength(196)
    const msg = new TextEncoder().encode('Zcash')
    expect(bits(pairs.map((p) => verifyRaw(hex(p.vk_bytes), msg, hex(p.sig_bytes))))).toBe('0'.repeat(196))
  })

  it('@noble/ed25519 and our verifier agree on honest signatures, both directions', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 512 }), async (seed, msg) => {
        const key = signingKeyFromSeed(seed)
        const ours = signBytes(key, msg)
        const theirs = await ed.signAsync(msg, seed)
        expect(Buffer.from(theirs).equals(Buffer.from(ours))).toBe(true)
        expect(await ed.verifyAsync(ours, msg, key.publicKey.raw, { zip215: false })).toBe(true)
        expect(verifyRaw(key.publicKey.raw, msg, theirs)).toBe(true)
      }),
      { numRuns: 200 }
    )
  })

  it('a freshly generated key round-trips', () => {
    const key = generateSigningKey()
    const msg = new TextEncoder().encode('rebuild-quorum')
    expect(verifyRaw(key.publicKey.raw, msg, signBytes(key, msg))).toBe(true)
  })
})
