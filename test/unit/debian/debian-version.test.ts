import { describe, expect, it } from 'vitest'
import { binNmuSuffix, compareVersions, parseVersion, versionWithoutEpoch } from '../../../debian/debian-version.js'

// [a, b, sign of compare(a, b)]: cases from Debian Policy 5.6.12 and dpkg's t-version.c.
const CASES: [string, string, -1 | 0 | 1][] = [
  ['1.0', '1.0', 0],
  ['1.0', '1.1', -1],
  ['1.0-1', '1.0-2', -1],
  ['1:0.9', '2.0', 1],
  ['0:1.0', '1.0', 0],
  ['1.0~rc1', '1.0', -1],
  ['1.0~~', '1.0~', -1],
  ['1.0', '1.0+b1', -1],
  ['1.0-1', '1.0-1+b1', -1],
  ['12.4+deb12u9', '12.4+deb12u15', -1],
  ['1.0a', '1.0', 1],
  ['1.0a', '1.0+', -1], // letters sort before non-letters
  ['1.01', '1.1', 0], // numeric parts compare as numbers
  ['2.10-3', '2.10-3', 0],
  ['1.0-1', '1.0', 1],
  ['7.6p2-4', '7.6-0', 1]
]

describe('Debian versions', () => {
  it.each(CASES)('compare(%s, %s) has sign %i, and is antisymmetric', (a, b, sign) => {
    expect(Math.sign(compareVersions(a, b))).toBe(sign)
    expect(Math.sign(compareVersions(b, a))).toBe(-sign || 0)
  })

  it('splits epoch, upstream and revision', () => {
    expect(parseVersion('1:2.10-3+deb12u1')).toEqual({ epoch: 1, upstream: '2.10', revision: '3+deb12u1' })
    expect(parseVersion('1.2-rc1-4')).toEqual({ epoch: 0, upstream: '1.2-rc1', revision: '4' })
    expect(parseVersion('20230101')).toEqual({ epoch: 0, upstream: '20230101', revision: '' })
    expect(versionWithoutEpoch('2:1.0-1')).toBe('1.0-1')
  })

  it('recognises binNMU versions of a source version', () => {
    expect(binNmuSuffix('2.10-3+b1', '2.10-3')).toBe('+b1')
    expect(binNmuSuffix('1.0+b12', '1.0')).toBe('+b12')
    expect(binNmuSuffix('2.10-3', '2.10-3')).toBeUndefined()
    expect(binNmuSuffix('2.10-3+deb12u1', '2.10-3')).toBeUndefined()
    expect(binNmuSuffix('2.10-4+b1', '2.10-3')).toBeUndefined()
  })
})
