/**
 * Frames: `{ v, publicKey, envelope }` in JCS canonical bytes — what travels and is stored.
 *
 * Decoding is split in three steps so the node can verify signatures in worker threads:
 *   parseFrame      size, UTF-8, depth, canonical form, version, schema, key rule, key id,
 *                   base64, payload type, payload size        (cheap; no signature check)
 *   checkSignature  Ed25519 over PAE(payloadType, payload)    (the expensive step)
 *   openFrame       payload JSON (canonical) + statement schema + semantic checks
 * decodeFrame runs all three. Order and error codes are normative (SPEC.md §Verification).
 */
import {
  MAX_FRAME_BYTES,
  MAX_STATEMENT_PAYLOAD_BYTES,
  PAYLOAD_TYPE_DELEGATION,
  PAYLOAD_TYPE_EQUIVOCATION,
  PAYLOAD_TYPE_IN_TOTO,
  PROTOCOL_VERSION,
  STATEMENT_TYPE_EQUIVOCATION
} from './constants.js'
import { pae, signEnvelope } from './dsse.js'
import { canonicalBytes, fromBase64, parseCanonicalJson, sha256Hex } from './encoding.js'
import { RbqError } from './errors.js'
import { parsePublicKey, verifyBytes, type PublicKey, type SigningKey } from './keys.js'
import {
  checkDelegationSemantics,
  checkRebuildSemantics,
  delegationStatementChecker,
  equivocationStatementChecker,
  frameChecker,
  rebuildStatementChecker,
  type DelegationStatement,
  type EquivocationStatement,
  type Frame,
  type RebuildStatement
} from './statements.js'

export type StatementKind = 'attestation' | 'delegation' | 'equivocation'

const KIND_BY_PAYLOAD_TYPE: Record<string, StatementKind> = {
  [PAYLOAD_TYPE_IN_TOTO]: 'attestation',
  [PAYLOAD_TYPE_DELEGATION]: 'delegation',
  [PAYLOAD_TYPE_EQUIVOCATION]: 'equivocation'
}

export const PAYLOAD_TYPE_BY_KIND: Record<StatementKind, string> = {
  attestation: PAYLOAD_TYPE_IN_TOTO,
  delegation: PAYLOAD_TYPE_DELEGATION,
  equivocation: PAYLOAD_TYPE_EQUIVOCATION
}

/** A frame that passed every check except the signature. */
export interface ParsedFrame {
  readonly id: string // hex SHA-256 of `bytes` = gossip message id
  readonly bytes: Uint8Array // canonical JCS bytes
  readonly frame: Frame
  readonly kind: StatementKind
  readonly signer: PublicKey
  readonly payload: Uint8Array
  readonly signature: Uint8Array
}

export type OpenedStatement =
  | { readonly kind: 'attestation'; readonly statement: RebuildStatement }
  | { readonly kind: 'delegation'; readonly statement: DelegationStatement }
  | { readonly kind: 'equivocation'; readonly statement: EquivocationStatement; readonly proof: EquivocationEvidence }

/** A fully verified frame and its statement. */
export type VerifiedFrame = Omit<ParsedFrame, 'kind'> &
  OpenedStatement & {
    /** hex SHA-256 of the payload bytes: equal statements have equal digests. */
    readonly payloadDigest: string
  }

export type AttestationFrame = VerifiedFrame & { readonly kind: 'attestation' }
export type DelegationFrame = VerifiedFrame & { readonly kind: 'delegation' }
export type EquivocationFrame = VerifiedFrame & { readonly kind: 'equivocation' }

export interface EquivocationEvidence {
  readonly keyid: string
  readonly seq: number
  readonly a: AttestationFrame
  readonly b: AttestationFrame
}

export function frameId(bytes: Uint8Array): string {
  return sha256Hex(bytes)
}

export function encodeFrame(frame: Frame): Uint8Array {
  return canonicalBytes(frame)
}

export function parseFrame(bytes: Uint8Array, root = 'frame'): ParsedFrame {
  // [REJECT] size first: nothing else runs on oversized input.
  if (bytes.length > MAX_FRAME_BYTES) {
    throw new RbqError('INPUT_TOO_LARGE', `${root}: ${bytes.length} bytes exceeds the ${MAX_FRAME_BYTES}-byte limit`, { field: root })
  }
  const value = parseCanonicalJson(bytes, root)
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RbqError('SCHEMA_INVALID', `${root}: expected a JSON object`, { field: root })
  }
  const v = (value as { v?: unknown }).v
  if (v !== PROTOCOL_VERSION) {
    throw new RbqError('VERSION_UNSUPPORTED', `${root}.v: unsupported frame version ${JSON.stringify(v) ?? 'undefined'} (this node speaks ${PROTOCOL_VERSION})`, {
      field: `${root}.v`
    })
  }
  const frame = frameChecker.check(value, root)
  const signer = parsePublicKey(frame.publicKey, `${root}.publicKey`)
  const entry = frame.envelope.signatures[0]
  if (entry === undefined) throw new RbqError('SCHEMA_INVALID', `${root}.envelope.signatures: empty`)
  if (entry.keyid !== signer.keyid) {
    throw new RbqError('KEYID_MISMATCH', `${root}.envelope.signatures[0].keyid: is not the SHA-256 of publicKey`, {
      field: `${root}.envelope.signatures[0].keyid`
    })
  }
  const kind = KIND_BY_PAYLOAD_TYPE[frame.envelope.payloadType]
  if (kind === undefined) {
    throw new RbqError('PAYLOAD_TYPE_UNKNOWN', `${root}.envelope.payloadType: unknown type "${frame.envelope.payloadType.slice(0, 80)}"`, {
      field: `${root}.envelope.payloadType`
    })
  }
  const signature = fromBase64(entry.sig, `${root}.envelope.signatures[0].sig`)
  if (signature.length !== 64) {
    throw new RbqError('SIGNATURE_INVALID', `${root}.envelope.signatures[0].sig: an Ed25519 signature is 64 bytes, got ${signature.length}`, {
      field: `${root}.envelope.signatures[0].sig`
    })
  }
  const payload = fromBase64(frame.envelope.payload, `${root}.envelope.payload`)
  if (kind !== 'equivocation' && payload.length > MAX_STATEMENT_PAYLOAD_BYTES) {
    throw new RbqError('INPUT_TOO_LARGE', `${root}.envelope.payload: ${payload.length} bytes exceeds the ${MAX_STATEMENT_PAYLOAD_BYTES}-byte statement limit`, {
      field: `${root}.envelope.payload`
    })
  }
  return { id: frameId(bytes), bytes, frame, kind, signer, payload, signature }
}

/** The bytes the signature covers (for batch verification elsewhere). */
export function signedMessage(parsed: ParsedFrame): Uint8Array {
  return pae(parsed.frame.envelope.payloadType, parsed.payload)
}

export function checkSignature(parsed: ParsedFrame, root = 'frame'): void {
  if (!verifyBytes(parsed.signer, signedMessage(parsed), parsed.signature)) {
    throw new RbqError('SIGNATURE_INVALID', `${root}.envelope.signatures[0].sig: signature does not verify`, {
      field: `${root}.envelope.signatures[0].sig`
    })
  }
}

/**
 * Parses and checks the statement of a frame whose signature the caller has verified
 * (checkSignature, or a worker running the same rule). Never call it on an unverified frame.
 */
export function openFrame(parsed: ParsedFrame, root = 'frame'): VerifiedFrame {
  const field = `${root}.payload`
  const value = parseCanonicalJson(parsed.payload, field)
  const payloadDigest = sha256Hex(parsed.payload)
  const { kind, ...rest } = parsed
  switch (kind) {
    case 'attestation': {
      const statement = rebuildStatementChecker.check(value, field)
      checkRebuildSemantics(statement, parsed.signer.keyid, field)
      return { ...rest, kind, statement, payloadDigest }
    }
    case 'delegation': {
      const statement = delegationStatementChecker.check(value, field)
      checkDelegationSemantics(statement, parsed.signer.keyid, field)
      return { ...rest, kind, statement, payloadDigest }
    }
    case 'equivocation': {
      const statement = equivocationStatementChecker.check(value, field)
      const proof = checkEquivocation(statement, field)
      return { ...rest, kind, statement, proof, payloadDigest }
    }
  }
}

/** Full decode: parse, verify the signature, open the statement. */
export function decodeFrame(bytes: Uint8Array, root = 'frame'): VerifiedFrame {
  const parsed = parseFrame(bytes, root)
  checkSignature(parsed, root)
  return openFrame(parsed, root)
}

/**
 * Re-opens a frame that this node decoded in full (decodeFrame) before storing it: the
 * signature and the canonical-form, schema and semantic checks are not repeated, which makes
 * reading stored frames several times cheaper. Only for bytes read back from the node's own
 * store; anything from outside goes through decodeFrame.
 */
export function openStoredFrame(bytes: Uint8Array): VerifiedFrame {
  const frame = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as Frame
  const kind = KIND_BY_PAYLOAD_TYPE[frame.envelope.payloadType]
  const entry = frame.envelope.signatures[0]
  if (kind === undefined || entry === undefined) throw new RbqError('STORE_ERROR', 'stored frame is not a frame this node stores')
  const payload = new Uint8Array(Buffer.from(frame.envelope.payload, 'base64'))
  const common = {
    id: frameId(bytes),
    bytes,
    frame,
    signer: parsePublicKey(frame.publicKey),
    payload,
    signature: new Uint8Array(Buffer.from(entry.sig, 'base64')),
    payloadDigest: sha256Hex(payload)
  }
  const statement = JSON.parse(Buffer.from(payload).toString('utf8')) as unknown
  switch (kind) {
    case 'attestation':
      return { ...common, kind, statement: statement as RebuildStatement }
    case 'delegation':
      return { ...common, kind, statement: statement as DelegationStatement }
    case 'equivocation': {
      const s = statement as EquivocationStatement
      const a = openStoredFrame(encodeFrame(s.a)) as AttestationFrame
      const b = openStoredFrame(encodeFrame(s.b)) as AttestationFrame
      return { ...common, kind, statement: s, proof: { keyid: a.signer.keyid, seq: a.statement.predicate.builder.seq, a, b } }
    }
  }
}

/**
 * A proof is valid when both embedded frames verify as attestations by the same key with the
 * same seq and different payloads, and `a` sorts before `b` by frame id (one spelling per pair).
 */
function checkEquivocation(s: EquivocationStatement, root: string): EquivocationEvidence {
  const a = decodeFrame(encodeFrame(s.a), `${root}.a`)
  const b = decodeFrame(encodeFrame(s.b), `${root}.b`)
  const fail = (why: string) => new RbqError('EQUIVOCATION_INVALID', `${root}: ${why}`, { field: root })
  if (a.kind !== 'attestation' || b.kind !== 'attestation') throw fail('both frames must be rebuild attestations')
  if (a.signer.keyid !== b.signer.keyid) throw fail('the frames are signed by different keys')
  const seq = a.statement.predicate.builder.seq
  if (seq !== b.statement.predicate.builder.seq) throw fail('the frames carry different seq numbers')
  if (a.payloadDigest === b.payloadDigest) throw fail('the frames carry the same statement')
  if (!(a.id < b.id)) throw fail('frame "a" must sort before frame "b" by frame id')
  return { keyid: a.signer.keyid, seq, a, b }
}

// --- signing -----------------------------------------------------------------------------

/**
 * Signs a statement into a frame and decodes the result with the receiver's rules, so this
 * node can never emit a frame its peers would reject.
 */
export function signStatement(key: SigningKey, kind: StatementKind, statement: unknown): VerifiedFrame {
  const payload = canonicalBytes(statement)
  const frame: Frame = { v: 1, publicKey: key.publicKey.text, envelope: signEnvelope(key, PAYLOAD_TYPE_BY_KIND[kind], payload) }
  return decodeFrame(encodeFrame(frame))
}

export function signAttestation(key: SigningKey, statement: RebuildStatement): AttestationFrame {
  return signStatement(key, 'attestation', statement) as AttestationFrame
}

export function signDelegation(key: SigningKey, statement: DelegationStatement): DelegationFrame {
  return signStatement(key, 'delegation', statement) as DelegationFrame
}

/** Two attestations equivocate when one key signed different statements with the same seq. */
export function isEquivocation(x: AttestationFrame, y: AttestationFrame): boolean {
  return (
    x.signer.keyid === y.signer.keyid &&
    x.statement.predicate.builder.seq === y.statement.predicate.builder.seq &&
    x.payloadDigest !== y.payloadDigest
  )
}

/** Builds the self-contained proof from two conflicting attestations (any order). */
export function signEquivocationProof(key: SigningKey, x: AttestationFrame, y: AttestationFrame): EquivocationFrame {
  const [a, b] = x.id < y.id ? [x, y] : [y, x]
  return signStatement(key, 'equivocation', { _type: STATEMENT_TYPE_EQUIVOCATION, a: a.frame, b: b.frame }) as EquivocationFrame
}

/** Text form of a frame (canonical JSON), e.g. for files and JSONL. */
export function frameText(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
}
