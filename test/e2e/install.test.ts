/**
 * `rbq` as a command, installed the ways README "Install" says, into temporary npm prefixes
 * (real npm; the dependencies of the copy come from npm's cache, or the npm registry):
 *   - `npm install -g --ignore-scripts .`: a link to this clone; `rbq` runs from any directory;
 *   - `npm pack --ignore-scripts` + `npm install -g ./rebuild-quorum-*.tgz`: a copy that no
 *     longer needs the clone (the system-wide install for the apt hook); its `rbq node start`
 *     says what it starts on its first line, then `node started` with its addresses, and stops
 *     cleanly on SIGTERM.
 * Uses dist/ as built by `npm test` (tsc first).
 */
import { execFile } from 'node:child_process'
import { lstat, readFile, readdir, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawnNodeProcess, STACK_TRACE, userEnv } from '../utils/node-process.js'
import { makeTempDir } from '../utils/tmp.js'

const run = promisify(execFile)
const REPO = fileURLToPath(new URL('../..', import.meta.url))
const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { name: string; version: string }

describe('rbq installed with npm', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await makeTempDir('rbq-install-'))
  })
  afterAll(async () => cleanup())

  it('npm install -g --ignore-scripts . links a working `rbq` into the prefix bin dir', async () => {
    const prefix = join(dir, 'linked')
    const env = userEnv({ npm_config_prefix: prefix, PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}` })
    await run('npm', ['install', '-g', '--ignore-scripts', '--no-audit', '--no-fund', '.'], { cwd: REPO, env })
    expect((await lstat(join(prefix, 'lib/node_modules', pkg.name))).isSymbolicLink()).toBe(true)
    // Found on PATH, from a directory that is not the clone.
    const { stdout, stderr } = await run('rbq', ['--version'], { cwd: dir, env })
    expect(stdout.trim()).toBe(pkg.version)
    expect(stderr).toBe('')
  }, 120_000)

  it('a packed copy installs globally and its node starts, says so at once, and stops cleanly', async () => {
    await run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: REPO, env: userEnv({}) })
    const tarball = (await readdir(dir)).find((f) => f.startsWith(`${pkg.name}-`) && f.endsWith('.tgz'))
    expect(tarball).toBeDefined()
    const prefix = join(dir, 'copy')
    const env = userEnv({ npm_config_prefix: prefix, PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}` })
    await run('npm', ['install', '-g', '--prefer-offline', '--no-audit', '--no-fund', `./${tarball!}`], { cwd: dir, env })
    expect((await lstat(join(prefix, 'lib/node_modules', pkg.name))).isSymbolicLink()).toBe(false)
    const { stdout } = await run('rbq', ['--version'], { cwd: dir, env })
    expect(stdout.trim()).toBe(pkg.version)

    const dataDir = join(dir, 'data')
    await mkdir(dataDir, { mode: 0o700 })
    await writeFile(join(dataDir, 'config.toml'), '[p2p]\nlisten = ["/ip4/127.0.0.1/tcp/0"]\n[api]\nport = 0\n[rebuild]\nenabled = false\n')
    const node = spawnNodeProcess('rbq', ['node', 'start'], { cwd: dir, env: { ...env, RBQ_DATA_DIR: dataDir } })
    try {
      const ready = await node.waitForLog('node started')
      // The first line comes before libp2p is loaded and keys are made: it names what starts.
      expect(node.logs[0]).toMatchObject({ level: 'info', version: pkg.version, dataDir, config: join(dataDir, 'config.toml'), listen: ['/ip4/127.0.0.1/tcp/0'] })
      expect(String(node.logs[0]!.msg)).toBe(`starting rbq ${pkg.version} with data dir ${dataDir}`)
      expect(ready).toMatchObject({ dataDir, version: pkg.version })
      expect(ready.api).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect(ready.listening).toEqual([expect.stringMatching(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW/)])
    } finally {
      expect(await node.stop()).toEqual({ code: 0, signal: null })
    }
    expect(node.lines.join('\n')).not.toMatch(STACK_TRACE)
    expect(node.stdout()).toBe('')
  }, 180_000)
})
