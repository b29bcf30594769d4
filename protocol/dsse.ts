/**
 * DSSE v1 (https://github.com/secure-systems-lab/dsse): the pre-authentication encoding and
 * single-signature envelopes. The payload is signed as bytes and never re-serialised.
 */
import { utf8, toBase64 } from './encoding.js'
import { signBytes, verifyBytes, type PublicKey, type SigningKey } from './keys.js'
import type { Envelope } from './statements.js'

/** PAE(type, body) = "DSSEv1" SP len(type) SP type SP len(body) SP body; len = decimal byte length. */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = utf8(payloadType)
  const header = utf8(`DSSEv1 ${type.length} ${payloadType} ${payload.length} `)
  const out = new Uint8Array(header.length + payload.length)
  out.set(header, 0)
  out.set(payload, header.length)
  return out
}

export function signEnvelope(key: SigningKey, payloadType: string, payload: Uint8Array): Envelope {
  const sig = signBytes(key, pae(payloadType, payload))
  return { payloadType, payload: toBase64(payload), signatures: [{ keyid: key.publicKey.keyid, sig: toBase64(sig) }] }
}

export function verifyEnvelopeSignature(pk: PublicKey, payloadType: string, payload: Uint8Array, sig: Uint8Array): boolean {
  return verifyBytes(pk, pae(payloadType, payload), sig)
}
