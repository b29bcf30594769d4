/**
 * What rbq adds to a build: the time of a rebuild through rbq vs the bare build command on the
 * same input (goal: ≤ 10 % overhead).
 *
 *   npm run build && node dist/bench/rebuild-overhead.js [runs=5] [MiB=64]
 *
 * Recipe: gzip -9 of a fixed pseudo-random input (MiB), through rebuildRecipe (copy + verify the
 * source, sandbox, outputs hashed, log digested) vs `sh -c 'gzip ...'` in a directory already
 * holding the input. Runs alternate; medians are printed with their ratio.
 *
 * Debian (only when a build root is cached: RBQ_DEBIAN_TEST_CACHE=<cache dir> or
 * RBQ_BENCH_DEBIAN_CACHE, e.g. the Debian e2e tests' cache; never creates one): rebuildDebian
 * of base-files end to end, then bare `dpkg-buildpackage -b -uc -us` in that very build root
 * (deps installed, same source tree), and the end-to-end / bare ratio. As root only.
 */
import '../node/polyfills.js'
import { createHash } from 'node:crypto'
import { copyFile, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { run } from '../node/run.js'
import { rebuildRecipe } from '../node/rebuild/recipe/builder.js'
import { detectNetworkIsolation } from '../node/rebuild/recipe/network-isolation.js'
import { parseRecipe } from '../node/rebuild/recipe/recipe.js'

const RUNS = Number(process.argv[2] ?? 5)
const MIB = Number(process.argv[3] ?? 64)
const COMMAND = 'gzip -9 -n -c input.bin > out.gz'

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(3)} s`
const pct = (ratio: number) => `${ratio >= 1 ? '+' : ''}${((ratio - 1) * 100).toFixed(1)} %`

/** Deterministic, poorly compressible input: SHA-256 in counter mode. */
async function makeInput(path: string, mib: number): Promise<string> {
  const chunks: Buffer[] = []
  for (let i = 0; i < (mib * 1024 * 1024) / 32; i++) chunks.push(createHash('sha256').update(`rbq-bench-${i}`).digest())
  const data = Buffer.concat(chunks)
  await writeFile(path, data)
  return createHash('sha256').update(data).digest('hex')
}

async function recipeBench(dir: string): Promise<void> {
  const input = join(dir, 'input.bin')
  const sha256 = await makeInput(input, MIB)
  const recipe = parseRecipe(`purl = "pkg:generic/bench@1"\ncommand = ${JSON.stringify(COMMAND)}\noutputs = ["out.gz"]\ntimeout = 3600\n[[source]]\npath = "input.bin"\nsha256 = "${sha256}"\n`, { baseDir: dir })
  const isolation = await detectNetworkIsolation()

  const bareDir = join(dir, 'bare')
  await rm(bareDir, { recursive: true, force: true })
  await run('mkdir', ['-p', bareDir])
  await copyFile(input, join(bareDir, 'input.bin'))
  const bare: number[] = []
  const rbq: number[] = []
  const own: number[] = [] // rbq's time minus its command's time, within the same run: robust to load
  const outputs = new Set<string>()
  const runBare = async () => {
    const t = performance.now()
    const r = await run('/bin/sh', ['-c', COMMAND], { cwd: bareDir, captureStdout: false })
    bare.push(performance.now() - t)
    if (r.code !== 0) throw new Error(`bare command failed: ${r.stderr}`)
  }
  const runRbq = async (i: number) => {
    let commandStart = 0
    let commandEnd = 0
    const t = performance.now()
    const res = await rebuildRecipe(recipe, {
      outDir: join(dir, `rbq-${i}`),
      workRoot: dir,
      onProgress: (e) => {
        if (e.phase === 'build' && commandStart === 0 && e.message.startsWith('running')) commandStart = performance.now()
        if (e.phase === 'compare' && commandEnd === 0) commandEnd = performance.now()
      }
    })
    const total = performance.now() - t
    rbq.push(total)
    own.push(total - (commandEnd - commandStart))
    if (res.outcome !== 'built') throw new Error(`rbq build ${res.outcome}: ${res.failure?.reason}`)
    outputs.add(res.artifacts[0]?.sha256 ?? '')
    await rm(join(dir, `rbq-${i}`), { recursive: true, force: true })
  }
  for (let i = 0; i < RUNS; i++) {
    // alternate the order so a load trend does not favour either side
    if (i % 2 === 0) {
      await runBare()
      await runRbq(i)
    } else {
      await runRbq(i)
      await runBare()
    }
  }
  const b = median(bare)
  const q = median(rbq)
  const o = median(own)
  console.log(`recipe: ${COMMAND} on ${MIB} MiB, ${RUNS} runs each, alternating (network isolation: ${isolation.mode})`)
  console.log(`  bare command     median ${fmt(b)}  min ${fmt(Math.min(...bare))}   (runs: ${bare.map(fmt).join(', ')})`)
  console.log(`  rbq rebuild      median ${fmt(q)}  min ${fmt(Math.min(...rbq))}   (runs: ${rbq.map(fmt).join(', ')})`)
  console.log(`  ratio rbq/bare   medians ${(q / b).toFixed(3)} (${pct(q / b)}), minima ${(Math.min(...rbq) / Math.min(...bare)).toFixed(3)}`)
  console.log(`  rbq's own time   median ${fmt(o)} per build (source copy + SHA-256, sandbox, outputs moved + SHA-256, log) = ${((o / b) * 100).toFixed(1)} % of the bare median; goal ≤ 10 %`)
  console.log(`  output sha256    ${[...outputs].join(', ')} (${outputs.size === 1 ? 'identical in every rbq run' : 'DIFFERS between runs'})`)
}

async function debianBench(dir: string): Promise<void> {
  const cacheDir = process.env.RBQ_BENCH_DEBIAN_CACHE ?? process.env.RBQ_DEBIAN_TEST_CACHE
  if (cacheDir === undefined) {
    console.log('debian: skipped (set RBQ_DEBIAN_TEST_CACHE or RBQ_BENCH_DEBIAN_CACHE to a cache dir holding a build root)')
    return
  }
  if (process.getuid?.() !== 0) {
    console.log('debian: skipped (needs root)')
    return
  }
  const { openArchive } = await import('../node/rebuild/debian/archive.js')
  const { buildRootTarball, runInBuildRoot, BUILD_USER, removeBuildRoot } = await import('../node/rebuild/debian/build-root.js')
  const { rebuildDebian } = await import('../node/rebuild/debian/builder.js')
  const archive = await openArchive({ cacheDir })
  const tarball = buildRootTarball(cacheDir, archive.location, archive.arch)
  if (!(await stat(tarball).then(() => true, () => false))) {
    console.log(`debian: skipped (no build root at ${tarball}; the Debian e2e tests create it)`)
    return
  }
  const source = process.env.RBQ_BENCH_DEBIAN_SOURCE ?? 'base-files'
  const outDir = join(dir, 'debian')
  // Phase durations from the builder's own progress events: where the fixed cost goes.
  const phases = new Map<string, number>()
  let phase = 'start'
  let phaseStart = performance.now()
  let t = performance.now()
  const res = await rebuildDebian(
    { source },
    {
      cacheDir,
      archive,
      outDir,
      keepBuildRoot: true,
      onProgress: (e) => {
        if (e.phase === phase) return
        phases.set(phase, (phases.get(phase) ?? 0) + performance.now() - phaseStart)
        phase = e.phase
        phaseStart = performance.now()
      }
    }
  )
  const endToEnd = performance.now() - t
  phases.set(phase, (phases.get(phase) ?? 0) + performance.now() - phaseStart)
  const src = await archive.sourcePackage(source)
  const root = join(outDir, 'root')
  const buildDir = `/build/${src.name}-${src.version.replace(/^\d+:/, '')}`
  const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: BUILD_USER.home, LC_ALL: 'C.UTF-8', TZ: 'UTC' }
  const bare: number[] = []
  for (let i = 0; i < RUNS; i++) {
    t = performance.now()
    const r = await runInBuildRoot(root, ['/bin/sh', '-c', 'cd "$1" && SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -STimestamp) exec dpkg-buildpackage -b -uc -us', 'sh', buildDir], { network: false, asRoot: false, env })
    bare.push(performance.now() - t)
    if (r.code !== 0) throw new Error(`bare dpkg-buildpackage failed: ${r.stderr.slice(-500)}`)
  }
  await removeBuildRoot(root)
  const b = median(bare)
  console.log(`debian: ${source} ${src.version}, outcome ${res.outcome}`)
  console.log(`  bare dpkg-buildpackage in the prepared build root   median ${fmt(b)} (runs: ${bare.map(fmt).join(', ')})`)
  console.log(`  rbq rebuildDebian end to end (indexes cached, root unpacked, deps installed, compare)   ${fmt(endToEnd)}`)
  console.log(`  ratio rbq/bare   ${(endToEnd / b).toFixed(2)} (${pct(endToEnd / b)}); fixed cost per rebuild ${fmt(endToEnd - b)}`)
  console.log(`  rbq phases       ${[...phases].filter(([p]) => p !== 'start').map(([p, ms]) => `${p} ${fmt(ms)}`).join(', ')}`)
}

const dir = await mkdtemp(join(tmpdir(), 'rbq-bench-rebuild-'))
try {
  await recipeBench(dir)
  await debianBench(dir)
} finally {
  await rm(dir, { recursive: true, force: true })
}
