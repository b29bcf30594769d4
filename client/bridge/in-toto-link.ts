/**
 * rebuilderd's signed attestations, as its daemon (daemon/src/attestation.rs, built on in-toto-rs)
 * stores and serves them at `GET /api/v1/builds/{build_id}/artifacts/{artifact_id}/attestation`
 * (v0: `GET /api/v0/builds/{build_id}/attestation`, the build's first artifact):
 *
 *   in-toto *link* metadata in the classic Metablock form — not DSSE:
 *   { "signatures": [ { "keyid": "<hex>", "sig": "<hex>" } ],
 *     "signed": { "_type": "link", "name": "rebuild hello_2.10-3_amd64.deb",
 *                 "materials": { "<x>.buildinfo": { "sha256": …, "sha512": … } },
 *                 "products": { "hello_2.10-3_amd64.deb": { "sha256": …, "sha512": … } },
 *                 "byproducts": {}, "command": [], "environment": null } }
 *
 * - Signature: Ed25519 (in-toto-rs `SignatureScheme::Ed25519`), hex, over the canonical JSON of
 *   `signed` (in-toto-rs's form: object keys sorted bytewise, no whitespace, integers only) in
 *   which every `\n` escape is then replaced by a raw newline — in-toto-rs does that before
 *   signing and verifying, so we do too.
 * - Keys: PEM `PUBLIC KEY` blocks; in-toto-rs writes the SPKI with a NULL algorithm parameter
 *   (`302c300706032b65700500032100…`), unlike RFC 8410 (`302a300506032b6570032100…`): both are
 *   read. `GET /api/v1/meta/public-keys` (and v0 `/api/v0/public-keys`) answers
 *   `{ "current": ["-----BEGIN PUBLIC KEY-----…"] }`.
 * - Key id (what `signatures[].keyid` names): SHA-256 hex of the canonical JSON of
 *   `{"keyid_hash_algorithms":["sha256","sha512"],"keytype":"ed25519","keyval":{"public":"<hex>"},"scheme":"ed25519"}`
 *   (in-toto-rs's securesystemslib-compatible form, used for keys read from PEM); the form
 *   without `keyid_hash_algorithms` (newer securesystemslib) is accepted too.
 *
 * A transparently-signing daemon appends its own signature to the worker's, so one matching
 * signature by a pinned key is enough (threshold 1, as rebuilderd verifies).
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto'
import { parseJson, RbqError } from '../../protocol/index.js'
import { decodeUtf8 } from './list-source.js'

export interface RebuilderdKey {
  /** The raw 32-byte Ed25519 public key. */
  raw: Uint8Array
  /** in-toto key id (the securesystemslib-compatible form rebuilderd signs with). */
  keyid: string
  /** Every key id form that names this key. */
  keyids: string[]
  object: KeyObject
}

export interface VerifiedLink {
  /** The key that verified. */
  keyid: string
  name: string
  /** product name → sha256 (lower-case hex), for products that carry one. */
  products: Map<string, string>
}

const SPKI_PREFIXES = [
  Buffer.from('302c300706032b65700500032100', 'hex'), // in-toto-rs (NULL parameter)
  Buffer.from('302a300506032b6570032100', 'hex') // RFC 8410
]
const MAX_SIGNATURES = 16
const MAX_LINK_DEPTH = 8
const HEX64 = /^[0-9a-f]{64}$/

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex')
}

/** in-toto-rs's canonical JSON (interchange/cjson): sorted keys (bytewise), no whitespace, no floats. */
export function inTotoCanonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean') return JSON.stringify(value)
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new RbqError('SCHEMA_INVALID', `in-toto canonical JSON has no non-integer numbers (${value})`)
    return String(value)
  }
  if (typeof value === 'string') return JSON.stringify(value)
  if (Array.isArray(value)) return `[${value.map(inTotoCanonicalJson).join(',')}]`
  if (typeof value === 'object') {
    const keys = Object.keys(value).sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')))
    return `{${keys.map((k) => `${JSON.stringify(k)}:${inTotoCanonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`
  }
  throw new RbqError('SCHEMA_INVALID', `in-toto canonical JSON cannot encode a ${typeof value}`)
}

/** The key ids in-toto implementations give an Ed25519 key, the one rebuilderd uses first. */
export function rebuilderdKeyIds(raw: Uint8Array): string[] {
  const hex = Buffer.from(raw).toString('hex')
  const base = { keytype: 'ed25519', keyval: { public: hex }, scheme: 'ed25519' }
  return [sha256Hex(inTotoCanonicalJson({ ...base, keyid_hash_algorithms: ['sha256', 'sha512'] })), sha256Hex(inTotoCanonicalJson(base))]
}

function keyFromRaw(raw: Uint8Array): RebuilderdKey {
  const object = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' })
  const keyids = rebuilderdKeyIds(raw)
  return { raw, keyid: keyids[0]!, keyids, object }
}

/** Reads every `PUBLIC KEY` PEM block in `text` (a key file, or one entry of `current`). */
export function parseRebuilderdPublicKeys(text: string, source: string): RebuilderdKey[] {
  const blocks = [...text.matchAll(/-----BEGIN PUBLIC KEY-----([\s\S]*?)-----END PUBLIC KEY-----/g)]
  if (blocks.length === 0) throw new RbqError('KEY_INVALID', `${source}: no "PUBLIC KEY" PEM block (rebuilderd publishes its keys at /api/v1/meta/public-keys)`)
  return blocks.map((m, i) => {
    const b64 = m[1]!.replace(/\s+/g, '')
    const der = Buffer.from(b64, 'base64')
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || der.toString('base64') !== b64) throw new RbqError('KEY_INVALID', `${source}: PEM block ${i + 1} is not valid base64`)
    const prefix = SPKI_PREFIXES.find((p) => der.length === p.length + 32 && der.subarray(0, p.length).equals(p))
    if (prefix === undefined) throw new RbqError('KEY_INVALID', `${source}: PEM block ${i + 1} is not an Ed25519 public key (rebuilderd signs with Ed25519)`)
    return keyFromRaw(new Uint8Array(der.subarray(prefix.length)))
  })
}

/** `{ "current": [pem, …] }` from `/api/v1/meta/public-keys`. */
export function parsePublicKeysResponse(text: string, source: string): RebuilderdKey[] {
  const value = parseJson(text, source, 4)
  const current = typeof value === 'object' && value !== null ? (value as { current?: unknown }).current : undefined
  if (!Array.isArray(current) || current.some((p) => typeof p !== 'string' || p.length > 4096) || current.length > 64) {
    throw new RbqError('SCHEMA_INVALID', `${source}: expected { "current": ["-----BEGIN PUBLIC KEY-----…", …] }`)
  }
  return current.flatMap((pem: string, i) => parseRebuilderdPublicKeys(pem, `${source}.current[${i}]`))
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Checks a rebuilderd attestation against pinned keys: one signature by one of them must verify
 * over the link's canonical bytes. Throws SIGNATURE_INVALID (naming the key ids seen) otherwise.
 */
export function verifyRebuilderdLink(bytes: Uint8Array, keys: readonly RebuilderdKey[], source: string): VerifiedLink {
  const block = parseJson(decodeUtf8(bytes, source), source, MAX_LINK_DEPTH)
  if (!isObject(block) || !Array.isArray(block.signatures) || !isObject(block.signed)) {
    throw new RbqError('SCHEMA_INVALID', `${source}: expected an in-toto Metablock { "signatures": [...], "signed": {...} }`)
  }
  const signed = block.signed
  if (signed._type !== 'link') throw new RbqError('SCHEMA_INVALID', `${source}: signed._type is ${JSON.stringify(signed._type)}, expected "link"`)
  if (!isObject(signed.products)) throw new RbqError('SCHEMA_INVALID', `${source}: signed.products: expected an object`)
  if (block.signatures.length > MAX_SIGNATURES) throw new RbqError('SCHEMA_INVALID', `${source}: more than ${MAX_SIGNATURES} signatures`)

  // in-toto-rs: canonical bytes with `\n` escapes turned into raw newlines.
  const message = Buffer.from(inTotoCanonicalJson(signed).replaceAll('\\n', '\n'), 'utf8')
  const byId = new Map<string, RebuilderdKey>()
  for (const k of keys) for (const id of k.keyids) byId.set(id, k)
  const seen: string[] = []
  let good: RebuilderdKey | undefined
  for (const s of block.signatures) {
    if (!isObject(s) || typeof s.keyid !== 'string' || typeof s.sig !== 'string') throw new RbqError('SCHEMA_INVALID', `${source}: a signature is not { "keyid", "sig" }`)
    seen.push(s.keyid.slice(0, 64))
    const key = byId.get(s.keyid.toLowerCase())
    if (key === undefined || !/^[0-9a-fA-F]{128}$/.test(s.sig)) continue
    if (verify(null, message, key.object, Buffer.from(s.sig, 'hex'))) {
      good = key
      break
    }
  }
  if (good === undefined) {
    const pinned = keys.map((k) => k.keyid.slice(0, 16)).join(', ') || 'none'
    throw new RbqError('SIGNATURE_INVALID', `${source}: no valid signature by a pinned key (signed by ${seen.map((k) => k.slice(0, 16)).join(', ') || 'nobody'}; pinned ${pinned})`)
  }

  return { keyid: good.keyid, name: typeof signed.name === 'string' ? signed.name : '', products: productsOf(signed.products) }
}

/** product name → sha256, for the products that carry a well-formed one. */
function productsOf(products: Record<string, unknown>): Map<string, string> {
  const out = new Map<string, string>()
  for (const [name, hashes] of Object.entries(products)) {
    const sha = isObject(hashes) && typeof hashes.sha256 === 'string' ? hashes.sha256.toLowerCase() : undefined
    if (sha !== undefined && HEX64.test(sha)) out.set(name, sha)
  }
  return out
}

/** The products of a link without checking any signature: only for rows the user allowed unsigned. */
export function unverifiedLinkProducts(bytes: Uint8Array, source: string): Map<string, string> {
  let block: unknown
  try {
    block = parseJson(Buffer.from(bytes).toString('utf8'), source, MAX_LINK_DEPTH)
  } catch {
    return new Map()
  }
  return productsOf(isObject(block) && isObject(block.signed) && isObject(block.signed.products) ? block.signed.products : {})
}
