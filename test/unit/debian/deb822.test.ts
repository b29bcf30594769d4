import { describe, expect, it } from 'vitest'
import { isRbqError } from '../../../protocol/errors.js'
import { parseChecksumList, parseDeb822, parseParagraph, splitParagraphs, stripClearsign } from '../../../debian/deb822.js'

const SOURCES = `Package: base-files
Binary: base-files
Version: 12.4+deb12u15
Build-Depends: debhelper-compat (= 13),
 debhelper (>= 13.10~)
Checksums-Sha256:
 e531274d0c3916dacfe55bbd27148d775b004e1836bc2fbb01549f142d524e8c 1137 base-files_12.4+deb12u15.dsc
 9fb369194365fe9da74621da247ea70884fc3d1d9c063db310764ef0e43c02c5 66280 base-files_12.4+deb12u15.tar.xz
Directory: pool/main/b/base-files

Package: hello
Version: 2.10-3
Description: example
 .
 second paragraph line
`

describe('deb822', () => {
  it('splits paragraphs on blank lines (also whitespace-only and CRLF ones)', () => {
    expect(splitParagraphs(SOURCES)).toHaveLength(2)
    expect(splitParagraphs('A: 1\r\n\r\nB: 2\r\n')).toEqual(['A: 1', 'B: 2'])
    expect(splitParagraphs('A: 1\n \t\nB: 2\n\n\n')).toEqual(['A: 1', 'B: 2'])
    expect(splitParagraphs('# only a comment\n\nA: 1')).toEqual(['A: 1'])
  })

  it('keeps fields in order, continuation lines verbatim, names case-insensitive', () => {
    const [p] = parseDeb822(SOURCES)
    expect(p?.fields.map((f) => f.name)).toEqual(['Package', 'Binary', 'Version', 'Build-Depends', 'Checksums-Sha256', 'Directory'])
    expect(p?.get('build-depends')).toBe('debhelper-compat (= 13),\n debhelper (>= 13.10~)')
    expect(p?.first('Build-Depends')).toBe('debhelper-compat (= 13),')
    expect(p?.get('Checksums-Sha256')?.startsWith('\n ')).toBe(true)
    expect(p?.get('Nope')).toBeUndefined()
  })

  it('skips comment lines inside a paragraph (apt .sources files have them)', () => {
    const p = parseParagraph('Types: deb\n# http://snapshot.example/\nURIs: http://deb.debian.org/debian')
    expect(p.get('URIs')).toBe('http://deb.debian.org/debian')
  })

  it('rejects malformed lines with FEED_ERROR', () => {
    for (const bad of [' leading continuation', 'no colon here', ': empty name']) {
      let err: unknown
      try {
        parseParagraph(bad)
      } catch (e) {
        err = e
      }
      expect(isRbqError(err, 'FEED_ERROR'), bad).toBe(true)
    }
  })

  it('parses checksum lists and rejects garbage in them', () => {
    const [p] = parseDeb822(SOURCES)
    expect(parseChecksumList(p?.get('Checksums-Sha256'))).toEqual([
      { hash: 'e531274d0c3916dacfe55bbd27148d775b004e1836bc2fbb01549f142d524e8c', size: 1137, name: 'base-files_12.4+deb12u15.dsc' },
      { hash: '9fb369194365fe9da74621da247ea70884fc3d1d9c063db310764ef0e43c02c5', size: 66280, name: 'base-files_12.4+deb12u15.tar.xz' }
    ])
    expect(parseChecksumList(undefined)).toEqual([])
    expect(() => parseChecksumList('\n zz 12 name')).toThrow(/bad checksum line/)
  })

  it('strips a clearsign wrapper, undoing dash-escaping', () => {
    const signed = [
      '-----BEGIN PGP SIGNED MESSAGE-----',
      'Hash: SHA512',
      '',
      'Format: 3.0 (quilt)',
      'Source: hello',
      '- -----not a real armor line',
      '-----BEGIN PGP SIGNATURE-----',
      '',
      'iQIzBAEBCgAdFiEE',
      '-----END PGP SIGNATURE-----',
      ''
    ].join('\n')
    expect(stripClearsign(signed)).toBe('Format: 3.0 (quilt)\nSource: hello\n-----not a real armor line')
    expect(stripClearsign('Source: hello\n')).toBe('Source: hello\n')
  })
})
