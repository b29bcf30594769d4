import { spawnSync } from 'node:child_process'
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { buildHelperServiceUnit, buildHelperSocketUnit, checkExecPaths, HELPER_SERVICE_UNIT, HELPER_SOCKET_UNIT, installSystemdUnit, systemdQuote, systemdUnit } from '../../../node/systemd-units.js'
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

  it('Debian rebuilds: the node stays unprivileged; a root build helper, socket-activated, builds at idle priority', () => {
    const node = systemdUnit({ rbq, debianRebuilds: true }).split('\n')
    for (const line of ['User=rbq', 'Group=rbq', 'CapabilityBoundingSet=', 'RestrictNamespaces=yes', 'NoNewPrivileges=yes', `Wants=${HELPER_SOCKET_UNIT}`]) expect(node).toContain(line)
    expect(node).not.toContain('User=root')
    const socket = buildHelperSocketUnit().split('\n')
    for (const line of ['ListenStream=/run/rbq/build.sock', 'SocketGroup=rbq', 'SocketMode=0660']) expect(socket).toContain(line)
    const helper = buildHelperServiceUnit({ rbq }).split('\n')
    for (const line of ['User=root', 'CPUSchedulingPolicy=idle', 'IOSchedulingClass=idle', 'CacheDirectory=rbq', 'RestrictNamespaces=no', 'ProtectHome=yes']) expect(helper).toContain(line)
    expect(helper).toContain(`ExecStart=${process.execPath} /opt/rbq/dist/cli/main.js build-helper --cache /var/cache/rbq`)
  })

  it('ProtectHome=yes would hide an rbq under /home or /root: refused with what to do, or read-only when asked', () => {
    for (const path of ['/home/alice/.nvm/versions/node/v20/bin/node', '/root/rbq/dist/cli/main.js']) {
      expect(() => systemdUnit({ rbq: [path] })).toThrow(/ProtectHome=yes hides .*install rbq system-wide/)
      expect(() => buildHelperServiceUnit({ rbq: [path] })).toThrow(/ProtectHome/)
    }
    expect(() => checkExecPaths(['/homestead/bin/node', '/usr/bin/node'])).not.toThrow()
    expect(systemdUnit({ rbq: ['/home/alice/bin/rbq'], protectHome: 'read-only' }).split('\n')).toContain('ProtectHome=read-only')
  })

  it('quotes ExecStart words the way systemd reads them', () => {
    expect(systemdQuote('/usr/bin/node')).toBe('/usr/bin/node')
    expect(systemdQuote('/opt/my rbq/x"y$%.js')).toBe('"/opt/my rbq/x\\"y$$%%.js"')
    expect(() => systemdQuote('a\nb')).toThrow()
    expect(() => systemdUnit({ rbq: ['node', 'main.js'] })).toThrow(/absolute/)
  })

  it('systemd-analyze verifies every unit and scores the exposure', async () => {
    if (spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status !== 0) return console.log('skipped: systemd-analyze not installed')
    const units: [string, string][] = [
      ['rbq.service', systemdUnit({ rbq })],
      ['rbq-split.service', systemdUnit({ rbq, debianRebuilds: true })],
      [HELPER_SOCKET_UNIT, buildHelperSocketUnit()],
      [HELPER_SERVICE_UNIT, buildHelperServiceUnit({ rbq })]
    ]
    for (const [name, text] of units) await writeFile(join(dir, name), text)
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...units.map(([name]) => join(dir, name))], { encoding: 'utf8' })
    // Complaints about our units' own lines name the file; the host's other units are not our business.
    expect(r.stderr.split('\n').filter((l) => units.some(([name]) => l.includes(name))), r.stderr).toEqual([])
    const exposure: Record<string, number> = {}
    for (const name of ['rbq.service', 'rbq-split.service', HELPER_SERVICE_UNIT]) {
      const s = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', join(dir, name)], { encoding: 'utf8' })
      const score = /Overall exposure level for \S+: ([0-9.]+)/.exec(s.stdout)?.[1]
      expect(score, s.stdout + s.stderr).toBeDefined()
      exposure[name] = Number(score)
    }
    console.log(`systemd-analyze security (lower is better): ${JSON.stringify(exposure)}`)
    // The libp2p-facing node is as confined in the split mode as in the recipes-only one.
    expect(exposure['rbq-split.service']).toBeLessThan(5)
    expect(exposure['rbq.service']).toBeLessThan(5)
  })

  it('installs 0644, leaves an identical unit alone, refuses to replace another without force', async () => {
    const path = join(dir, 'system', 'rbq.service')
    const first = await installSystemdUnit(path, { rbq })
    expect(first.written).toBe(true)
    expect(first.next).toContain('systemctl enable --now rbq')
    expect((await stat(path)).mode & 0o777).toBe(0o644)
    expect((await installSystemdUnit(path, { rbq })).written).toBe(false)
    const split = { rbq, debianRebuilds: true, sysusersPath: join(dir, 'sysusers.d', 'rbq.conf'), configPath: join(dir, 'etc', 'config.toml') }
    await expect(installSystemdUnit(path, split)).rejects.toSatisfy((e) => isRbqError(e, 'FILE_EXISTS'))
    await mkdir(join(dir, 'etc'))
    await writeFile(split.configPath, "# the admin's own\n")
    const installed = await installSystemdUnit(path, { ...split, force: true })
    expect(installed.files.map((f) => [f.path, f.written])).toEqual([
      [path, true],
      [join(dir, 'system', HELPER_SOCKET_UNIT), true],
      [join(dir, 'system', HELPER_SERVICE_UNIT), true],
      [split.sysusersPath, true],
      [split.configPath, false] // an existing config is never touched
    ])
    expect(await readFile(split.configPath, 'utf8')).toBe("# the admin's own\n")
    expect(await readFile(split.sysusersPath, 'utf8')).toContain('u rbq - ')
    expect(installed.next).toContain('systemd-sysusers')
  })
})
