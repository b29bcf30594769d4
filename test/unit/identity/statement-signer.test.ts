import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SOFTWARE } from '../../../common/version.js'
import { seqFileFor } from '../../../identity/seq-counter.js'
import { saveKey } from '../../../identity/signing-key.js'
import { StatementSigner } from '../../../identity/statement-signer.js'
import { decodeFrame, decodeRebuildRequest, encodeRebuildRequest, generateSigningKey, isEquivocation, type AttestationContent, type DelegationContent, type PublicKey, type SigningKey } from '../../../protocol/index.js'
import { makeTempDir } from '../../utils/tmp.js'
import { hex64, PKG, rebuildContent } from '../../utils/frames.js'

let dir: string
let cleanup: () => Promise<void>
let key: SigningKey
let seqFile: string

beforeEach(async () => {
  ;({ dir, cleanup } = await makeTempDir('rbq-signer-'))
  key = generateSigningKey()
  seqFile = join(dir, 'signing.key.seq')
})
afterEach(() => cleanup())

const content = (n: number, over: Partial<AttestationContent> = {}): AttestationContent => rebuildContent(n, { backend: 'recipe', ...over })

/** A valid delegation from the signer's key to `delegate`, for Debian packages, until 2099. */
function delegationTo(delegate: PublicKey): DelegationContent {
  return { delegate: { keyid: delegate.keyid, publicKey: delegate.text }, name: 'buildd', scope: ['pkg:deb/debian/*'], maxDepth: 0, version: 1, expires: new Date('2099-01-01T00:00:00Z'), revoked: false }
}

const seqOf = (f: { statement: { predicate: { builder: { seq: number } } } }) => f.statement.predicate.builder.seq

describe('StatementSigner', () => {
  it('fills builder in: its key id, the next seq, the backend and SOFTWARE; peers accept the frame', async () => {
    const signer = new StatementSigner(key, seqFile)
    const frame = await signer.attest(content(1))
    expect(frame.statement.predicate.builder).toEqual({ id: key.publicKey.keyid, seq: 1, backend: 'recipe', software: SOFTWARE })
    expect(decodeFrame(frame.bytes).kind).toBe('attestation')
    expect(frame.signer.keyid).toBe(key.publicKey.keyid)
    // the seq is persisted (before signing) in the key's seq file
    expect(JSON.parse(await readFile(seqFile, 'utf8'))).toEqual({ keyid: key.publicKey.keyid, lastSeq: 1 })
  })

  it('continues the sequence across restarts (a new signer over the same files)', async () => {
    const first = new StatementSigner(key, seqFile)
    expect([seqOf(await first.attest(content(1))), seqOf(await first.attest(content(2)))]).toEqual([1, 2])
    const restarted = new StatementSigner(key, seqFile)
    expect(await restarted.lastSeq()).toBe(2)
    expect(seqOf(await restarted.attest(content(3)))).toBe(3)
  })

  it('never gives one seq twice to concurrent callers, whether they share a signer or not', async () => {
    // Two signers over one seq file stand for the node and an offline CLI: they meet at the lock file.
    const node = new StatementSigner(key, seqFile)
    const cli = new StatementSigner(key, seqFile)
    const frames = await Promise.all(Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? node : cli).attest(content(i))))
    const seqs = frames.map(seqOf).sort((a, b) => a - b)
    expect(seqs).toEqual(Array.from({ length: 24 }, (_, i) => i + 1))
    expect(await node.lastSeq()).toBe(24)
  })

  it('reserves one block for a batch: consecutive seqs in order, after any other signer', async () => {
    const signer = new StatementSigner(key, seqFile)
    await signer.attest(content(0))
    const frames = await signer.attestAll([content(1), content(2), content(3)])
    expect(frames.map(seqOf)).toEqual([2, 3, 4])
    expect(frames.every((f) => decodeFrame(f.bytes).kind === 'attestation')).toBe(true)
    expect(await signer.attestAll([])).toEqual([])
    expect(await signer.lastSeq()).toBe(4)
  })

  it('refuses what receivers would refuse before reserving a seq', async () => {
    const signer = new StatementSigner(key, seqFile)
    // `reproduced` with nothing to compare against contradicts itself
    await expect(signer.attest(content(1, { outcome: 'reproduced' }))).rejects.toMatchObject({ code: 'SCHEMA_INVALID' })
    const big = content(1, { subject: Array.from({ length: 60 }, (_, i) => ({ name: `${'n'.repeat(200)}${i}`, sha256: hex64(i) })) })
    await expect(signer.attest(big)).rejects.toMatchObject({ code: 'INPUT_TOO_LARGE', message: expect.stringMatching(/over the 16384-byte limit/) })
    await expect(signer.attestAll([content(1), content(2, { package: 'not a purl' })])).rejects.toMatchObject({ code: 'PURL_INVALID' })
    expect(await signer.lastSeq()).toBe(0)
  })

  it('takes an explicit seq only above every seq used so far', async () => {
    const signer = new StatementSigner(key, seqFile)
    expect(seqOf(await signer.attest(content(1), { seq: 10 }))).toBe(10)
    await expect(signer.attest(content(2), { seq: 10 })).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/not above 10/) })
    expect(seqOf(await signer.attest(content(2)))).toBe(11)
  })

  it('moves the counter up to a seq found elsewhere (the store), never down', async () => {
    const signer = new StatementSigner(key, seqFile)
    expect(await signer.continueAbove(7)).toBe(true)
    expect(await signer.continueAbove(3)).toBe(false)
    expect(seqOf(await signer.attest(content(1)))).toBe(8)
  })

  it('signs delegations from its key', () => {
    const signer = new StatementSigner(key, seqFile)
    const delegate = generateSigningKey().publicKey
    const frame = signer.delegate(delegationTo(delegate))
    expect(decodeFrame(frame.bytes).kind).toBe('delegation')
    expect(frame.statement.delegator).toBe(key.publicKey.keyid)
    expect(() => signer.delegate({ ...frame.statement, delegate: { keyid: key.publicKey.keyid, publicKey: key.publicKey.text }, expires: new Date('2099-01-01') })).toThrow(/itself/)
  })

  it('refuses a delegation receivers would refuse, or one already expired (not a revocation), before signing', async () => {
    const signer = new StatementSigner(key, seqFile)
    const delegate = generateSigningKey().publicKey
    const good = delegationTo(delegate)
    const cases: [object, string, string][] = [
      [{ maxDepth: 9 }, 'SCHEMA_INVALID', 'delegation.maxDepth'],
      [{ scope: ['debian/*'] }, 'PATTERN_INVALID', 'delegation.scope[0]'],
      [{ name: '' }, 'SCHEMA_INVALID', 'delegation.name'],
      [{ delegate: { keyid: key.publicKey.keyid, publicKey: key.publicKey.text } }, 'SCHEMA_INVALID', 'delegation.delegate'],
      [{ delegate: { keyid: 'a'.repeat(64), publicKey: delegate.text } }, 'KEYID_MISMATCH', 'delegation.delegate.keyid'],
      [{ expires: new Date('2026-01-01T00:00:00Z') }, 'SCHEMA_INVALID', 'expires']
    ]
    const now = new Date('2026-06-01T00:00:00Z')
    for (const [over, code, field] of cases) {
      expect(() => signer.checkDelegation({ ...good, ...over }, now), JSON.stringify(over)).toThrow(expect.objectContaining({ code, field }))
    }
    // A revocation may carry an expiry in the past (it copies the delegation it revokes).
    expect(signer.checkDelegation({ ...good, expires: new Date('2026-01-01T00:00:00Z'), revoked: true }, now)).toMatchObject({ revoked: true, expires: '2026-01-01T00:00:00Z' })
    expect(() => signer.delegate({ ...good, expires: new Date('2001-01-01T00:00:00Z') })).toThrow(/in the past/)
    expect(await signer.lastSeq()).toBe(0)
  })

  it('signs rebuild requests in the wire format of protocol/rebuild-request.ts, with no seq', async () => {
    const signer = new StatementSigner(key, seqFile)
    const at = new Date('2026-06-01T12:00:00.750Z')
    const bytes = signer.rebuildRequest(PKG, at)
    expect(bytes).toEqual(encodeRebuildRequest(key, PKG, at))
    expect(decodeRebuildRequest(bytes)).toMatchObject({ requester: key.publicKey.keyid, purl: PKG, requestedAt: Date.parse('2026-06-01T12:00:00Z') })
    expect(await signer.lastSeq()).toBe(0)
  })

  it('signs equivocation proofs (no seq involved)', async () => {
    const liarKey = generateSigningKey()
    const liar = new StatementSigner(liarKey, join(dir, 'liar.seq'))
    const a = await liar.attest(content(1), { seq: 5 })
    const liarAgain = new StatementSigner(liarKey, join(dir, 'liar-lost-its-seq-file.seq'))
    const b = await liarAgain.attest(content(2), { seq: 5 })
    expect(isEquivocation(a, b)).toBe(true)
    const reporter = new StatementSigner(key, seqFile)
    const proof = reporter.equivocationProof(b, a)
    const decoded = decodeFrame(proof.bytes)
    expect(decoded.kind).toBe('equivocation')
    expect(proof.signer.keyid).toBe(key.publicKey.keyid)
    expect(proof.proof.keyid).toBe(liar.keyid)
    expect(await reporter.lastSeq()).toBe(0)
  })

  it('reads a key file with its seq file beside it', async () => {
    const keyFile = join(dir, 'node.key')
    await saveKey(keyFile, key)
    const signer = await StatementSigner.fromKeyFile(keyFile)
    expect(signer.keyid).toBe(key.publicKey.keyid)
    expect(signer.seqFile).toBe(seqFileFor(keyFile))
    await signer.attest(content(1))
    expect(await new StatementSigner(key, seqFileFor(keyFile)).lastSeq()).toBe(1)
  })
})
