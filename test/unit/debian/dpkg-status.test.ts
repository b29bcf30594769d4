import { describe, expect, it } from 'vitest'
import { parseDpkgStatus } from '../../../debian/dpkg-status.js'
import { cachedDebName } from '../../../client/health/system-health.js'

const STATUS = `Package: zlib1g
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: zlib
Version: 1:1.2.13.dfsg-1
Description: compression library - runtime
 zlib is a library implementing the deflate compression method.
 .
 More text.

Package: zlib1g
Status: install ok installed
Architecture: i386
Source: zlib
Version: 1:1.2.13.dfsg-1

Package: old-thing
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1
Conffiles:
 /etc/old-thing.conf 0123456789abcdef0123456789abcdef

Package: purged
Status: purge ok not-installed
Architecture: amd64

Package: base-files
Status: install ok half-configured
Architecture: amd64
Version: 12.4+deb12u5
`

describe('dpkg status', () => {
  it('lists packages whose files are on disk, per architecture', () => {
    const s = parseDpkgStatus(STATUS)
    expect(s.installed.map((p) => `${p.package}:${p.architecture} ${p.version} ${p.state}`)).toEqual([
      'base-files:amd64 12.4+deb12u5 half-configured',
      'zlib1g:amd64 1:1.2.13.dfsg-1 installed',
      'zlib1g:i386 1:1.2.13.dfsg-1 installed'
    ])
    expect(s.installed[1]?.source).toBe('zlib')
    expect(s.configFilesOnly).toBe(1)
  })

  it('names apt cache files like apt does (epoch colon as %3a)', () => {
    expect(cachedDebName({ package: 'zlib1g', version: '1:1.2.13.dfsg-1', architecture: 'amd64' })).toBe('zlib1g_1%3a1.2.13.dfsg-1_amd64.deb')
  })
})
