import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { decodeFrame, generateSigningKey, type SigningKey } from '../../../../protocol/index.js'
import { Store } from '../../../../node/db/store.js'
import { StatementSigner } from '../../../../identity/statement-signer.js'
import { IngestPipeline } from '../../../../node/ingest/ingest-pipeline.js'
import { Publisher } from '../../../../node/ingest/publisher.js'
import { attestationContentFor, publishRebuild, signRebuildResult } from '../../../../node/rebuild/rebuild-statement.js'
import type { RebuildResult } from '../../../../node/rebuild/rebuild-types.js'
import { SOFTWARE } from '../../../../common/version.js'
import { makeTempDir } from '../../../utils/tmp.js'

const h = (c: string) => c.repeat(64)

function result(over: Partial<RebuildResult> = {}): RebuildResult {
  return {
    package: 'pkg:deb/debian/hello@2.10-3?arch=source',
    outcome: 'mismatch',
    artifacts: [
      { name: 'hello_2.10-3_amd64.deb', sha256: h('a'), size: 10, path: '/x/hello_2.10-3_amd64.deb' },
      { name: 'hello-doc_2.10-3_all.deb', sha256: h('b'), size: 11, path: '/x/hello-doc_2.10-3_all.deb' }
    ],
    upstream: [
      { name: 'hello_2.10-3_amd64.deb', sha256: h('c') },
      { name: 'hello-doc_2.10-3_all.deb', sha256: h('b') }
    ],
    inputs: { sha256: h('d'), materials: [{ uri: 'http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3.dsc', sha256: h('e') }] },
    backend: 'debian',
    startedOn: new Date('2025-01-01T00:00:00.123Z'),
    finishedOn: new Date('2025-01-01T00:05:00Z'),
    log: { path: '/x/build.log', sha256: h('f'), size: 1234 },
    diff: { tags: ['build-id', 'Not A Tag', 'build-id', 'timestamps'], summary: 'x'.repeat(5000) },
    ...over
  }
}

let dir: string
let cleanup: () => Promise<void>
let key: SigningKey
beforeEach(async () => {
  ;({ dir, cleanup } = await makeTempDir())
  key = generateSigningKey()
})
afterEach(() => cleanup())

describe('attestationContentFor', () => {
  it('maps a result to statement content, cutting the diff to the wire limits', () => {
    const init = attestationContentFor(result())
    expect(init).toMatchObject({
      package: 'pkg:deb/debian/hello@2.10-3?arch=source',
      outcome: 'mismatch',
      subject: [
        { name: 'hello_2.10-3_amd64.deb', sha256: h('a') },
        { name: 'hello-doc_2.10-3_all.deb', sha256: h('b') }
      ],
      upstream: [
        { name: 'hello_2.10-3_amd64.deb', sha256: h('c') },
        { name: 'hello-doc_2.10-3_all.deb', sha256: h('b') }
      ],
      inputs: { sha256: h('d'), materials: [{ uri: 'http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3.dsc', sha256: h('e') }] },
      backend: 'debian',
      log: { sha256: h('f'), size: 1234 }
    })
    expect(init.diff?.tags).toEqual(['build-id', 'timestamps'])
    expect(Array.from(init.diff?.summary ?? '').length).toBe(2048)
    expect(attestationContentFor(result({ diff: undefined })).diff).toBeUndefined()
  })

  it('carries the build environment when the builder states one, and none otherwise (recipes)', async () => {
    expect(attestationContentFor(result({ environment: 'faithful' })).environment).toBe('faithful')
    expect(attestationContentFor(result({ environment: 'current', environmentNote: 'gcc-12 12.2.0-14 not found' })).environment).toBe('current')
    expect('environment' in attestationContentFor(result())).toBe(false)
    const signer = new StatementSigner(key, join(dir, 'env.seq'))
    expect((await signRebuildResult(result({ environment: 'faithful' }), signer)).statement.predicate.environment).toBe('faithful')
    expect((await signRebuildResult(result(), signer)).statement.predicate.environment).toBeUndefined()
  })
})

describe('signRebuildResult', () => {
  it('signs a frame peers accept, with the next persisted seq and SOFTWARE', async () => {
    const signer = new StatementSigner(key, join(dir, 'signing.key.seq'))
    const frame = await signRebuildResult(result(), signer)
    const decoded = decodeFrame(frame.bytes)
    expect(decoded.kind).toBe('attestation')
    const p = frame.statement.predicate
    expect(p.builder).toEqual({ id: key.publicKey.keyid, seq: 1, backend: 'debian', software: SOFTWARE })
    expect(p.startedOn).toBe('2025-01-01T00:00:00Z')
    expect(p.log).toEqual({ digest: { sha256: h('f') }, size: 1234 })
    expect(frame.statement.subject.map((s) => s.name)).toEqual(['hello_2.10-3_amd64.deb', 'hello-doc_2.10-3_all.deb'])
    expect((await signRebuildResult(result(), signer)).statement.predicate.builder.seq).toBe(2)
    expect(await signer.lastSeq()).toBe(2)
  })

  it('a failed result has the source descriptor as subject', async () => {
    const signer = new StatementSigner(key, join(dir, 'seq'))
    const failed = result({
      outcome: 'failed',
      artifacts: [{ name: 'hello_2.10-3.dsc', sha256: h('e'), size: 1, path: '/x/hello_2.10-3.dsc' }],
      upstream: [],
      diff: undefined,
      failure: { reason: 'dpkg-buildpackage exited with 2', transient: false }
    })
    const frame = await signRebuildResult(failed, signer)
    expect(frame.statement.subject).toEqual([{ name: 'hello_2.10-3.dsc', digest: { sha256: h('e') } }])
    expect(frame.statement.predicate.outcome).toBe('failed')
  })

  it('refuses a self-contradicting or oversized result without burning a seq', async () => {
    const signer = new StatementSigner(key, join(dir, 'seq'))
    const allEqual = result({ upstream: [{ name: 'hello_2.10-3_amd64.deb', sha256: h('a') }, { name: 'hello-doc_2.10-3_all.deb', sha256: h('b') }] })
    await expect(signRebuildResult(allEqual, signer)).rejects.toMatchObject({ code: 'SCHEMA_INVALID' }) // "mismatch" with nothing differing
    const many = result({
      outcome: 'built',
      upstream: [],
      artifacts: Array.from({ length: 65 }, (_, i) => ({ name: `a${i}`, sha256: h('a'), size: 1, path: '/x' }))
    })
    await expect(signRebuildResult(many, signer)).rejects.toMatchObject({ code: 'INPUT_TOO_LARGE' })
    const big = result({
      outcome: 'built',
      upstream: [],
      artifacts: Array.from({ length: 60 }, (_, i) => ({ name: `${'n'.repeat(200)}${i}`, sha256: h('a'), size: 1, path: '/x' }))
    })
    await expect(signRebuildResult(big, signer)).rejects.toThrow(/over the 16384-byte limit/)
    expect(await signer.lastSeq()).toBe(0)
  })
})

describe('publishRebuild', () => {
  it("goes through the node's Publisher: seq reserved, frame stored and announced", async () => {
    const store = await Store.open(join(dir, 'db'))
    const signer = new StatementSigner(key, join(dir, 'signing.key.seq'))
    const pipeline = new IngestPipeline({ store }, { signer, workers: 0 })
    await pipeline.start()
    const publisher = new Publisher({ pipeline, store, signer })
    await publisher.start()
    const announced: string[] = []
    publisher.on('published', (f) => announced.push(f.id))
    try {
      const frame = await publishRebuild(result(), publisher)
      expect(frame.statement.predicate.builder.seq).toBe(1)
      expect(announced).toEqual([frame.id])
      expect(await store.count('attestation')).toBe(1)
      // the same seq file as `rbq rebuild --out` uses: one counter per key
      expect((await signRebuildResult(result(), new StatementSigner(key, join(dir, 'signing.key.seq')))).statement.predicate.builder.seq).toBe(2)
    } finally {
      await pipeline.stop()
      await store.close()
    }
  })
})
