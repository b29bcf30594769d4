import { createHmac } from 'node:crypto'
import { chmod, readFile, stat, writeFile } from 'node:fs/promises'
import fc from 'fast-check'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { loadOrCreateSamplerSeed, Sampler, samplerSeedPath } from '../../../../node/rebuild/sampler.js'
import { makeTempDir } from '../../../utils/tmp.js'

const seedArb = fc.uint8Array({ minLength: 32, maxLength: 32 })
const purlArb = fc
  .tuple(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), fc.stringMatching(/^[0-9][0-9a-z.+~-]{0,10}$/))
  .map(([name, version]) => `pkg:deb/debian/${name}@${encodeURIComponent(version)}?arch=source`)
const purls = Array.from({ length: 10_000 }, (_, i) => `pkg:generic/package-${i}@1.${i % 7}`)

describe('Sampler', () => {
  it('fraction is HMAC-SHA256(seed, purl), first 8 bytes big-endian / 2^64', () => {
    const seed = new Uint8Array(32).fill(7)
    const purl = 'pkg:deb/debian/hello@2.10-3?arch=source'
    const mac = createHmac('sha256', seed).update(purl).digest()
    expect(new Sampler(seed, { share: 0.5 }).fraction(purl)).toBe(Number(mac.readBigUInt64BE(0)) / 2 ** 64)
  })

  it('is stable for a seed (a fresh sampler with the same seed draws the same)', () => {
    fc.assert(
      fc.property(seedArb, purlArb, fc.double({ min: 0, max: 1, noNaN: true }), (seed, purl, share) => {
        const a = new Sampler(seed, { share })
        const b = new Sampler(Uint8Array.from(seed), { share })
        expect(a.fraction(purl)).toBe(b.fraction(purl))
        expect(a.includes(purl)).toBe(b.includes(purl))
        expect(a.fraction(purl)).toBeGreaterThanOrEqual(0)
        expect(a.fraction(purl)).toBeLessThan(1)
      })
    )
  })

  it('share 0 takes nothing, share 1 takes everything', () => {
    fc.assert(
      fc.property(seedArb, purlArb, (seed, purl) => {
        expect(new Sampler(seed, { share: 0 }).includes(purl)).toBe(false)
        expect(new Sampler(seed, { share: 1 }).includes(purl)).toBe(true)
      })
    )
  })

  it('is monotonic in share: a package sampled at s is sampled at every s2 > s', () => {
    fc.assert(
      fc.property(seedArb, purlArb, fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (seed, purl, x, y) => {
        const [lo, hi] = x < y ? [x, y] : [y, x]
        if (new Sampler(seed, { share: lo }).includes(purl)) expect(new Sampler(seed, { share: hi }).includes(purl)).toBe(true)
      })
    )
  })

  it('takes about `share` of many packages (10k purls at 0.3: within ±0.05, a >10-sigma bound)', () => {
    fc.assert(
      fc.property(seedArb, (seed) => {
        const s = new Sampler(seed, { share: 0.3 })
        const taken = purls.filter((p) => s.includes(p)).length / purls.length
        expect(Math.abs(taken - 0.3)).toBeLessThan(0.05)
      }),
      { numRuns: 10 }
    )
  })

  it('different seeds draw different samples', () => {
    const a = new Sampler(new Uint8Array(32).fill(1), { share: 0.5 })
    const b = new Sampler(new Uint8Array(32).fill(2), { share: 0.5 })
    const differ = purls.filter((p) => a.includes(p) !== b.includes(p)).length
    expect(differ).toBeGreaterThan(purls.length / 4) // independent halves differ on ~50%
  })

  it('applies the package filter before sampling', () => {
    const s = new Sampler(new Uint8Array(32), { share: 1, filter: ['pkg:deb/debian/lib*'] })
    expect(s.includes('pkg:deb/debian/libfoo@1?arch=source')).toBe(true)
    expect(s.includes('pkg:deb/debian/hello@1?arch=source')).toBe(false)
    expect(s.includes('pkg:generic/libfoo@1')).toBe(false)
  })

  it('rejects a bad seed, share or filter', () => {
    expect(() => new Sampler(new Uint8Array(16), { share: 1 })).toThrow(/32 bytes/)
    expect(() => new Sampler(new Uint8Array(32), { share: 1.5 })).toThrow(/share/)
    expect(() => new Sampler(new Uint8Array(32), { share: Number.NaN })).toThrow(/share/)
    expect(() => new Sampler(new Uint8Array(32), { share: 1, filter: ['deb/*'] })).toThrow(/pattern/)
  })
})

describe('sampler seed file', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir()))
  afterEach(() => cleanup())

  it('is created once with mode 0600 and reused', async () => {
    const a = await loadOrCreateSamplerSeed(dir)
    expect(a.length).toBe(32)
    expect((await stat(samplerSeedPath(dir))).mode & 0o777).toBe(0o600)
    expect(await loadOrCreateSamplerSeed(dir)).toEqual(a)
    expect((await readFile(samplerSeedPath(dir), 'utf8')).trim()).toBe(Buffer.from(a).toString('hex'))
  })

  it('refuses a seed readable by others or corrupt', async () => {
    await loadOrCreateSamplerSeed(dir)
    await chmod(samplerSeedPath(dir), 0o644)
    await expect(loadOrCreateSamplerSeed(dir)).rejects.toMatchObject({ code: 'FILE_PERMISSIONS' })
    await chmod(samplerSeedPath(dir), 0o600)
    await writeFile(samplerSeedPath(dir), 'xyz\n')
    await expect(loadOrCreateSamplerSeed(dir)).rejects.toMatchObject({ code: 'FILE_UNREADABLE' })
  })
})
