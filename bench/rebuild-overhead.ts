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
 * RBQ_BENCH_DEBIAN_CACHE, e.g. the Debian e2e tests' cache; never creates one; as root only):
 * after one warm-up rebuild of base-files, rbq's rebuildDebian end to end on the warm root vs
 * the bare `dpkg-buildpackage -b -uc -us -J<n>` in a kept build root (deps installed, same
 * source tree), alternating, and the ratio of the medians (goal ≤ 1.5). With
 * RBQ_BENCH_DEBIAN_SET=<concurrency>: packages rebuilt per hour on THROUGHPUT_CANDIDATES (first 20 the mirror serves; two passes;
 * several minutes).
 */
import '../common/polyfills.js'
import { createHash } from 'node:crypto'
import { copyFile, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { run } from '../common/subprocess.js'
import { rebuildRecipe } from '../node/rebuild/recipe/recipe-builder.js'
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
  await alternate(runBare, runRbq)
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

/** RUNS runs of each, alternating which goes first, so a load trend does not favour either side. */
async function alternate(runBare: () => Promise<void>, runRbq: (i: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < RUNS; i++) {
    if (i % 2 === 0) {
      await runBare()
      await runRbq(i)
    } else {
      await runRbq(i)
      await runBare()
    }
  }
}

/**
 * Small real bookworm source packages (arch all: perl modules and data packages, built with
 * debhelper, some with more build deps: libmodule-build-perl, python3, jetring + gnupg), for the
 * packages-per-hour figure: the first THROUGHPUT_COUNT of them whose source files the mirror
 * serves (a mirror may lack some pool files; those are named and skipped before timing starts).
 */
const THROUGHPUT_COUNT = 20
const THROUGHPUT_CANDIDATES = [
  'liberror-perl', 'libtry-tiny-perl', 'libsub-uplevel-perl', 'libclass-method-modifiers-perl', 'libmodule-runtime-perl',
  'libdata-dump-perl', 'libfile-which-perl', 'libipc-run3-perl', 'libsub-install-perl', 'libdata-optlist-perl',
  'libtest-fatal-perl', 'libtext-glob-perl', 'libfile-slurp-perl', 'libtimedate-perl', 'libexporter-tiny-perl',
  'libtest-warn-perl', 'distro-info-data', 'media-types', 'netbase', 'debian-archive-keyring',
  'base-files', 'libparams-util-perl', 'libtest-deep-perl', 'libtest-exception-perl', 'libdevel-globaldestruction-perl',
  'librole-tiny-perl', 'libmodule-pluggable-perl', 'libtest-requires-perl', 'libfile-homedir-perl', 'libtext-diff-perl',
  'libalgorithm-diff-perl', 'libipc-system-simple-perl', 'libdata-optlist-perl', 'libpath-tiny-perl', 'libfile-copy-recursive-perl'
]

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
  const { rebuildDebian, defaultParallel } = await import('../node/rebuild/debian/debian-builder.js')
  const { readFile } = await import('node:fs/promises')
  let t = performance.now()
  const archive = await openArchive({ cacheDir })
  const tarball = buildRootTarball(cacheDir, archive.location, archive.arch)
  if (!(await stat(tarball).then(() => true, () => false))) {
    console.log(`debian: skipped (no build root at ${tarball}; the Debian e2e tests create it)`)
    return
  }
  const source = process.env.RBQ_BENCH_DEBIAN_SOURCE ?? 'base-files'
  const src = await archive.sourcePackage(source)
  await archive.binaries(src)
  const indexOpen = performance.now() - t
  const parallel = defaultParallel(1)
  // Warm-up (not timed): the base root unpacked once, the dependency layer made, .debs cached.
  t = performance.now()
  const first = await rebuildDebian({ source }, { cacheDir, archive, parallel, diffoscope: false, outDir: join(dir, 'debian-warmup') })
  const warmup = performance.now() - t
  await rm(join(dir, 'debian-warmup'), { recursive: true, force: true })

  // Alternating: rbq end to end (warm) and the bare dpkg-buildpackage in a kept build root.
  const keptDir = join(dir, 'debian-kept')
  await rebuildDebian({ source }, { cacheDir, archive, parallel, diffoscope: false, outDir: keptDir, keepBuildRoot: true })
  const kept = JSON.parse(await readFile(join(keptDir, 'buildroot.json'), 'utf8')) as import('../node/rebuild/debian/build-root.js').BuildRoot
  const buildDir = `/build/${src.name}-${src.version.replace(/^\d+:/, '')}`
  const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: BUILD_USER.home, USER: BUILD_USER.name, LOGNAME: BUILD_USER.name, LC_ALL: 'C.UTF-8', TZ: 'UTC' }
  const bareScript = `umask 022; cd "$1" && SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -STimestamp) exec dpkg-buildpackage -b -uc -us -J${parallel}`
  const bare: number[] = []
  const endToEnd: number[] = []
  const outcomes = new Set<string>()
  const phases = new Map<string, number[]>()
  const runBare = async () => {
    const t0 = performance.now()
    const r = await runInBuildRoot(kept, ['/bin/sh', '-c', bareScript, 'sh', buildDir], { network: false, asRoot: false, env })
    bare.push(performance.now() - t0)
    if (r.code !== 0) throw new Error(`bare dpkg-buildpackage failed: ${r.stderr.slice(-500)}`)
  }
  const runRbq = async (i: number) => {
    const own = new Map<string, number>()
    let phase = 'start'
    let phaseStart = performance.now()
    const t0 = performance.now()
    const res = await rebuildDebian({ source }, {
      cacheDir, archive, parallel, diffoscope: false, outDir: join(dir, `debian-${i}`),
      onProgress: (e) => {
        if (e.phase === phase) return
        own.set(phase, (own.get(phase) ?? 0) + performance.now() - phaseStart)
        phase = e.phase
        phaseStart = performance.now()
      }
    })
    endToEnd.push(performance.now() - t0)
    own.set(phase, (own.get(phase) ?? 0) + performance.now() - phaseStart)
    for (const [p, ms] of own) if (p !== 'start') phases.set(p, [...(phases.get(p) ?? []), ms])
    outcomes.add(`${res.outcome} ${res.artifacts.map((a) => a.sha256.slice(0, 12)).join(',')} inputs ${res.inputs.sha256.slice(0, 12)}`)
    await rm(join(dir, `debian-${i}`), { recursive: true, force: true })
  }
  await alternate(runBare, runRbq)
  await removeBuildRoot(keptDir)
  const b = median(bare)
  const e = median(endToEnd)
  console.log(`debian: ${source} ${src.version}, parallel=${parallel}, ${RUNS} runs each, alternating; first rebuild ${first.outcome}`)
  console.log(`  archive open + index lookup (parsed indexes from the disk cache)   ${fmt(indexOpen)}`)
  console.log(`  first rebuild in this cache state (warm-up, not in the ratio)        ${fmt(warmup)}`)
  console.log(`  bare dpkg-buildpackage in a prepared root   median ${fmt(b)} (runs: ${bare.map(fmt).join(', ')})`)
  console.log(`  rbq rebuildDebian end to end, warm root      median ${fmt(e)} (runs: ${endToEnd.map(fmt).join(', ')})`)
  console.log(`  ratio rbq/bare   ${(e / b).toFixed(2)} (medians; goal ≤ 1.5); fixed cost per rebuild ${fmt(e - b)}`)
  console.log(`  rbq phases (medians)   ${[...phases].map(([p, ms]) => `${p} ${fmt(median(ms))}`).join(', ')}`)
  console.log(`  results   ${[...outcomes].join(' | ')} (${outcomes.size === 1 ? 'identical in every run' : 'DIFFER between runs'})`)
  if (process.env.RBQ_BENCH_DEBIAN_SET !== undefined) await throughputBench(dir, cacheDir, archive)
}

/**
 * Packages rebuilt per hour on the first THROUGHPUT_COUNT of THROUGHPUT_CANDIDATES with `concurrency` builds at once (the cores split
 * between them, as the node does): pass 1 as the cache stands (dependency layers made on first
 * use), pass 2 warm. RBQ_BENCH_DEBIAN_SET=<concurrency> (e.g. 2).
 */
async function throughputBench(dir: string, cacheDir: string, archive: import('../node/rebuild/debian/archive.js').DebianArchive): Promise<void> {
  const { rebuildDebian, defaultParallel } = await import('../node/rebuild/debian/debian-builder.js')
  const concurrency = Math.max(1, Number(process.env.RBQ_BENCH_DEBIAN_SET) || 1)
  // Untimed: the set is the first THROUGHPUT_COUNT candidates whose source files download here.
  const set: string[] = []
  const unavailable: string[] = []
  for (const name of new Set(THROUGHPUT_CANDIDATES)) {
    if (set.length === THROUGHPUT_COUNT) break
    try {
      const src = await archive.sourcePackage(name)
      for (const f of src.files) await archive.fetchPoolFile(`${src.directory}/${f.name}`, f, undefined, src.mirror)
      set.push(name)
    } catch (e) {
      unavailable.push(`${name} (${(e as Error).message.slice(0, 60)})`)
    }
  }
  if (unavailable.length > 0) console.log(`  skipped, sources not served by this mirror: ${unavailable.join('; ')}`)
  for (const pass of [1, 2]) {
    const queue = [...set]
    const outcomes = new Map<string, string>()
    const t0 = performance.now()
    const worker = async () => {
      for (let s = queue.shift(); s !== undefined; s = queue.shift()) {
        const t = performance.now()
        const outDir = join(dir, `set-${pass}-${s}`)
        try {
          const r = await rebuildDebian({ source: s }, { cacheDir, archive, parallel: defaultParallel(concurrency), diffoscope: false, outDir })
          outcomes.set(s, `${r.outcome} ${fmt(performance.now() - t)}`)
        } catch (e) {
          outcomes.set(s, `error ${(e as Error).message.slice(0, 80)}`)
        }
        await rm(outDir, { recursive: true, force: true })
      }
    }
    await Promise.all(Array.from({ length: concurrency }, worker))
    const wall = performance.now() - t0
    const byOutcome = new Map<string, number>()
    for (const o of outcomes.values()) byOutcome.set(o.split(' ')[0] as string, (byOutcome.get(o.split(' ')[0] as string) ?? 0) + 1)
    const finished = set.length - (byOutcome.get('error') ?? 0) // attested rebuilds (reproduced, mismatch, failed)
    console.log(`debian throughput, pass ${pass} (${pass === 1 ? 'cache as it stands' : 'warm'}), ${set.length} packages, concurrency ${concurrency}: ${fmt(wall)} wall = ${((finished * 3_600_000) / wall).toFixed(0)} attested rebuilds/hour; ${[...byOutcome].map(([k, n]) => `${k} ${n}`).join(', ')}`)
    console.log(`  ${[...outcomes].map(([s, o]) => `${s} ${o}`).join('; ')}`)
  }
}

const dir = await mkdtemp(join(tmpdir(), 'rbq-bench-rebuild-'))
try {
  await recipeBench(dir)
  await debianBench(dir)
} finally {
  await rm(dir, { recursive: true, force: true })
}
