/**
 * Rebuild requests (SPEC.md §10): the pure decoder's REJECT checks and the node's IGNORE checks
 * (freshness, duplicates, per-key rate), through the topic validator gossip calls.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import {
  canonicalBytes,
  decodeRebuildRequest,
  encodeRebuildRequest,
  generateSigningKey,
  MAX_REBUILD_REQUEST_BYTES,
  parseFrame,
  utf8
} from '../../../../protocol/index.js'
import { silentLogger } from '../../../../common/logger.js'
import { StatementSigner } from '../../../../identity/statement-signer.js'
import { RebuildRequests } from '../../../../node/p2p/demand.js'
import { attestation } from '../../../utils/frames.js'

const from = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
const PURL = 'pkg:deb/debian/hello@2.10-3?arch=source'
const T = Date.parse('2026-06-01T12:00:00Z')

/** A rebuild request carries no seq: the signer's seq file (a path under no directory) is never touched. */
const signerOf = (key = generateSigningKey()) => new StatementSigner(key, '/nonexistent/rbq-demand-test/signing.key.seq')

function requests(init: { now?: () => number; perKeyPerHour?: number } = {}, signer = signerOf()) {
  const seen: string[] = []
  const r = new RebuildRequests({ signer, logger: silentLogger() }, { now: () => T, ...init })
  r.onRequest((req) => seen.push(req.purl))
  return { r, seen }
}

describe('decodeRebuildRequest (REJECT: the sender sent something invalid)', () => {
  const key = generateSigningKey()

  it('round-trips: requester key id, canonical purl, time in whole seconds; the payload type keeps it out of parseFrame', () => {
    const bytes = encodeRebuildRequest(key, PURL, new Date(T + 750))
    expect(decodeRebuildRequest(bytes)).toMatchObject({ requester: key.publicKey.keyid, purl: PURL, requestedAt: T })
    expect(() => parseFrame(bytes)).toThrow(expect.objectContaining({ code: 'PAYLOAD_TYPE_UNKNOWN' }))
  })

  it('refuses: oversize, non-canonical bytes, a statement frame, a bad signature, a non-canonical purl', () => {
    const good = encodeRebuildRequest(key, PURL, new Date(T))
    const frame = JSON.parse(Buffer.from(good).toString('utf8'))
    expect(() => decodeRebuildRequest(new Uint8Array(MAX_REBUILD_REQUEST_BYTES + 1))).toThrow(expect.objectContaining({ code: 'INPUT_TOO_LARGE' }))
    expect(() => decodeRebuildRequest(utf8(JSON.stringify(frame, null, 1)))).toThrow(expect.objectContaining({ code: 'NOT_CANONICAL' }))
    expect(() => decodeRebuildRequest(attestation(key, 1).bytes)).toThrow(expect.objectContaining({ code: 'TOPIC_MISMATCH' }))
    const otherKey = generateSigningKey()
    const forged = canonicalBytes({ ...frame, publicKey: otherKey.publicKey.text, envelope: { ...frame.envelope, signatures: [{ ...frame.envelope.signatures[0], keyid: otherKey.publicKey.keyid }] } })
    expect(() => decodeRebuildRequest(forged)).toThrow(expect.objectContaining({ code: 'SIGNATURE_INVALID' }))
    expect(() => encodeRebuildRequest(key, 'pkg:DEB/debian/hello')).toThrow(expect.objectContaining({ code: 'PURL_INVALID' }))
  })
})

describe('RebuildRequests.validate (the topic validator)', () => {
  it('accepts a fresh request and hands it to the pipeline; the same again is a duplicate (IGNORE)', async () => {
    const { r, seen } = requests()
    const bytes = encodeRebuildRequest(generateSigningKey(), PURL, new Date(T))
    expect(await r.validate(bytes, from)).toEqual({ result: 'accept' })
    await new Promise((resolve) => setImmediate(resolve))
    expect(seen).toEqual([PURL])
    expect(await r.validate(bytes, from)).toMatchObject({ result: 'ignore', error: { code: 'DUPLICATE' } })
  })

  it('rejects garbage; ignores a stale or future request and a key over its rate', async () => {
    const { r } = requests({ perKeyPerHour: 2 })
    expect(await r.validate(utf8('{"v":1}'), from)).toMatchObject({ result: 'reject', error: { code: 'SCHEMA_INVALID' } })
    const key = generateSigningKey()
    expect(await r.validate(encodeRebuildRequest(key, PURL, new Date(T - 11 * 60_000)), from)).toMatchObject({ result: 'ignore', error: { code: 'REQUEST_STALE' } })
    expect(await r.validate(encodeRebuildRequest(key, PURL, new Date(T + 11 * 60_000)), from)).toMatchObject({ result: 'ignore', error: { code: 'REQUEST_STALE' } })
    expect((await r.validate(encodeRebuildRequest(key, 'pkg:generic/a@1', new Date(T)), from)).result).toBe('accept')
    expect((await r.validate(encodeRebuildRequest(key, 'pkg:generic/b@1', new Date(T)), from)).result).toBe('accept')
    expect(await r.validate(encodeRebuildRequest(key, 'pkg:generic/c@1', new Date(T)), from)).toMatchObject({ result: 'ignore', error: { code: 'QUOTA_EXCEEDED' } })
    // Another key has its own rate.
    expect((await r.validate(encodeRebuildRequest(generateSigningKey(), 'pkg:generic/c@1', new Date(T)), from)).result).toBe('accept')
  })

  it("this node's own requests are signed by its signer, in the wire format peers decode, with no seq reserved", async () => {
    const key = generateSigningKey()
    const signer = signerOf(key)
    const { r } = requests({}, signer)
    const own = r.encode(PURL)
    expect(own).toMatchObject({ requester: key.publicKey.keyid, purl: PURL, requestedAt: T })
    expect(own.bytes).toEqual(encodeRebuildRequest(key, PURL, new Date(T)))
    expect(await signer.lastSeq()).toBe(0)
  })

  it("this node's own requests count against the same rate: the sender refuses what peers would ignore", () => {
    const { r } = requests({ perKeyPerHour: 1 })
    expect(r.encode(PURL).purl).toBe(PURL)
    expect(() => r.encode(PURL)).toThrow(expect.objectContaining({ code: 'DUPLICATE' }))
    expect(() => r.encode('pkg:generic/other@1')).toThrow(expect.objectContaining({ code: 'QUOTA_EXCEEDED' }))
  })
})
