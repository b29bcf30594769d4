import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SOFTWARE } from '../../../../common/version.js'
import { generateSigningKey, isRbqError, type AttestationContent, type VerifiedFrame } from '../../../../protocol/index.js'
import { makeTempDir } from '../../../utils/tmp.js'
import { rebuildContent } from '../../../utils/frames.js'
import { seqFileFor } from '../../../../identity/seq-counter.js'
import { frameBytes } from '../../../utils/store-reads.js'
import { startPublishingParts, type PublishingParts } from '../../../utils/publishing-parts.js'

const key = generateSigningKey()
const other = generateSigningKey()

let dir: string
let cleanup: () => Promise<void>
let node: (PublishingParts & { published: VerifiedFrame[] }) | undefined

beforeEach(async () => {
  ;({ dir, cleanup } = await makeTempDir('rbq-publisher-'))
})
afterEach(async () => {
  await stopNode()
  await cleanup()
})

/** The parts of a node that publish: store, pipeline, publisher (a restart = stopNode + startNode). */
async function startNode() {
  const parts = await startPublishingParts(dir, key)
  const published: VerifiedFrame[] = []
  parts.publisher.on('published', (f) => published.push(f))
  node = { ...parts, published }
  return node
}

async function stopNode(): Promise<void> {
  await node?.stop()
  node = undefined
}

const rebuild = (n: number): AttestationContent => rebuildContent(n)

describe('Publisher', () => {
  it('signs attestations with increasing seqs, stores them, then announces them', async () => {
    const { publisher, store, published } = await startNode()
    const a = await publisher.attest(rebuild(1))
    const b = await publisher.attest(rebuild(2))
    expect([a.statement.predicate.builder.seq, b.statement.predicate.builder.seq]).toEqual([1, 2])
    expect(a.statement.predicate.builder).toMatchObject({ id: key.publicKey.keyid, backend: 'debian', software: SOFTWARE })
    expect(published.map((f) => f.id)).toEqual([a.id, b.id])
    expect(await frameBytes(store, b.id)).toEqual(b.bytes)
    expect((await store.seqSummary()).get(key.publicKey.keyid)).toBe(2)
  })

  it('continues above the last persisted seq after a restart', async () => {
    await (await startNode()).publisher.attest(rebuild(1))
    await node!.publisher.attest(rebuild(2))
    await stopNode()
    const { publisher, store } = await startNode()
    const c = await publisher.attest(rebuild(3))
    expect(c.statement.predicate.builder.seq).toBe(3)
    expect(await store.count('attestation')).toBe(3)
  })

  it('continues above the store when the seq file was lost', async () => {
    await (await startNode()).publisher.attest(rebuild(1))
    await node!.publisher.attest(rebuild(2))
    await stopNode()
    await rm(seqFileFor(join(dir, 'signing.key')))
    const { publisher } = await startNode()
    expect((await publisher.attest(rebuild(3))).statement.predicate.builder.seq).toBe(3)
  })

  it('persists the seq before signing: a failed store write burns the seq, never reuses it', async () => {
    const { publisher, store, published } = await startNode()
    const first = await publisher.attest(rebuild(1))
    const level = store.sublevel('meta').db
    const diskFull = () => {
      throw new Error('ENOSPC: no space left on device')
    }
    level.hooks.prewrite.add(diskFull)
    const failed = await publisher.attest(rebuild(2)).catch((e: unknown) => e)
    expect(isRbqError(failed, 'STORE_ERROR')).toBe(true)
    expect(JSON.parse(await readFile(seqFileFor(join(dir, 'signing.key')), 'utf8'))).toEqual({ keyid: key.publicKey.keyid, lastSeq: 2 })
    level.hooks.prewrite.delete(diskFull)
    const next = await publisher.attest(rebuild(2))
    expect(next.statement.predicate.builder.seq).toBe(3)
    expect(published.map((f) => f.id)).toEqual([first.id, next.id])
  })

  it('publishes delegations; re-signing the same one returns the stored frame', async () => {
    const { publisher, store, published } = await startNode()
    const init = {
      delegate: { keyid: other.publicKey.keyid, publicKey: other.publicKey.text },
      name: 'builder-2',
      scope: ['pkg:deb/debian/*'],
      maxDepth: 0,
      version: 1,
      expires: new Date('2030-01-01T00:00:00Z'),
      revoked: false
    }
    const { frame: d, status } = await publisher.delegate(init)
    expect(status).toBe('stored')
    expect(d.statement.delegator).toBe(key.publicKey.keyid)
    expect(await publisher.delegate(init)).toMatchObject({ status: 'duplicate', frame: { id: d.id } })
    expect(published.map((f) => f.id)).toEqual([d.id])
    expect(await store.delegationIdsByDelegate(other.publicKey.keyid)).toEqual([d.id])
  })
})
