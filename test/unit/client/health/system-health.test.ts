import { describe, expect, it } from 'vitest'
import { formatHealth, type HealthReport, type PackageHealth } from '../../../../client/health/system-health.js'

function pkg(name: string, status: PackageHealth['status'], reason: string): PackageHealth {
  return { package: name, version: '1.0-1', architecture: 'amd64', purl: `pkg:deb/debian/${name}@1.0-1?arch=source`, artifact: `${name}_1.0-1_amd64.deb`, sha256: '0'.repeat(64), digestSource: 'cache', status, reason }
}

describe('formatHealth', () => {
  it('says in words what unreproducible means, apart from the tampering alarm', () => {
    const packages = [
      pkg('hello', 'reproduced', ''),
      pkg('sl', 'unreproducible', "not reproducible with today's toolchain: 2 parties rebuilt other bytes (build-id); the archive published this file; not a sign of tampering"),
      pkg('evil', 'mismatch', '2 parties saw the archive publish 0123456789ab as evil_1.0-1_amd64.deb; this file (aaaaaaaaaaaa) was never published'),
      pkg('new', 'insufficient', '1 of 2 parties rebuilt aaaaaaaaaaaa')
    ]
    const report: HealthReport = { installed: 4, reproduced: 1, score: 0.25, counts: { reproduced: 1, unreproducible: 1, mismatch: 1, insufficient: 1 }, packages, configFilesOnly: 0 }
    const text = formatHealth(report)
    const lines = text.trimEnd().split('\n')
    // worst first: the alarm, then too little evidence, then honest drift; reproduced hidden
    expect(lines.slice(0, 3).map((l) => l.slice(0, 3) + l.split(' ')[1])).toEqual(['[!]evil', '[?]new', '[~]sl'])
    expect(lines[2]).toContain('UNREPRODUCIBLE — not reproducible with today\'s toolchain: 2 parties rebuilt other bytes (build-id)')
    expect(text).toContain('3/4 installed packages are not reproduced under your policy (mismatch 1, insufficient 1, unreproducible 1, reproduced 1).')
    expect(text).toContain("1 of them is unreproducible: the archive published exactly these files, rebuilds with today's toolchain get other bytes; not a sign of tampering.")
    expect(text).toContain('1 needs attention now ([!]): mismatch is the tampering alarm')
    expect(lines[lines.length - 1]).toBe('Your system is 25.00% reproduced.')
  })
})
