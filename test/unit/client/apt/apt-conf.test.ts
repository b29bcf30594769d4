import { spawnSync } from 'node:child_process'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { aptConfPath, aptHookCommand, aptHookConfig, checkLauncherPath, installAptHook, shellQuote, uninstallAptHook } from '../../../../client/apt/apt-conf.js'
import { isRbqError } from '../../../../protocol/index.js'
import { makeTempDir } from '../../../utils/tmp.js'

const hook = { launcher: '/usr/local/bin/rbq', gateConfig: '/etc/rbq/apt-gate.toml' }

describe('apt configuration', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir()))
  afterEach(async () => cleanup())

  it('quotes for sh only when needed and refuses what apt cannot carry', () => {
    expect(shellQuote('/usr/bin/node')).toBe('/usr/bin/node')
    expect(shellQuote('/opt/my rbq/main.js')).toBe(`'/opt/my rbq/main.js'`)
    expect(shellQuote(`it's`)).toBe(`'it'\\''s'`)
    for (const bad of ['a"b', 'a\\b', 'a\nb']) expect(() => shellQuote(bad)).toThrow(/apt configuration string/)
  })

  it('writes one Pre-Install-Pkgs entry starting the launcher, protocol version 3 keyed on it', () => {
    const cmd = aptHookCommand(hook)
    expect(cmd.startsWith('/usr/local/bin/rbq apt-hook run --gate-config /etc/rbq/apt-gate.toml; s=$?; case $s in 126|127) cat >/dev/null; echo ')).toBe(true)
    expect(cmd).toContain('rbq apt-hook install --launcher PATH')
    const text = aptHookConfig(hook)
    expect(text).toContain(`DPkg::Pre-Install-Pkgs { "${cmd}"; };`)
    expect(text).toContain('DPkg::Tools::Options::/usr/local/bin/rbq::Version "3";')
    expect(text).toContain('`dpkg -i FILE.deb` bypasses apt and this gate')
    for (const bad of ['rbq', '/opt/my rbq/rbq', "/opt/it's/rbq"]) expect(() => checkLauncherPath(bad)).toThrow(/absolute path without spaces/)
  })

  it('apt reads the file back as the same command, and sh runs the fail-closed branch when the launcher is gone', async () => {
    if (spawnSync('apt-config', ['--version'], { stdio: 'ignore' }).status !== 0) return console.log('skipped: apt-config not installed')
    const settings = { launcher: join(dir, 'gone', 'rbq'), gateConfig: '/etc/rbq/apt-gate.toml' }
    await installAptHook(settings, dir)
    const r = spawnSync('apt-config', ['-c', aptConfPath(dir), 'dump', 'DPkg'], { encoding: 'utf8', env: { ...process.env, APT_CONFIG: '/dev/null' } })
    expect(r.status).toBe(0)
    expect(r.stdout).toContain(`DPkg::Pre-Install-Pkgs:: "${aptHookCommand(settings)}";`)
    expect(r.stdout).toContain(`DPkg::Tools::Options::${settings.launcher}::Version "3";`)
    const sh = spawnSync('sh', ['-c', aptHookCommand(settings)], { input: 'VERSION 3\n\n', encoding: 'utf8' })
    expect(sh.status).toBe(1)
    expect(sh.stderr).toMatch(new RegExp(`^rbq: refusing the installation: the apt gate cannot start its launcher ${settings.launcher} \\(exit 127\\)`, 'm'))
  })

  it('install is idempotent, mode 0644; uninstall removes exactly that file', async () => {
    const first = await installAptHook(hook, dir)
    expect(first.replaced).toBe(false)
    expect((await stat(first.path)).mode & 0o777).toBe(0o644)
    const second = await installAptHook({ ...hook, gateConfig: '/srv/gate.toml' }, dir)
    expect(second.replaced).toBe(true)
    expect(await readFile(second.path, 'utf8')).toContain('--gate-config /srv/gate.toml')
    await writeFile(join(dir, '50other'), 'APT::Other "1";\n')
    expect(await uninstallAptHook(dir)).toEqual({ path: first.path, removed: true })
    expect(await uninstallAptHook(dir)).toEqual({ path: first.path, removed: false })
    expect(await readFile(join(dir, '50other'), 'utf8')).toBe('APT::Other "1";\n')
  })

  it('never overwrites or removes an 80rbq it did not write', async () => {
    await writeFile(aptConfPath(dir), 'APT::Something "else";\n')
    await expect(installAptHook(hook, dir)).rejects.toSatisfy((e) => isRbqError(e, 'FILE_EXISTS'))
    await expect(uninstallAptHook(dir)).rejects.toSatisfy((e) => isRbqError(e, 'FILE_EXISTS'))
    expect(await readFile(aptConfPath(dir), 'utf8')).toBe('APT::Something "else";\n')
  })
})
