/**
 * `rbq rebuild RECIPE.toml` as a user runs it: the real CLI process, real builds.
 *   - a recipe that embeds the current time: two rebuilds disagree (same inputs digest)
 *   - a clean recipe: two rebuilds agree
 *   - exit codes, signing into a frame file, progress lines, `rbq doctor`
 * Uses dist/ (`npm test` runs tsc first). Until cli/main.ts registers `rebuild` and `doctor`,
 * the verbs run through a two-line program that registers just them.
 */
import { spawn } from 'node:child_process'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKey } from '../../identity/signing-key.js'
import { decodeFrame, sha256Hex } from '../../protocol/index.js'
import { RBQ_BIN, runRbq, type RunResult } from '../utils/cli.js'
import { makeTempDir } from '../utils/tmp.js'

let dir: string
let cleanup: () => Promise<void>
let rbq: (args: string[], env?: NodeJS.ProcessEnv) => Promise<RunResult>

beforeAll(async () => {
  ;({ dir, cleanup } = await makeTempDir('rbq-recipe-e2e-'))
  const help = await runRbq(['--help'])
  if (/^\s+rebuild\b/m.test(help.stdout) && /^\s+doctor\b/m.test(help.stdout)) {
    rbq = (args, env) => runRbq(args, { timeoutMs: 120_000, ...(env === undefined ? {} : { env }) })
    return
  }
  const dist = join(RBQ_BIN, '..')
  const harness = join(dir, 'rbq-harness.mjs')
  await writeFile(
    harness,
    `import '${pathToFileURL(join(dist, '..', 'node', 'polyfills.js')).href}'
import { Command, CommanderError } from '${pathToFileURL(join(dist, '..', '..', 'node_modules', 'commander', 'esm.mjs')).href}'
import { registerRebuild } from '${pathToFileURL(join(dist, 'commands', 'rebuild.js')).href}'
import { registerDoctor } from '${pathToFileURL(join(dist, 'commands', 'doctor.js')).href}'
import { printError } from '${pathToFileURL(join(dist, 'exit.js')).href}'
const program = new Command('rbq').exitOverride()
registerRebuild(program)
registerDoctor(program)
try { await program.parseAsync(process.argv) } catch (e) { process.exitCode = e instanceof CommanderError ? (e.exitCode === 0 ? 0 : 2) : printError(e) }
`
  )
  rbq = (args, env) =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [harness, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
      child.on('error', reject)
      child.on('close', (code) => resolve({ code, stdout, stderr }))
    })
})

afterAll(() => cleanup())

interface JsonResult {
  outcome: string
  package: string
  artifacts: { name: string; sha256: string; size: number; path: string }[]
  inputs: { sha256: string }
  log: { sha256: string; size: number; path: string }
  failure?: { reason: string; code?: string }
  networkIsolation?: string
  frame?: { id: string; seq: number; file: string }
}

async function rebuildJson(recipe: string, extra: string[] = []): Promise<{ run: RunResult; result: JsonResult }> {
  const run = await rbq(['rebuild', recipe, '--json', '--output-dir', join(dir, `out-${Math.random().toString(36).slice(2)}`), ...extra])
  if (run.stdout === '') throw new Error(`no output (exit ${run.code}): ${run.stderr}`)
  return { run, result: JSON.parse(run.stdout) as JsonResult }
}

async function writeRecipe(name: string, body: string): Promise<string> {
  const recipes = join(dir, 'recipes')
  await mkdir(join(recipes, 'src'), { recursive: true })
  await writeFile(join(recipes, 'src', 'hello.c'), 'int main(void) { return 0; }\n')
  await writeFile(join(recipes, 'src', 'README'), 'hello\n')
  const path = join(recipes, name)
  await writeFile(path, body)
  return path
}

describe('rbq rebuild RECIPE.toml', () => {
  it('a recipe that embeds the current time: two rebuilds disagree', async () => {
    const recipe = await writeRecipe('clock.toml', `purl = "pkg:generic/clock@1"\ncommand = "date +%s%N > out.txt"\noutputs = ["out.txt"]\n`)
    const a = await rebuildJson(recipe)
    const b = await rebuildJson(recipe)
    expect([a.run.code, b.run.code]).toEqual([0, 0])
    expect([a.result.outcome, b.result.outcome]).toEqual(['built', 'built'])
    expect(a.result.inputs.sha256).toBe(b.result.inputs.sha256) // same inputs...
    expect(a.result.artifacts[0]?.sha256).not.toBe(b.result.artifacts[0]?.sha256) // ...different output
  })

  it('a clean recipe: two rebuilds agree, bit for bit', async () => {
    const readme = sha256Hex('hello\n')
    const hello = sha256Hex('int main(void) { return 0; }\n')
    const recipe = await writeRecipe(
      'clean.toml',
      `purl = "pkg:generic/hello-src@1.0"
command = """
mkdir -p hello-1.0 && mv README hello.c hello-1.0/ &&
tar --sort=name --mtime=@$SOURCE_DATE_EPOCH --owner=0 --group=0 --numeric-owner -cf hello-1.0.tar hello-1.0 &&
gzip -n hello-1.0.tar && sha256sum hello-1.0.tar.gz > SHA256SUMS
"""
outputs = ["hello-1.0.tar.gz", "SHA256SUMS"]
[[source]]
path = "src/README"
sha256 = "${readme}"
[[source]]
path = "src/hello.c"
sha256 = "${hello}"
`
    )
    const a = await rebuildJson(recipe)
    const b = await rebuildJson(recipe)
    expect([a.result.outcome, b.result.outcome]).toEqual(['built', 'built'])
    expect(a.result.artifacts.map((x) => x.name)).toEqual(['SHA256SUMS', 'hello-1.0.tar.gz'])
    expect(b.result.artifacts.map((x) => x.sha256)).toEqual(a.result.artifacts.map((x) => x.sha256))
    expect(a.result.inputs.sha256).toBe(b.result.inputs.sha256)
    expect(a.result.networkIsolation).toBeDefined()
  })

  it('prints the outcome and digests, progress on stderr; a failed build exits 1', async () => {
    const ok = await writeRecipe('ok.toml', `purl = "pkg:generic/ok@1"\ncommand = "echo built > ok.txt"\noutputs = ["ok.txt"]\n`)
    const run = await rbq(['rebuild', ok, '--output-dir', join(dir, 'ok-out')])
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('built pkg:generic/ok@1 (recipe,')
    expect(run.stdout).toContain(`ok.txt sha256:${sha256Hex('built\n')} (6 bytes)`)
    expect(run.stdout).toMatch(/inputs +sha256:[0-9a-f]{64}/)
    expect(run.stderr).toMatch(/^\[build \d\d:\d\d\] running /m) // not a TTY: plain lines

    const bad = await writeRecipe('bad.toml', `purl = "pkg:generic/bad@1"\ncommand = "exit 7"\noutputs = ["x"]\n`)
    const failed = await rebuildJson(bad)
    expect(failed.run.code).toBe(1)
    expect(failed.result.outcome).toBe('failed')
    expect(failed.result.failure).toMatchObject({ code: 'BUILD_FAILED' })
  })

  it('refuses a source whose checksum does not match: exit 2, nothing signed', async () => {
    const recipe = await writeRecipe('tampered.toml', `purl = "pkg:generic/t@1"\ncommand = "true"\noutputs = ["README"]\n[[source]]\npath = "src/README"\nsha256 = "${'0'.repeat(64)}"\n`)
    const dataDir = join(dir, 'data-tampered')
    await createKey(join(dataDir, 'signing.key'))
    const frame = join(dir, 'tampered.frame')
    const privateTmp = join(dir, 'tmp-tampered')
    await mkdir(privateTmp)
    const run = await rbq(['rebuild', recipe, '--data', dataDir, '--out', frame], { TMPDIR: privateTmp })
    expect(run.code).toBe(2)
    // the default output dir it made is removed again: there is nothing to keep
    expect(await readdir(privateTmp)).toEqual([])
    expect(run.stderr).toMatch(/source\[0\].*the recipe pins 0{64}; refusing to build \[CHECKSUM_MISMATCH\]/)
    await expect(readFile(frame)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('a recipe with a path escaping its temp dir is refused before building', async () => {
    const recipe = await writeRecipe('escape.toml', `purl = "pkg:generic/e@1"\ncommand = "true"\noutputs = ["../../etc/passwd"]\n`)
    const run = await rbq(['rebuild', recipe])
    expect(run.code).toBe(2)
    expect(run.stderr).toMatch(/escape\.toml line 3: outputs\[0\]: .*would escape the build dir \[RECIPE_INVALID\]/)
  })

  it('--out signs with the node key into a frame peers accept, with increasing seqs', async () => {
    const recipe = await writeRecipe('signed.toml', `purl = "pkg:generic/signed@1"\ncommand = "echo x > x.txt"\noutputs = ["x.txt"]\n`)
    const dataDir = join(dir, 'data-signed')
    const key = await createKey(join(dataDir, 'signing.key'))
    for (const seq of [1, 2]) {
      const out = join(dir, `signed-${seq}.frame`)
      const { run, result } = await rebuildJson(recipe, ['--data', dataDir, '--out', out])
      expect(run.code).toBe(0)
      expect(result.frame).toMatchObject({ seq, file: out })
      const f = decodeFrame(new Uint8Array((await readFile(out)).subarray(0, -1)))
      if (f.kind !== 'attestation') throw new Error('not an attestation')
      expect(f.signer.keyid).toBe(key.publicKey.keyid)
      expect(f.statement.predicate).toMatchObject({ package: 'pkg:generic/signed@1', outcome: 'built', builder: { seq, backend: 'recipe' } })
      expect(f.statement.predicate.log).toEqual({ digest: { sha256: result.log.sha256 }, size: result.log.size })
      expect(f.statement.subject).toEqual([{ name: 'x.txt', digest: { sha256: sha256Hex('x\n') } }])
    }
  })
})

describe('rbq doctor', () => {
  it('reports every builder', async () => {
    const run = await rbq(['doctor', '--json'])
    expect([0, 1]).toContain(run.code)
    const report = JSON.parse(run.stdout) as { ready: boolean; builders: { backend: string; ready: boolean }[] }
    expect(report.builders.map((b) => b.backend)).toEqual(['debian', 'recipe'])
    expect(report.builders.find((b) => b.backend === 'recipe')?.ready).toBe(true)
    expect(run.code).toBe(report.ready ? 0 : 1)
    const text = await rbq(['doctor'])
    expect(text.stdout).toMatch(/^recipe builder: ready$/m)
    expect(text.stdout).toMatch(/^debian builder: (ready|NOT ready)$/m)
  })
})
