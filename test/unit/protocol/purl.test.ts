import { describe, expect, it } from 'vitest'
import { canonicalPurl, checkPattern, checkWirePurl, parsePurl, patternMatches } from '../../../protocol/index.js'
import { errorCode } from '../../utils/errors.js'

const code = errorCode

describe('purl', () => {
  it('parses through packageurl-js and exposes the matchable base', () => {
    const p = parsePurl('pkg:deb/debian/hello@2.10-3?arch=source')
    expect(p.base).toBe('pkg:deb/debian/hello')
    expect(p.version).toBe('2.10-3')
    expect(p.qualifiers.arch).toBe('source')
  })
  it('canonicalises user input and refuses non-canonical wire purls', () => {
    expect(canonicalPurl('pkg:deb/Debian/hello@1.0')).toBe('pkg:deb/debian/hello@1.0')
    expect(code(() => checkWirePurl('pkg:deb/Debian/hello@1.0', 'package'))).toBe('PURL_INVALID')
    expect(code(() => parsePurl('hello'))).toBe('PURL_INVALID')
    expect(code(() => parsePurl('pkg:' + 'a'.repeat(600)))).toBe('PURL_INVALID')
  })
  it('scope patterns: * matches any run of characters in type/namespace/name', () => {
    const hello = parsePurl('pkg:deb/debian/hello@2.10-3?arch=source')
    expect(patternMatches('pkg:deb/debian/*', hello)).toBe(true)
    expect(patternMatches('pkg:deb/*', hello)).toBe(true)
    expect(patternMatches('*', hello)).toBe(true)
    expect(patternMatches('pkg:deb/debian/hel*', hello)).toBe(true)
    expect(patternMatches('pkg:deb/debian/hello', hello)).toBe(true)
    expect(patternMatches('pkg:deb/debian/hell', hello)).toBe(false)
    expect(patternMatches('pkg:deb/ubuntu/*', hello)).toBe(false)
    expect(patternMatches('pkg:generic/*', hello)).toBe(false)
  })
  it('refuses malformed patterns', () => {
    for (const bad of ['deb/debian/*', 'pkg:', 'pkg:deb/debian/hello@1.0', 'pkg:deb/debian/a b', 42, 'pkg:deb/' + 'a'.repeat(300)]) {
      expect(code(() => checkPattern(bad))).toBe('PATTERN_INVALID')
    }
  })
  it('pattern matching stays linear on hostile patterns', () => {
    const long = parsePurl('pkg:deb/debian/' + 'a'.repeat(400))
    // A backtracking (regex-style) matcher would not finish this in the test's lifetime.
    expect(patternMatches('pkg:deb/debian/' + '*a'.repeat(100) + 'b', long)).toBe(false)
    expect(patternMatches('pkg:deb/debian/' + '*a'.repeat(100), long)).toBe(true)
  })
})
