import { describe, expect, it } from 'vitest'
import { debianDoctor } from '../../../../../node/rebuild/debian/debian-doctor.js'
import { formatBuilderReport } from '../../../../../cli/commands/doctor.js'

describe('debian doctor', () => {
  it('reports every needed tool, ready exactly when the required ones are there', async () => {
    const r = await debianDoctor()
    const names = r.checks.map((c) => c.name)
    for (const n of ['root', 'mmdebstrap', 'gpgv', 'xz', 'unshare', 'diffoscope', 'archive keyring', 'namespaces']) expect(names).toContain(n)
    expect(r.ready).toBe(r.checks.every((c) => c.ok || !c.required))
    expect(r.install).toEqual([...new Set(r.checks.filter((c) => !c.ok && c.required && c.aptPackage).map((c) => c.aptPackage))])
    expect(formatBuilderReport(r)).toMatch(/^debian builder: (ready|NOT ready)/)
  })

  it('names the packages to install for a missing keyring', async () => {
    const r = await debianDoctor({ keyring: '/nonexistent/keyring.gpg' })
    expect(r.ready).toBe(false)
    expect(r.install).toContain('debian-archive-keyring')
    expect(formatBuilderReport(r)).toContain('apt-get install')
  })
})
