/**
 * Rebuild requests (SPEC.md §10): a node asks the network to rebuild a package, on the gossip
 * topic /rbq/1/rebuild-requests. The message has a frame's shape (`{ v, publicKey, envelope }`,
 * canonical JSON, one Ed25519 DSSE signature by the requesting node's key) but its own payload
 * type, which parseFrame does not know: a request can never be taken for a statement, stored
 * or synced. It is a hint, not evidence; receivers rate-limit it per signing key.
 */
import { Type, type Static } from '@sinclair/typebox'
import { PAYLOAD_TYPE_REBUILD_REQUEST, PROTOCOL_VERSION, STATEMENT_TYPE_REBUILD_REQUEST } from './constants.js'
import { signEnvelope, verifyEnvelopeSignature } from './dsse.js'
import { canonicalBytes, fromBase64, parseCanonicalJson, sha256Hex } from './encoding.js'
import { RbqError } from './errors.js'
import { parsePublicKey, type KeyId, type SigningKey } from './keys.js'
import { checkWirePurl } from './purl.js'
import { compileSchema } from './schema.js'
import { frameChecker } from './statements.js'

/** A request is small: a purl (≤ 512) and a timestamp, signed. */
export const MAX_REBUILD_REQUEST_BYTES = 2048

export const RebuildRequestStatementSchema = Type.Object(
  {
    _type: Type.Literal(STATEMENT_TYPE_REBUILD_REQUEST),
    package: Type.String({ minLength: 1, maxLength: 512 }),
    requestedAt: Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?Z$' })
  },
  { additionalProperties: false }
)
export type RebuildRequestStatement = Static<typeof RebuildRequestStatementSchema>
const requestChecker = compileSchema(RebuildRequestStatementSchema)

export interface RebuildRequestMessage {
  /** hex SHA-256 of the message bytes (= gossipsub message id). */
  readonly id: string
  readonly bytes: Uint8Array
  /** Key id of the requesting node. */
  readonly requester: KeyId
  /** Canonical purl asked for. */
  readonly purl: string
  /** ms since the epoch. */
  readonly requestedAt: number
}

/** Signs a request for `purl` (canonical) at `now`, timestamp in whole seconds. */
export function encodeRebuildRequest(key: SigningKey, purl: string, now: Date = new Date()): Uint8Array {
  checkWirePurl(purl, 'package')
  const statement: RebuildRequestStatement = {
    _type: STATEMENT_TYPE_REBUILD_REQUEST,
    package: purl,
    requestedAt: new Date(Math.floor(now.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z')
  }
  const envelope = signEnvelope(key, PAYLOAD_TYPE_REBUILD_REQUEST, canonicalBytes(statement))
  return canonicalBytes({ envelope, publicKey: key.publicKey.text, v: PROTOCOL_VERSION })
}

/**
 * Every check of SPEC.md §10 that needs no state; each failure is the sender's fault
 * (gossip: REJECT). Freshness and rate are the receiver's (node/p2p/demand.ts, IGNORE).
 */
export function decodeRebuildRequest(bytes: Uint8Array, root = 'request'): RebuildRequestMessage {
  if (bytes.length > MAX_REBUILD_REQUEST_BYTES) {
    throw new RbqError('INPUT_TOO_LARGE', `${root}: ${bytes.length} bytes exceeds the ${MAX_REBUILD_REQUEST_BYTES}-byte limit`, { field: root })
  }
  const value = parseCanonicalJson(bytes, root)
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RbqError('SCHEMA_INVALID', `${root}: expected a JSON object`, { field: root })
  const v = (value as { v?: unknown }).v
  if (v !== PROTOCOL_VERSION) throw new RbqError('VERSION_UNSUPPORTED', `${root}.v: unsupported version ${JSON.stringify(v) ?? 'undefined'}`, { field: `${root}.v` })
  const frame = frameChecker.check(value, root)
  const signer = parsePublicKey(frame.publicKey, `${root}.publicKey`)
  const entry = frame.envelope.signatures[0]
  if (entry === undefined) throw new RbqError('SCHEMA_INVALID', `${root}.envelope.signatures: empty`)
  if (entry.keyid !== signer.keyid) throw new RbqError('KEYID_MISMATCH', `${root}.envelope.signatures[0].keyid: is not the SHA-256 of publicKey`)
  if (frame.envelope.payloadType !== PAYLOAD_TYPE_REBUILD_REQUEST) {
    throw new RbqError('TOPIC_MISMATCH', `${root}.envelope.payloadType: "${frame.envelope.payloadType.slice(0, 80)}" is not a rebuild request`)
  }
  const signature = fromBase64(entry.sig, `${root}.envelope.signatures[0].sig`)
  const payload = fromBase64(frame.envelope.payload, `${root}.envelope.payload`)
  if (signature.length !== 64 || !verifyEnvelopeSignature(signer, PAYLOAD_TYPE_REBUILD_REQUEST, payload, signature)) {
    throw new RbqError('SIGNATURE_INVALID', `${root}.envelope.signatures[0].sig: signature does not verify`)
  }
  const statement = requestChecker.check(parseCanonicalJson(payload, `${root}.payload`), `${root}.payload`)
  checkWirePurl(statement.package, `${root}.payload.package`)
  const requestedAt = Date.parse(statement.requestedAt)
  if (!Number.isFinite(requestedAt)) throw new RbqError('SCHEMA_INVALID', `${root}.payload.requestedAt: not a real instant`)
  return { id: sha256Hex(bytes), bytes, requester: signer.keyid, purl: statement.package, requestedAt }
}
