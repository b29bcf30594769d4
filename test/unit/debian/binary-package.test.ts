import { describe, expect, it } from 'vitest'
import { artifactQueryOf, debArtifactName, sourceOf, sourcePurlOf } from '../../../debian/binary-package.js'

describe('binary package naming', () => {
  it('uses the package itself when there is no Source field', () => {
    expect(sourceOf({ package: 'hello', version: '2.10-3', architecture: 'amd64' })).toEqual({ name: 'hello', version: '2.10-3' })
    expect(sourcePurlOf({ package: 'hello', version: '2.10-3', architecture: 'amd64' })).toBe('pkg:deb/debian/hello@2.10-3?arch=source')
  })

  it('reads "Source: name" and "Source: name (version)"', () => {
    expect(sourceOf({ package: 'mount', version: '2.38.1-5', architecture: 'amd64', source: 'util-linux' })).toEqual({ name: 'util-linux', version: '2.38.1-5' })
    expect(sourceOf({ package: 'libgcc-s1', version: '12.2.0-14', architecture: 'amd64', source: 'gcc-12 (12.2.0-14)' })).toEqual({ name: 'gcc-12', version: '12.2.0-14' })
    expect(sourceOf({ package: 'x', version: '1.0-1+b2', architecture: 'amd64', source: 'x-src (1.0-1)' })).toEqual({ name: 'x-src', version: '1.0-1' })
  })

  it('strips a binNMU suffix when the source version is implicit', () => {
    expect(sourceOf({ package: 'zlib1g', version: '1:1.2.13.dfsg-1+b1', architecture: 'amd64', source: 'zlib' })).toEqual({ name: 'zlib', version: '1:1.2.13.dfsg-1' })
  })

  it('keeps the epoch in the purl version (as in Sources) and drops it from the file name', () => {
    const c = { package: 'passwd', version: '1:4.13+dfsg1-1', architecture: 'amd64', source: 'shadow' }
    expect(sourcePurlOf(c)).toBe('pkg:deb/debian/shadow@1:4.13+dfsg1-1?arch=source')
    expect(debArtifactName(c)).toBe('passwd_4.13+dfsg1-1_amd64.deb')
    expect(artifactQueryOf(c, 'a'.repeat(64))).toEqual({ package: sourcePurlOf(c), artifact: 'passwd_4.13+dfsg1-1_amd64.deb', sha256: 'a'.repeat(64) })
  })
})
