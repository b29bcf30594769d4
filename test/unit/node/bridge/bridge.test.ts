import { describe, expect, it } from 'vitest'
import { MAX_SUBJECTS_PER_STATEMENT, planRebuilderdImport, signImport } from '../../../../node/bridge/bridge.js'
import type { RebuilderdArtifact } from '../../../../node/bridge/rebuilderd.js'
import type { IndexedBinary } from '../../../../node/health/packages-index.js'
import { decodeFrame, generateSigningKey } from '../../../../protocol/index.js'

const row = (over: Partial<RebuilderdArtifact>): RebuilderdArtifact => ({
  name: 'hello',
  version: '2.10-3',
  architecture: 'amd64',
  status: 'GOOD',
  distribution: 'debian',
  suite: 'main',
  url: undefined,
  buildId: undefined,
  builtAt: undefined,
  sha256: undefined,
  ...over
})
const digest = (c: string) => c.repeat(64)

/** A Packages index as a table (the real reader is tested in test/unit/node/health). */
function index(entries: Record<string, Partial<IndexedBinary> & { sha256: string }>) {
  return async (keys: Set<string>) => {
    const out = new Map<string, IndexedBinary[]>()
    for (const k of keys) {
      const e = entries[k]
      if (e) out.set(k, [{ size: 1, filename: '', source: undefined, index: 'test', ...e }])
    }
    return out
  }
}

describe('rebuilderd bridge', () => {
  it('turns GOOD rows into reproduced statements per source package; skips the rest with counts', async () => {
    const now = new Date('2026-01-01T00:00:00Z')
    const plan = await planRebuilderdImport(
      [
        row({ name: 'mount', version: '2.38.1-5+b1', builtAt: new Date('2025-05-05T05:05:05Z'), buildId: 4 }),
        row({ name: 'libmount1', version: '2.38.1-5+b1', url: 'https://deb.debian.org/debian/pool/main/u/util-linux/libmount1_2.38.1-5+b1_amd64.deb', sha256: digest('2') }),
        row({ name: 'hello', status: 'BAD' }),
        row({ name: 'zsh', status: 'UNKWN' }),
        row({ name: 'gone', version: '1.0' }),
        row({ name: 'pacman', distribution: 'archlinux' })
      ],
      { origin: 'https://rebuilder.example', now, lookup: index({ 'mount 2.38.1-5+b1 amd64': { sha256: digest('1'), source: 'util-linux (2.38.1-5)' } }) }
    )
    expect(plan.skipped).toEqual({ bad: 1, unknown: 1, 'no-digest': 1, 'other-distribution': 1 })
    expect(plan.artifacts).toBe(2)
    expect(plan.statements).toHaveLength(1)
    const s = plan.statements[0]!
    expect(s.package).toBe('pkg:deb/debian/util-linux@2.38.1-5?arch=source')
    expect(s.subjects).toEqual([
      { name: 'libmount1_2.38.1-5+b1_amd64.deb', sha256: digest('2') },
      { name: 'mount_2.38.1-5+b1_amd64.deb', sha256: digest('1') }
    ])
    expect(s.builtAt.toISOString()).toBe('2025-05-05T05:05:05.000Z')

    const key = generateSigningKey()
    const [frame] = signImport(plan, key, 41)
    const decoded = decodeFrame(frame!.bytes)
    if (decoded.kind !== 'attestation') throw new Error('not an attestation')
    expect(decoded.statement.predicate).toMatchObject({ outcome: 'reproduced', package: s.package, builder: { id: key.publicKey.keyid, seq: 41, backend: 'rebuilderd' } })
    expect(decoded.statement.predicate.upstream).toEqual(decoded.statement.subject)
  })

  it('splits large source packages and never lists one artifact twice', async () => {
    const rows = Array.from({ length: MAX_SUBJECTS_PER_STATEMENT + 3 }, (_, i) => row({ name: `lib${i}`, sha256: digest((i % 10).toString()), url: `https://m/pool/main/b/big/lib${i}_1.0_amd64.deb`, version: '1.0' }))
    rows.push(row({ name: 'lib0', version: '1.0', sha256: digest('0'), url: 'https://m/pool/main/b/big/lib0_1.0_amd64.deb' }))
    rows.push(row({ name: 'lib1', version: '1.0', sha256: digest('f'), url: 'https://m/pool/main/b/big/lib1_1.0_amd64.deb' }))
    const plan = await planRebuilderdImport(rows, { origin: 'f', lookup: index({}) })
    expect(plan.statements.map((s) => s.subjects.length)).toEqual([MAX_SUBJECTS_PER_STATEMENT, 3])
    expect(plan.statements.every((s) => s.package === 'pkg:deb/debian/big@1.0?arch=source')).toBe(true)
    expect(plan.skipped).toEqual({ duplicate: 1, 'conflicting-digest': 1 })
    const frames = signImport(plan, generateSigningKey(), 1)
    expect(frames.map((f) => decodeFrame(f.bytes).kind)).toEqual(['attestation', 'attestation'])
  })
})
