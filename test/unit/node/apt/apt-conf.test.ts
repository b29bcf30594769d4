import { spawnSync } from 'node:child_process'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { aptConfPath, aptHookCommand, aptHookConfig, installAptHook, shellQuote, uninstallAptHook } from '../../../../node/apt/apt-conf.js'
import { isRbqError } from '../../../../protocol/index.js'
import { makeTempDir } from '../../../utils/tmp.js'

const rbq = ['/usr/bin/node', '/opt/rbq/dist/cli/main.js']

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

  it('writes one Pre-Install-Pkgs entry; warn-only and run arguments go into the command', () => {
    expect(aptHookCommand({ rbq, warnOnly: false })).toBe('/usr/bin/node /opt/rbq/dist/cli/main.js apt-hook run')
    expect(aptHookCommand({ rbq, warnOnly: true, runArgs: ['--api', 'http://127.0.0.1:4778'] })).toBe(
      '/usr/bin/node /opt/rbq/dist/cli/main.js apt-hook run --warn-only --api http://127.0.0.1:4778'
    )
    const text = aptHookConfig({ rbq, warnOnly: false })
    expect(text).toContain('DPkg::Pre-Install-Pkgs { "/usr/bin/node /opt/rbq/dist/cli/main.js apt-hook run"; };')
    expect(text).not.toContain('Version')
  })

  it('apt reads the file back as the same command', async () => {
    if (spawnSync('apt-config', ['--version'], { stdio: 'ignore' }).status !== 0) return console.log('skipped: apt-config not installed')
    await installAptHook({ rbq: ['/usr/bin/node', '/opt/my rbq/main.js'], warnOnly: true }, dir)
    const r = spawnSync('apt-config', ['-c', aptConfPath(dir), 'dump', 'DPkg::Pre-Install-Pkgs'], { encoding: 'utf8', env: { ...process.env, APT_CONFIG: '/dev/null' } })
    expect(r.status).toBe(0)
    expect(r.stdout).toContain(`"/usr/bin/node '/opt/my rbq/main.js' apt-hook run --warn-only"`)
  })

  it('install is idempotent, mode 0644; uninstall removes exactly that file', async () => {
    const first = await installAptHook({ rbq, warnOnly: false }, dir)
    expect(first.replaced).toBe(false)
    expect((await stat(first.path)).mode & 0o777).toBe(0o644)
    const second = await installAptHook({ rbq, warnOnly: true }, dir)
    expect(second.replaced).toBe(true)
    expect(await readFile(second.path, 'utf8')).toContain('--warn-only')
    await writeFile(join(dir, '50other'), 'APT::Other "1";\n')
    expect(await uninstallAptHook(dir)).toEqual({ path: first.path, removed: true })
    expect(await uninstallAptHook(dir)).toEqual({ path: first.path, removed: false })
    expect(await readFile(join(dir, '50other'), 'utf8')).toBe('APT::Other "1";\n')
  })

  it('never overwrites or removes an 80rbq it did not write', async () => {
    await writeFile(aptConfPath(dir), 'APT::Something "else";\n')
    await expect(installAptHook({ rbq, warnOnly: false }, dir)).rejects.toSatisfy((e) => isRbqError(e, 'FILE_EXISTS'))
    await expect(uninstallAptHook(dir)).rejects.toSatisfy((e) => isRbqError(e, 'FILE_EXISTS'))
    expect(await readFile(aptConfPath(dir), 'utf8')).toBe('APT::Something "else";\n')
  })
})
