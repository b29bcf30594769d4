/** fast-check arbitraries for protocol objects, shared by property tests. */
import fc from 'fast-check'
import { buildRebuildStatement, canonicalPurl, type Outcome, type RebuildStatement, type SigningKey } from '../../protocol/index.js'

export const sha256Arb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'))
const nameArb = fc.stringMatching(/^[a-z0-9][a-z0-9.+_-]{0,30}$/)
export const purlArb = fc
  .tuple(fc.stringMatching(/^[a-z0-9][a-z0-9.+-]{0,20}$/), fc.stringMatching(/^[0-9][0-9a-z.+~]{0,10}$/))
  .map(([n, v]) => canonicalPurl(`pkg:deb/debian/${encodeURIComponent(n)}@${encodeURIComponent(v)}?arch=source`))
const dateArb = fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2100, 0, 1) }).map((ms) => new Date(Math.floor(ms / 1000) * 1000))

/** A valid rebuild statement signed by `key` (outcome consistent with subject/upstream). */
export function rebuildStatementArb(key: SigningKey): fc.Arbitrary<RebuildStatement> {
  return fc
    .record({
      package: purlArb,
      names: fc.uniqueArray(nameArb.map((n) => `${n}.deb`), { minLength: 1, maxLength: 4 }),
      digests: fc.array(sha256Arb, { minLength: 4, maxLength: 4 }),
      outcome: fc.constantFrom<Outcome>('reproduced', 'mismatch', 'failed', 'built'),
      inputs: sha256Arb,
      seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      start: dateArb,
      durationS: fc.integer({ min: 0, max: 86_400 }),
      summary: fc.option(fc.string({ maxLength: 200 }), { nil: undefined })
    })
    .map((r) => {
      const subject = r.names.map((name, i) => ({ name, sha256: r.digests[i] as string }))
      const upstream =
        r.outcome === 'reproduced' ? subject : r.outcome === 'mismatch' ? subject.map((s) => ({ ...s, sha256: s.sha256.replace(/^./, (c) => (c === '0' ? '1' : '0')) })) : r.outcome === 'failed' ? subject : []
      return buildRebuildStatement({
        package: r.package,
        subject,
        outcome: r.outcome,
        upstream,
        inputs: { sha256: r.inputs, materials: [] },
        builder: { id: key.publicKey.keyid, seq: r.seq, backend: 'debian', software: 'rebuild-quorum/test' },
        startedOn: r.start,
        finishedOn: new Date(r.start.getTime() + r.durationS * 1000),
        ...(r.summary === undefined ? {} : { diff: { tags: ['timestamps'], summary: r.summary } })
      })
    })
}
