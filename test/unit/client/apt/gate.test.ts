import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { formatNodeDown, formatRefusals, judgeDebs, type VerdictLookup } from '../../../../client/apt/gate.js'
import { DEFAULT_GATE_SETTINGS, describeGateSettings, effectivePolicy, gateSettingsFrom } from '../../../../client/apt/gate-config.js'
import { inspectDeb } from '../../../../debian/deb-file.js'
import type { VerdictQuery, VerdictResult } from '../../../../protocol/api.js'
import { isRbqError } from '../../../../protocol/index.js'
import { hasDpkgDeb, makeDeb, tamperedCopy } from '../../../utils/make-deb.js'
import { makeTempDir } from '../../../utils/tmp.js'

/** Answers from a table keyed by digest, like a node whose store holds exactly those claims. */
function tableLookup(table: Record<string, VerdictResult['status']>, seen: VerdictQuery[][] = []): VerdictLookup {
  return async (queries) => {
    seen.push(queries)
    return queries.map((q) => ({ query: q, status: table[q.sha256] ?? 'unknown', reason: `status from table`, verdicts: [] }))
  }
}

describe.skipIf(!hasDpkgDeb())('apt gate decision', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir()))
  afterEach(async () => cleanup())

  it('reads identity and digest with dpkg-deb', async () => {
    const path = makeDeb(dir, { package: 'rbq-tiny', version: '1:1.0-1+b1', architecture: 'amd64', source: 'rbq-tiny-src' })
    const deb = await inspectDeb(path)
    expect(deb.control).toMatchObject({ package: 'rbq-tiny', version: '1:1.0-1+b1', architecture: 'amd64', source: 'rbq-tiny-src' })
    expect(deb.query).toEqual({ package: 'pkg:deb/debian/rbq-tiny-src@1:1.0-1?arch=source', artifact: 'rbq-tiny_1.0-1+b1_amd64.deb', sha256: deb.sha256 })
  })

  it('allows only when every file is reproduced, asking once for all of them', async () => {
    const a = makeDeb(dir, { package: 'rbq-a', version: '1.0' })
    const b = makeDeb(dir, { package: 'rbq-b', version: '2.0' })
    const [da, db] = [await inspectDeb(a), await inspectDeb(b)]
    const seen: VerdictQuery[][] = []
    const ok = await judgeDebs([a, b], tableLookup({ [da.sha256]: 'reproduced', [db.sha256]: 'reproduced' }, seen))
    expect(ok.allowed).toBe(true)
    expect(seen).toHaveLength(1)
    expect(seen[0]).toEqual([da.query, db.query])

    const refused = await judgeDebs([a, b], tableLookup({ [da.sha256]: 'reproduced', [db.sha256]: 'mismatch' }))
    expect(refused.allowed).toBe(false)
    expect(refused.refused.map((e) => [e.path, e.status])).toEqual([[b, 'mismatch']])
    const text = formatRefusals(refused)
    expect(text).toContain('rbq-b:all 2.0 (rbq-b_2.0_all.deb')
    expect(text).toContain('mismatch')
    expect(formatRefusals(refused, { warnOnly: true })).toContain('warn mode')
  })

  it('per-status settings: refuse by default; warn and allow as set; mismatch and conflict always refused', async () => {
    const paths = ['rbq-u', 'rbq-i', 'rbq-m', 'rbq-c'].map((p) => makeDeb(dir, { package: p, version: '1.0' }))
    const ds = await Promise.all(paths.map((p) => inspectDeb(p)))
    const table = { [ds[0]!.sha256]: 'unreproducible', [ds[1]!.sha256]: 'insufficient', [ds[2]!.sha256]: 'mismatch', [ds[3]!.sha256]: 'conflict' } as const
    const strict = await judgeDebs(paths.slice(0, 2), tableLookup(table))
    expect(strict.refused.map((e) => e.status)).toEqual(['unreproducible', 'insufficient'])
    expect(formatRefusals(strict, { config: '/etc/rbq/apt-gate.toml' })).toContain(
      '"unreproducible" is not a sign of tampering; to install such packages: set unreproducible = "warn" (or "allow") in /etc/rbq/apt-gate.toml'
    )

    const lenient = { settings: gateSettingsFrom({ mode: 'tampering-only', unreproducible: 'warn' }, 'test') }
    const d = await judgeDebs(paths, tableLookup(table), lenient)
    expect(d.allowed).toBe(false)
    expect(d.refused.map((e) => e.status)).toEqual(['mismatch', 'conflict'])
    expect(d.warned.map((e) => e.status)).toEqual(['unreproducible'])
    const text = formatRefusals(d)
    expect(text).toMatch(/refusing the installation: 2 packages do not meet/)
    expect(text).toMatch(/warning: 1 package is not reproduced; installing as your gate settings allow:\n  rbq-u:all 1\.0 .*: unreproducible/)
    expect(text).not.toContain('not a sign of tampering; to install')

    const onlyWarned = await judgeDebs(paths.slice(0, 2), tableLookup(table), lenient)
    expect(onlyWarned.allowed).toBe(true)
    expect(formatRefusals(onlyWarned)).toMatch(/^rbq: warning: 1 package is not reproduced/)
    const ok = await judgeDebs(paths.slice(1, 2), tableLookup(table), lenient)
    expect(formatRefusals(ok)).toBe('')
  })

  it('a tampered copy has another digest and is judged on its own', async () => {
    const a = makeDeb(dir, { package: 'rbq-a', version: '1.0' })
    const good = await inspectDeb(a)
    const tampered = tamperedCopy(a, join(dir, 'copy', 'rbq-a_1.0_all.deb'))
    const d = await judgeDebs([tampered], tableLookup({ [good.sha256]: 'reproduced' }))
    expect(d.allowed).toBe(false)
    expect(d.entries[0]?.deb?.sha256).not.toBe(good.sha256)
  })

  it('fails closed on a file dpkg-deb cannot read, without asking about it', async () => {
    const junk = join(dir, 'junk.deb')
    await writeFile(junk, 'not a deb')
    const seen: VerdictQuery[][] = []
    const d = await judgeDebs([junk], tableLookup({}, seen))
    expect(d.allowed).toBe(false)
    expect(d.refused[0]).toMatchObject({ path: junk, status: 'unreadable' })
    expect(seen).toHaveLength(0)
  })

  it('refuses an answer that does not fit the question', async () => {
    const a = makeDeb(dir, { package: 'rbq-a', version: '1.0' })
    await expect(judgeDebs([a], async () => [])).rejects.toSatisfy((e) => isRbqError(e, 'API_ERROR'))
  })
})

describe('gate settings', () => {
  it('modes, per-verdict overrides, and what they say', () => {
    expect(effectivePolicy(DEFAULT_GATE_SETTINGS)).toEqual({ unreproducible: 'refuse', insufficient: 'refuse', unknown: 'refuse', failed: 'refuse' })
    const p = gateSettingsFrom({ unreproducible: 'allow', unknown: 'warn' }, 'cli')
    expect(describeGateSettings(p)).toBe('strict: refuses mismatch, conflict, insufficient, failed; warns about unknown; installs reproduced, unreproducible')
    const t = gateSettingsFrom({ mode: 'tampering-only', failed: 'refuse', allow_packages: ['linux-image-*'] }, 'cli')
    expect(describeGateSettings(t)).toBe('tampering-only: refuses mismatch, conflict, failed; installs reproduced, unreproducible, insufficient, unknown; allowlisted (with a warning, never mismatch or conflict): packages linux-image-*')
    expect(effectivePolicy(gateSettingsFrom({ mode: 'warn', unknown: 'refuse' }, 'cli')).unknown).toBe('warn')
    expect(() => gateSettingsFrom({ failed: 'ignore' }, 'cli')).toThrow(/cli: failed: "ignore" is not one of refuse, warn, allow/)
    expect(() => gateSettingsFrom({ mode: 'lenient' }, 'cli')).toThrow(/mode: "lenient" is not one of strict, tampering-only, warn/)
  })
})

describe('node down', () => {
  it('says how to start the node', () => {
    expect(formatNodeDown('connection refused', false)).toMatch(/refusing.*\n.*connection refused\n.*rbq node start/s)
    expect(formatNodeDown('connection refused', true)).toMatch(/warn mode/)
  })
})
