/**
 * The recipe builder with real processes: environment, umask, outputs, failures, the timeout
 * (and that nothing of the build survives it), and network isolation.
 */
import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { sha256Hex } from '../../../../../protocol/index.js'
import { sha256File } from '../../../../../common/files.js'
import { RECIPE_DEFAULT_PATH, rebuildRecipe, globToRegExp } from '../../../../../node/rebuild/recipe/recipe-builder.js'
import { run } from '../../../../../common/subprocess.js'
import { detectNetworkIsolation } from '../../../../../node/rebuild/recipe/network-isolation.js'
import { isTransientError } from '../../../../../node/rebuild/scheduler.js'
import { parseRecipe, recipeInputsDigest } from '../../../../../node/rebuild/recipe/recipe.js'
import { makeTempDir } from '../../../../utils/tmp.js'

let dir: string
let cleanup: () => Promise<void>
beforeEach(async () => ({ dir, cleanup } = await makeTempDir('rbq-recipe-test-')))
afterEach(() => cleanup())

function recipe(body: string) {
  return parseRecipe(`purl = "pkg:generic/test@1"\n${body}`, { baseDir: dir, fileName: 'test.toml', path: join(dir, 'test.toml') })
}

const build = (r: ReturnType<typeof recipe>, extra: { signal?: AbortSignal } = {}) =>
  rebuildRecipe(r, { outDir: join(dir, 'out'), workRoot: dir, ...extra })

/** Alive = exists and is not a zombie (a zombie has exited; only its parent has not reaped it). */
async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

async function until(cond: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe('rebuildRecipe', () => {
  it('builds in a fresh dir with the normalised env and umask 022, and hashes outputs and log', async () => {
    const src = join(dir, 'input.txt')
    await writeFile(src, 'hello\n')
    const r = recipe(`command = "cat sub/input.txt > sub/greeting.txt; env | sort > env.txt; touch mode; stat -c %a mode > mode.txt; pwd > pwd.txt"
outputs = ["sub/*.txt", "env.txt", "mode.txt", "pwd.txt"]
[env]
EXTRA = "yes"
[[source]]
path = "input.txt"
sha256 = "${sha256Hex('hello\n')}"
dest = "sub/input.txt"
`)
    const res = await build(r)
    expect(res.outcome).toBe('built')
    expect(res.backend).toBe('recipe')
    expect(res.upstream).toEqual([])
    expect(res.artifacts.map((a) => a.name)).toEqual(['env.txt', 'greeting.txt', 'input.txt', 'mode.txt', 'pwd.txt'])
    for (const a of res.artifacts) {
      expect(a.path).toBe(join(dir, 'out', 'out', a.name))
      expect(await sha256File(a.path)).toEqual({ sha256: a.sha256, size: a.size })
    }
    const out = (name: string) => readFile(join(dir, 'out', 'out', name), 'utf8')
    expect(await out('greeting.txt')).toBe('hello\n')
    expect(await out('mode.txt')).toBe('644\n')
    const workDir = (await out('pwd.txt')).trim()
    const env = Object.fromEntries((await out('env.txt')).trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
    // only what rbq sets, the recipe's env, and what sh itself exports (PWD, SHLVL, _)
    const { PWD: _pwd, SHLVL: _shlvl, _: _underscore, OLDPWD: _old, ...rest } = env
    expect(rest).toEqual({ PATH: RECIPE_DEFAULT_PATH, HOME: workDir, TZ: 'UTC', LC_ALL: 'C.UTF-8', SOURCE_DATE_EPOCH: '315532800', EXTRA: 'yes' })
    expect(res.inputs).toEqual({ sha256: recipeInputsDigest(r), materials: [{ uri: 'sub/input.txt', sha256: sha256Hex('hello\n') }] })
    expect(await sha256File(res.log.path)).toEqual({ sha256: res.log.sha256, size: res.log.size })
    expect(await readFile(res.log.path, 'utf8')).toMatch(/### network isolation: /)
    // the temp build dir is gone
    expect((await readdir(dir)).filter((n) => n.startsWith('rbq-recipe-'))).toEqual([])
  })

  it('refuses a source whose checksum does not match, before running anything', async () => {
    await writeFile(join(dir, 'input.txt'), 'tampered\n')
    const r = recipe(`command = "touch ran; false"\noutputs = ["ran"]\n[[source]]\npath = "input.txt"\nsha256 = "${sha256Hex('hello\n')}"\n`)
    await expect(build(r)).rejects.toMatchObject({ code: 'CHECKSUM_MISMATCH', field: 'source[0].sha256' })
    expect(await readdir(join(dir, 'out', 'out'))).toEqual([])
  })

  it('reports a missing local source as FILE_NOT_FOUND', async () => {
    const r = recipe(`command = "true"\noutputs = ["x"]\n[[source]]\npath = "nope.tgz"\nsha256 = "${'a'.repeat(64)}"\n`)
    await expect(build(r)).rejects.toMatchObject({ code: 'FILE_NOT_FOUND' })
  })

  it('a failing command is a `failed` outcome with the recipe as subject', async () => {
    const r = recipe(`command = "echo oops >&2; exit 3"\noutputs = ["x"]\n`)
    const res = await build(r)
    expect(res.outcome).toBe('failed')
    expect(res.failure).toMatchObject({ transient: false, code: 'BUILD_FAILED' })
    expect(res.failure?.reason).toMatch(/exited with 3: oops/)
    expect(res.artifacts).toEqual([{ name: 'test.toml', sha256: r.origin.sha256, size: r.origin.size, path: join(dir, 'test.toml') }])
    expect(await readFile(res.log.path, 'utf8')).toMatch(/oops/)
  })

  it('outputs that match nothing make the build `failed`', async () => {
    const res = await build(recipe(`command = "touch a"\noutputs = ["a", "b*"]\n`))
    expect(res.outcome).toBe('failed')
    expect(res.failure?.reason).toMatch(/outputs\[1\] "b\*" matched no file/)
  })

  it('refuses an output that is a symlink out of the build dir', async () => {
    await writeFile(join(dir, 'secret'), 'secret')
    await expect(build(recipe(`command = "ln -s ${join(dir, 'secret')} out.txt"\noutputs = ["*.txt"]\n`))).rejects.toMatchObject({
      code: 'RECIPE_INVALID',
      field: 'outputs[0]'
    })
    await expect(build(recipe(`command = "ln -s ../.. up; touch x"\noutputs = ["up/**", "x"]\n`))).resolves.toMatchObject({ outcome: 'failed' }) // not followed
    await expect(build(recipe(`command = "ln -s /nonexistent dangling"\noutputs = ["dangling"]\n`))).rejects.toMatchObject({ code: 'RECIPE_INVALID' })
  })

  it('follows a symlink that stays inside, and refuses two outputs with one file name', async () => {
    const ok = await build(recipe(`command = "echo x > real; ln -s real link"\noutputs = ["link"]\n`))
    expect(ok.artifacts.map((a) => [a.name, a.sha256])).toEqual([['link', sha256Hex('x\n')]])
    await symlink('/', join(dir, 'unused')) // the walk never looks outside the build dir
    await expect(build(recipe(`command = "mkdir a b; touch a/f b/f"\noutputs = ["*/f"]\n`))).rejects.toMatchObject({ code: 'RECIPE_INVALID' })
  })

  it('kills the whole process group at the timeout: BUILD_TIMEOUT, and no process survives', async () => {
    const pidFile = join(dir, 'sleep.pid')
    const r = recipe(`command = 'sleep 1000 & echo $! > "$PIDFILE"; wait'\noutputs = ["x"]\ntimeout = 1\n[env]\nPIDFILE = "${pidFile}"\n`)
    const res = await build(r)
    expect(res.outcome).toBe('failed')
    expect(res.failure).toMatchObject({ code: 'BUILD_TIMEOUT', transient: false })
    const pid = Number((await readFile(pidFile, 'utf8')).trim())
    expect(pid).toBeGreaterThan(1)
    await until(async () => !(await alive(pid)), `sleep (pid ${pid}) to die`)
  })

  it('an abort rejects with the signal reason and kills the build', async () => {
    const pidFile = join(dir, 'sleep.pid')
    const controller = new AbortController()
    const r = recipe(`command = 'sleep 1000 & echo $! > "$PIDFILE"; wait'\noutputs = ["x"]\n[env]\nPIDFILE = "${pidFile}"\n`)
    const running = build(r, { signal: controller.signal })
    await until(async () => (await readFile(pidFile, 'utf8').catch(() => '')).trim() !== '', 'the build to start')
    const reason = new Error('stop now')
    controller.abort(reason)
    await expect(running).rejects.toBe(reason)
    const pid = Number((await readFile(pidFile, 'utf8')).trim())
    await until(async () => !(await alive(pid)), `sleep (pid ${pid}) to die`)
  })
})

const isRoot = process.getuid?.() === 0
describe.skipIf(!isRoot)('a full disk (a 1 MiB tmpfs; root only)', () => {
  it('is a clear error the scheduler retries later, and nothing is left running', async () => {
    const small = join(dir, 'small')
    await mkdir(small)
    const mount = await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small])
    expect(mount.code, mount.stderr).toBe(0)
    try {
      const r = recipe(`command = "head -c 3000000 /dev/zero > big.bin"\noutputs = ["big.bin"]\n`)
      const err = await rebuildRecipe(r, { outDir: small, workRoot: dir }).catch((e: unknown) => e)
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC')
      expect(isTransientError(err)).toBe(true)
    } finally {
      await run('umount', [small])
    }
  })
})

describe('http sources (a server on 127.0.0.1)', () => {
  let server: import('node:http').Server
  let base: string
  let hits = 0
  beforeEach(async () => {
    hits = 0
    const { createServer: createHttp } = await import('node:http')
    server = createHttp((req, res) => {
      hits++
      if (req.url === '/pkg-1.0.tar') res.end('tarball bytes\n')
      else res.writeHead(404).end()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  })
  afterEach(() => new Promise<void>((resolve) => server.close(() => resolve())))

  it('downloads, checks and caches by digest; a missing file is DOWNLOAD_FAILED (transient)', async () => {
    const body = (url: string) => `command = "cp pkg-1.0.tar out.tar"\noutputs = ["out.tar"]\n[[source]]\nurl = "${url}"\nsha256 = "${sha256Hex('tarball bytes\n')}"\n`
    const opts = { outDir: join(dir, 'out'), workRoot: dir, sourceCacheDir: join(dir, 'sources') }
    const res = await rebuildRecipe(recipe(body(`${base}/pkg-1.0.tar`)), opts)
    expect(res.outcome).toBe('built')
    expect(res.inputs.materials).toEqual([{ uri: `${base}/pkg-1.0.tar`, sha256: sha256Hex('tarball bytes\n') }])
    expect(hits).toBe(1)
    await rebuildRecipe(recipe(body(`${base}/pkg-1.0.tar`)), opts)
    expect(hits).toBe(1) // served from the cache, re-checked
    await expect(rebuildRecipe(recipe(body(`${base}/missing.tar`)), { ...opts, sourceCacheDir: join(dir, 'empty-cache') })).rejects.toMatchObject({
      code: 'DOWNLOAD_FAILED',
      message: expect.stringMatching(/HTTP 404/)
    })
  })
})

const isolation = await detectNetworkIsolation()
if (isolation.mode === 'none') console.log(`skipping the network isolation test: ${isolation.detail}`)

describe.skipIf(isolation.mode === 'none')('network isolation', () => {
  let server: Server
  let connections = 0
  beforeEach(async () => {
    connections = 0
    server = createServer((s) => {
      connections++
      s.destroy()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  })
  afterEach(() => new Promise<void>((resolve) => server.close(() => resolve())))

  it(`a build cannot reach a port this machine listens on (${isolation.mode})`, async () => {
    const port = (server.address() as { port: number }).port
    // control: the same connect from here works
    const script = `require('net').connect(${port}, '127.0.0.1').on('connect', () => { require('fs').writeFileSync('net.txt', 'connected'); process.exit(0) }).on('error', (e) => { require('fs').writeFileSync('net.txt', 'blocked ' + e.code); process.exit(0) })`
    const r = parseRecipe(`purl = "pkg:generic/net@1"\ncommand = ${JSON.stringify([process.execPath, '-e', script])}\noutputs = ["net.txt"]\ntimeout = 30\n`)
    const res = await rebuildRecipe(r, { outDir: join(dir, 'out'), workRoot: dir })
    expect(res.outcome).toBe('built')
    expect(res.networkIsolation).toBe(isolation.mode)
    expect(await readFile(join(dir, 'out', 'out', 'net.txt'), 'utf8')).toMatch(/^blocked E/)
    expect(connections).toBe(0)
    // and outside the sandbox the port does answer (the test would be vacuous otherwise)
    const { connect } = await import('node:net')
    await new Promise<void>((resolve, reject) => connect(port, '127.0.0.1').on('connect', function (this: import('node:net').Socket) { this.destroy(); resolve() }).on('error', reject))
    await until(async () => connections === 1, 'the control connection')
  })

  it('name resolution fails inside the build', async () => {
    const r = parseRecipe(`purl = "pkg:generic/dns@1"\ncommand = "if getent hosts deb.debian.org > /dev/null; then echo resolved; else echo failed; fi > dns.txt"\noutputs = ["dns.txt"]\ntimeout = 60\n`)
    await rebuildRecipe(r, { outDir: join(dir, 'out'), workRoot: dir })
    expect(await readFile(join(dir, 'out', 'out', 'dns.txt'), 'utf8')).toBe('failed\n')
  })
})

describe('globToRegExp', () => {
  it.each([
    ['*.txt', 'a.txt', true],
    ['*.txt', 'd/a.txt', false],
    ['d/*', 'd/a', true],
    ['**/*.deb', 'a.deb', true],
    ['**/*.deb', 'x/y/a.deb', true],
    ['dist/**', 'dist/a/b', true],
    ['a?c', 'abc', true],
    ['a?c', 'a/c', false],
    ['a.b', 'axb', false],
    ['(x)+', '(x)+', true]
  ])('%s ~ %s = %s', (pattern, path, expected) => {
    expect(globToRegExp(pattern).test(path)).toBe(expected)
  })
})
