/**
 * Builds the protocol vectors deterministically (fixed keys, fixed times; Ed25519 signing is
 * deterministic), so test/vectors/*.json can be re-derived and compared byte for byte.
 */
import {
  buildDelegationStatement,
  buildRebuildStatement,
  canonicalBytes,
  frameText,
  pae,
  sha256Hex,
  signAttestation,
  signBytes,
  signDelegation,
  signEquivocationProof,
  signingKeyFromSeed,
  toBase64,
  toHex,
  utf8,
  type SigningKey,
  type VerifiedFrame
} from '../../protocol/index.js'

export function fixedKey(label: string): SigningKey {
  return signingKeyFromSeed(Buffer.from(sha256Hex(`rebuild-quorum test vector key: ${label}`), 'hex'))
}

/** The identity point (y = 1): order 1, the simplest small-order key. */
const SMALL_ORDER_KEY = 'ed25519:' + Buffer.concat([Buffer.from([1]), Buffer.alloc(31)]).toString('base64url')
const T0 = new Date('2026-01-02T03:04:05Z')
const T1 = new Date('2026-01-02T03:09:05Z')
const DEB = 'hello_2.10-3_amd64.deb'
const PKG = 'pkg:deb/debian/hello@2.10-3?arch=source'

function attestation(key: SigningKey, seq: number, outcome: 'reproduced' | 'mismatch', digest: string) {
  return buildRebuildStatement({
    package: PKG,
    subject: [{ name: DEB, sha256: digest }],
    outcome,
    upstream: [{ name: DEB, sha256: sha256Hex('upstream hello deb') }],
    inputs: { sha256: sha256Hex('inputs'), materials: [{ uri: 'https://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3.dsc', sha256: sha256Hex('dsc') }] },
    builder: { id: key.publicKey.keyid, seq, backend: 'debian', software: 'rebuild-quorum/0.1.0' },
    startedOn: T0,
    finishedOn: T1,
    log: { sha256: sha256Hex('log'), size: 1234 },
    ...(outcome === 'mismatch' ? { diff: { tags: ['build-id'], summary: 'only .note.gnu.build-id differs' } } : {})
  })
}

export interface ValidVector {
  name: string
  kind: VerifiedFrame['kind']
  frame: string // canonical frame text
  id: string
  payloadDigest: string
  paeHex: string
}

export interface InvalidVector {
  name: string
  frame: string // text as received (not necessarily canonical or valid)
  code: string
}

export interface VectorFile {
  description: string
  keys: { label: string; seed: string; publicKey: string; keyid: string }[]
  valid: ValidVector[]
  invalid: InvalidVector[]
}

function valid(name: string, f: VerifiedFrame): ValidVector {
  return {
    name,
    kind: f.kind,
    frame: frameText(f.bytes),
    id: f.id,
    payloadDigest: f.payloadDigest,
    paeHex: toHex(pae(f.frame.envelope.payloadType, Buffer.from(f.frame.envelope.payload, 'base64')))
  }
}

/** Re-encodes a frame object after `mutate`, canonically unless told otherwise. */
function mutated(f: VerifiedFrame, mutate: (o: any) => void, canonical = true): string {
  const o = JSON.parse(frameText(f.bytes))
  mutate(o)
  return canonical ? Buffer.from(canonicalBytes(o)).toString('utf8') : JSON.stringify(o)
}

export function buildVectors(): VectorFile {
  const builder = fixedKey('builder')
  const org = fixedKey('organisation')
  const reporter = fixedKey('reporter')
  const good = sha256Hex('upstream hello deb')
  const a1 = signAttestation(builder, attestation(builder, 1, 'reproduced', good))
  const a2 = signAttestation(builder, attestation(builder, 2, 'mismatch', sha256Hex('other hello deb')))
  const conflicting = signAttestation(builder, attestation(builder, 2, 'reproduced', good))
  const d1 = signDelegation(
    org,
    buildDelegationStatement({
      delegator: org.publicKey.keyid,
      delegate: { keyid: builder.publicKey.keyid, publicKey: builder.publicKey.text },
      name: 'debian-buildd-3',
      scope: ['pkg:deb/debian/*'],
      maxDepth: 0,
      version: 3,
      expires: new Date('2027-11-22T00:00:00Z'),
      revoked: false
    })
  )
  const proof = signEquivocationProof(reporter, a2, conflicting)

  const invalid: InvalidVector[] = [
    { name: 'not JSON', frame: 'not json', code: 'JSON_MALFORMED' },
    { name: 'whitespace (not canonical)', frame: mutated(a1, () => undefined, false).replace(':', ': '), code: 'NOT_CANONICAL' },
    { name: 'keys out of order (not canonical)', frame: (() => {
      const o = JSON.parse(frameText(a1.bytes))
      return JSON.stringify({ v: o.v, publicKey: o.publicKey, envelope: o.envelope })
    })(), code: 'NOT_CANONICAL' },
    { name: 'unknown version', frame: mutated(a1, (o) => (o.v = 2)), code: 'VERSION_UNSUPPORTED' },
    { name: 'unknown top-level field', frame: mutated(a1, (o) => (o.extra = true)), code: 'SCHEMA_INVALID' },
    { name: 'unknown envelope field', frame: mutated(a1, (o) => (o.envelope.extra = 1)), code: 'SCHEMA_INVALID' },
    { name: 'two signatures', frame: mutated(a1, (o) => o.envelope.signatures.push(o.envelope.signatures[0])), code: 'SCHEMA_INVALID' },
    { name: 'keyid does not match publicKey', frame: mutated(a1, (o) => (o.envelope.signatures[0].keyid = org.publicKey.keyid)), code: 'KEYID_MISMATCH' },
    { name: 'public key of another signer', frame: mutated(a1, (o) => {
      o.publicKey = org.publicKey.text
      o.envelope.signatures[0].keyid = org.publicKey.keyid
    }), code: 'SIGNATURE_INVALID' },
    { name: 'small-order public key', frame: mutated(a1, (o) => (o.publicKey = SMALL_ORDER_KEY)), code: 'KEY_SMALL_ORDER' },
    { name: 'base64 garbage in payload', frame: mutated(a1, (o) => (o.envelope.payload = 'not*base64')), code: 'BASE64_INVALID' },
    { name: 'non-canonical base64 padding bits', frame: mutated(a1, (o) => (o.envelope.payload = 'QR==')), code: 'BASE64_INVALID' },
    { name: 'signature over a different payload', frame: mutated(a1, (o) => (o.envelope.payload = a2.frame.envelope.payload)), code: 'SIGNATURE_INVALID' },
    { name: 'unknown payload type', frame: mutated(a1, (o) => (o.envelope.payloadType = 'application/json')), code: 'PAYLOAD_TYPE_UNKNOWN' },
    { name: 'payload type swapped (delegation type on attestation)', frame: mutated(a1, (o) => (o.envelope.payloadType = 'application/vnd.rebuild-quorum.delegation+json')), code: 'SIGNATURE_INVALID' },
    { name: 'oversized frame', frame: mutated(a1, (o) => (o.pad = 'x'.repeat(70_000))), code: 'INPUT_TOO_LARGE' },
    { name: 'signature of wrong length', frame: mutated(a1, (o) => (o.envelope.signatures[0].sig = toBase64(new Uint8Array(63)))), code: 'SIGNATURE_INVALID' }
  ]
  // Payload-level failures need a valid signature over the bad payload.
  const signRaw = (key: SigningKey, payloadType: string, payload: string): string => {
    const bytes = utf8(payload)
    const sig = signBytes(key, pae(payloadType, bytes))
    return Buffer.from(
      canonicalBytes({ v: 1, publicKey: key.publicKey.text, envelope: { payloadType, payload: toBase64(bytes), signatures: [{ keyid: key.publicKey.keyid, sig: toBase64(sig) }] } })
    ).toString('utf8')
  }
  const inToto = 'application/vnd.in-toto+json'
  const stmt = JSON.parse(Buffer.from(a1.frame.envelope.payload, 'base64').toString('utf8'))
  invalid.push(
    { name: 'payload not canonical', frame: signRaw(builder, inToto, JSON.stringify(stmt, null, 1)), code: 'NOT_CANONICAL' },
    { name: 'payload unknown predicate field', frame: signRaw(builder, inToto, canon({ ...stmt, predicate: { ...stmt.predicate, extra: 1 } })), code: 'SCHEMA_INVALID' },
    { name: 'builder.id is not the signer', frame: signRaw(org, inToto, canon(stmt)), code: 'SCHEMA_INVALID' },
    { name: 'reproduced but digests differ', frame: signRaw(builder, inToto, canon({ ...stmt, subject: [{ name: DEB, digest: { sha256: sha256Hex('x') } }] })), code: 'SCHEMA_INVALID' },
    { name: 'purl not canonical', frame: signRaw(builder, inToto, canon({ ...stmt, predicate: { ...stmt.predicate, package: 'pkg:deb/Debian/hello@2.10-3?arch=source' } })), code: 'PURL_INVALID' },
    { name: 'seq zero', frame: signRaw(builder, inToto, canon({ ...stmt, predicate: { ...stmt.predicate, builder: { ...stmt.predicate.builder, seq: 0 } } })), code: 'SCHEMA_INVALID' },
    { name: 'path in artifact name', frame: signRaw(builder, inToto, canon({ ...stmt, subject: [{ name: '../etc/passwd', digest: { sha256: good } }] })), code: 'SCHEMA_INVALID' },
    { name: 'equivocation proof of one statement twice', frame: mutatedProof(reporter, a1, a1), code: 'EQUIVOCATION_INVALID' },
    { name: 'equivocation proof of two different seqs', frame: mutatedProof(reporter, a1, a2), code: 'EQUIVOCATION_INVALID' }
  )
  function canon(v: unknown): string {
    return Buffer.from(canonicalBytes(v)).toString('utf8')
  }
  function mutatedProof(key: SigningKey, x: VerifiedFrame, y: VerifiedFrame): string {
    const [a, b] = x.id <= y.id ? [x, y] : [y, x]
    return signRaw(key, 'application/vnd.rebuild-quorum.equivocation+json', canon({ _type: 'https://rebuild-quorum.dev/equivocation/v1', a: a.frame, b: b.frame }))
  }

  return {
    description:
      'rebuild-quorum protocol v1 vectors. Keys: seed = SHA-256("rebuild-quorum test vector key: " + label). ' +
      'valid[].frame is the canonical frame text; id = SHA-256 of its UTF-8 bytes; paeHex = the DSSE PAE the signature covers. ' +
      'invalid[].code is the error code a conforming decoder reports first (SPEC.md, Verification order).',
    keys: [builder, org, reporter].map((k, i) => ({
      label: ['builder', 'organisation', 'reporter'][i] as string,
      seed: toHex(k.seed),
      publicKey: k.publicKey.text,
      keyid: k.publicKey.keyid
    })),
    valid: [
      valid('attestation, reproduced', a1),
      valid('attestation, mismatch with diff', a2),
      valid('attestation, same seq as the previous one (equivocating)', conflicting),
      valid('delegation', d1),
      valid('equivocation proof', proof)
    ],
    invalid
  }
}
