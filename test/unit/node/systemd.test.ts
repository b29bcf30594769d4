import { spawnSync } from 'node:child_process'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { installSystemdUnit, systemdQuote, systemdUnit } from '../../../node/systemd.js'
import { isRbqError } from '../../../protocol/index.js'
import { makeTempDir } from '../../utils/tmp.js'

const rbq = [process.execPath, '/opt/rbq/dist/cli/main.js']

describe('systemd unit', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir()))
  afterEach(async () => cleanup())

  it('is hardened by default: dedicated user, no privileges, state directory', () => {
    const unit = systemdUnit({ rbq })
    for (const line of [
      'DynamicUser=yes', 'User=rbq', 'StateDirectory=rbq', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes',
      'PrivateTmp=yes', 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6', 'CapabilityBoundingSet=', 'RestrictNamespaces=yes'
    ]) expect(unit.split('\n')).toContain(line)
    expect(unit).toContain(`ExecStart=${process.execPath} /opt/rbq/dist/cli/main.js node start --data /var/lib/rbq`)
  })

  it('Debian rebuilds: root and namespaces, the rest of the sandbox kept', () => {
    const lines = systemdUnit({ rbq, debianRebuilds: true }).split('\n')
    expect(lines).toContain('User=root')
    expect(lines).toContain('RestrictNamespaces=no')
    expect(lines).toContain('NoNewPrivileges=yes')
    expect(lines).not.toContain('DynamicUser=yes')
  })

  it('quotes ExecStart words the way systemd reads them', () => {
    expect(systemdQuote('/usr/bin/node')).toBe('/usr/bin/node')
    expect(systemdQuote('/opt/my rbq/x"y$%.js')).toBe('"/opt/my rbq/x\\"y$$%%.js"')
    expect(() => systemdQuote('a\nb')).toThrow()
    expect(() => systemdUnit({ rbq: ['node', 'main.js'] })).toThrow(/absolute/)
  })

  it('systemd-analyze accepts it', async () => {
    if (spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status !== 0) return console.log('skipped: systemd-analyze not installed')
    for (const debianRebuilds of [false, true]) {
      const path = join(dir, 'rbq.service')
      await writeFile(path, systemdUnit({ rbq, debianRebuilds }))
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', path], { encoding: 'utf8' })
      // Complaints about the unit's own lines name the file; the host's other units are not our business.
      expect(r.stderr.split('\n').filter((l) => l.includes('rbq.service')), r.stderr).toEqual([])
    }
  })

  it('installs 0644, leaves an identical unit alone, refuses to replace another without force', async () => {
    const path = join(dir, 'system', 'rbq.service')
    const first = await installSystemdUnit(path, { rbq })
    expect(first.written).toBe(true)
    expect(first.next).toContain('systemctl enable --now rbq')
    expect((await stat(path)).mode & 0o777).toBe(0o644)
    expect((await installSystemdUnit(path, { rbq })).written).toBe(false)
    await expect(installSystemdUnit(path, { rbq, debianRebuilds: true })).rejects.toSatisfy((e) => isRbqError(e, 'FILE_EXISTS'))
    expect((await installSystemdUnit(path, { rbq, debianRebuilds: true, force: true })).written).toBe(true)
    expect(await readFile(path, 'utf8')).toContain('User=root')
  })
})
