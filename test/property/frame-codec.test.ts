/** Property tests for the frame codec: round trips, tamper detection, hostile input. */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  canonicalBytes,
  decodeFrame,
  encodeFrame,
  frameText,
  generateSigningKey,
  isRbqError,
  openStoredFrame,
  signAttestation,
  utf8,
  type Frame
} from '../../protocol/index.js'
import { rebuildStatementArb } from '../utils/arbitraries.js'

const key = generateSigningKey()

function decodeError(bytes: Uint8Array): unknown {
  try {
    decodeFrame(bytes)
    return undefined
  } catch (e) {
    return e
  }
}

function flipBit(b64: string, bit: number, encoding: 'base64' | 'base64url'): string {
  const bytes = Buffer.from(b64, encoding)
  const i = bit % (bytes.length * 8)
  bytes[i >> 3] = (bytes[i >> 3] as number) ^ (1 << (i & 7))
  return bytes.toString(encoding)
}

describe('frame codec properties', () => {
  it('sign → encode → decode round-trips the statement and the bytes', () => {
    fc.assert(
      fc.property(rebuildStatementArb(key), (statement) => {
        const frame = signAttestation(key, statement)
        const again = decodeFrame(encodeFrame(frame.frame))
        expect(again.statement).toEqual(statement)
        expect(again.id).toBe(frame.id)
        expect(Buffer.from(encodeFrame(again.frame)).equals(Buffer.from(frame.bytes))).toBe(true)
        expect(openStoredFrame(frame.bytes)).toEqual(again)
      }),
      { numRuns: 200 }
    )
  })

  it('flipping any bit of payload, signature, public key or payload type fails verification', () => {
    const field = fc.constantFrom('payload', 'sig', 'publicKey', 'payloadType')
    fc.assert(
      fc.property(rebuildStatementArb(key), field, fc.nat(), (statement, which, bit) => {
        const frame = signAttestation(key, statement)
        const f = JSON.parse(frameText(frame.bytes)) as Frame
        const sig = f.envelope.signatures[0] as { keyid: string; sig: string }
        if (which === 'payload') f.envelope.payload = flipBit(f.envelope.payload, bit, 'base64')
        if (which === 'sig') sig.sig = flipBit(sig.sig, bit, 'base64')
        if (which === 'publicKey') f.publicKey = 'ed25519:' + flipBit(f.publicKey.slice(8), bit, 'base64url')
        if (which === 'payloadType') {
          const t = Buffer.from(f.envelope.payloadType)
          const i = bit % (t.length * 8)
          t[i >> 3] = (t[i >> 3] as number) ^ (1 << (i & 7))
          f.envelope.payloadType = t.toString('latin1')
        }
        const err = decodeError(canonicalBytes(f))
        expect(isRbqError(err), String(err)).toBe(true)
      }),
      { numRuns: 400 }
    )
  })

  it('arbitrary bytes never throw anything but our typed error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        const err = decodeError(bytes)
        expect(isRbqError(err), String(err)).toBe(true)
      }),
      { numRuns: 1000 }
    )
  })

  it('arbitrary JSON values (canonical or not) never throw anything but our typed error', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 30 }), fc.boolean(), (value, canonical) => {
        const bytes = canonical ? canonicalBytes(value) : utf8(JSON.stringify(value) ?? 'null')
        const err = decodeError(bytes)
        expect(isRbqError(err), String(err)).toBe(true)
      }),
      { numRuns: 1000 }
    )
  })

  it('frame-shaped objects with arbitrary field values only ever give typed errors', () => {
    const anything = fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.boolean(), fc.array(fc.string(), { maxLength: 3 }))
    fc.assert(
      fc.property(anything, anything, anything, anything, anything, (v, publicKey, payloadType, payload, sig) => {
        const obj = { v, publicKey, envelope: { payloadType, payload, signatures: [{ keyid: 'x', sig }] } }
        const err = decodeError(canonicalBytes(obj))
        expect(isRbqError(err), String(err)).toBe(true)
      }),
      { numRuns: 500 }
    )
  })

  it('deeply nested input is refused without exhausting the stack', () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000)
    expect((decodeError(utf8(deep)) as { code: string }).code).toBe('INPUT_TOO_LARGE')
    const deepSmall = '{"v":' + '['.repeat(30_000) + ']'.repeat(30_000) + '}'
    expect((decodeError(utf8(deepSmall)) as { code: string }).code).toBe('JSON_MALFORMED')
  })
})
