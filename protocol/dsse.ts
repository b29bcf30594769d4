/**
 * DSSE v1 (https://github.com/secure-systems-lab/dsse): the pre-authentication encoding and
 * single-signature envelopes. The payload is signed as bytes and never re-serialised.
 */
import { toBase64 } from './encoding.js'
import { signBytes, verifyBytes, type PublicKey, type SigningKey } from './keys.js'
import type { Envelope } from './statements.js'

/** PAE(type, body) = "DSSEv1" SP len(type) SP type SP len(body) SP body; len = decimal byte length. */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const header = `DSSEv1 ${Buffer.byteLength(payloadType, 'utf8')} ${payloadType} ${payload.length} `
  const headerBytes = Buffer.byteLength(header, 'utf8')
  const out = new Uint8Array(headerBytes + payload.length)
  Buffer.from(out.buffer, out.byteOffset, headerBytes).write(header, 'utf8')
  out.set(payload, headerBytes)
  return out
}

export function signEnvelope(key: SigningKey, payloadType: string, payload: Uint8Array): Envelope {
  const sig = signBytes(key, pae(payloadType, payload))
  return { payloadType, payload: toBase64(payload), signatures: [{ keyid: key.publicKey.keyid, sig: toBase64(sig) }] }
}

export function verifyEnvelopeSignature(pk: PublicKey, payloadType: string, payload: Uint8Array, sig: Uint8Array): boolean {
  return verifyBytes(pk, pae(payloadType, payload), sig)
}
