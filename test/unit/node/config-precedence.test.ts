/**
 * Which config file a node reads: --config > $RBQ_CONFIG > the system file (/etc/rbq, here
 * $CONFIGURATION_DIRECTORY as systemd sets it) > <data dir>/config.toml > defaults. One file
 * is read; a data-dir file passed over is reported. And [log] format.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../../../node/node-config.js'
import { formatLogLine } from '../../../common/logger.js'
import { systemConfigFile } from '../../../common/data-dir.js'
import { makeTempDir } from '../../utils/tmp.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})

async function layout() {
  const { dir, cleanup } = await makeTempDir()
  cleanups.push(cleanup)
  const files = { flag: join(dir, 'flag.toml'), env: join(dir, 'env.toml'), system: join(dir, 'etc', 'config.toml'), data: join(dir, 'data', 'config.toml') }
  await mkdir(join(dir, 'etc'))
  await mkdir(join(dir, 'data'))
  for (const [name, path] of Object.entries(files)) await writeFile(path, `[log]\nlevel = "${{ flag: 'error', env: 'warn', system: 'debug', data: 'trace' }[name]}"\n`)
  return { dir, files, env: { RBQ_CONFIG: files.env, CONFIGURATION_DIRECTORY: join(dir, 'etc'), RBQ_DATA_DIR: join(dir, 'data') } }
}

describe('config file precedence', () => {
  it('--config > $RBQ_CONFIG > system file > data-dir file > defaults', async () => {
    const { files, env, dir } = await layout()
    expect(systemConfigFile(env)).toBe(files.system)
    const read = async (e: NodeJS.ProcessEnv, file?: string) => {
      const c = await loadConfig({ env: e, ...(file === undefined ? {} : { file }) })
      return [c.configFile, c.log.level]
    }
    expect(await read(env, files.flag)).toEqual([files.flag, 'error'])
    expect(await read(env)).toEqual([files.env, 'warn'])
    const { RBQ_CONFIG: _, ...noEnvFile } = env
    expect(await read(noEnvFile)).toEqual([files.system, 'debug'])
    expect(await read({ ...noEnvFile, CONFIGURATION_DIRECTORY: join(dir, 'nothing-here') })).toEqual([files.data, 'trace'])
    const none = await loadConfig({ env: { CONFIGURATION_DIRECTORY: join(dir, 'nothing-here'), RBQ_DATA_DIR: join(dir, 'empty') } })
    expect([none.configFile, none.log.level, none.dataDir]).toEqual([undefined, 'info', join(dir, 'empty')])
  })

  it('a data-dir config.toml passed over for the system file is reported, and --data still names the data dir', async () => {
    const { files, env, dir } = await layout()
    const { RBQ_CONFIG: _, ...e } = env
    const c = await loadConfig({ env: e, dataDir: join(dir, 'data') })
    expect(c.configFile).toBe(files.system)
    expect(c.dataDir).toBe(join(dir, 'data'))
    expect(c.ignoredConfigFiles).toEqual([files.data])
    expect((await loadConfig({ env: e, file: files.flag })).ignoredConfigFiles).toBeUndefined() // an explicit --config is not a surprise
  })

  it('[log] format: auto (default) | json | text; anything else names the option', async () => {
    const { dir } = await layout()
    const file = join(dir, 'log.toml')
    await writeFile(file, '[log]\nformat = "text"\n')
    expect((await loadConfig({ file, env: {} })).log.format).toBe('text')
    await writeFile(file, '')
    expect((await loadConfig({ file, env: {} })).log.format).toBe('auto')
    await writeFile(file, '[log]\nformat = "pretty"\n')
    await expect(loadConfig({ file, env: {} })).rejects.toThrow(/log\.format/)
  })

  it('text logs: time, level, component, message, then the fields', () => {
    const line = formatLogLine(JSON.stringify({ level: 'warn', time: '2026-11-29T01:02:03.456Z', pid: 7, component: 'p2p', msg: 'peer banned', peer: '12D3', reason: 'bad frame' }))
    expect(line).toBe('01:02:03.456 WARN  p2p: peer banned  peer=12D3 reason="bad frame"\n')
  })
})
