#!/usr/bin/env node
/**
 * `npm run demo`: rebuild-quorum in five minutes, on one machine, for a newcomer to read.
 *
 *   1. three nodes (alice, bob, carol): own data dirs and keys, `rbq node start` processes on
 *      127.0.0.1, gossiping over libp2p; each trusts all three and needs 2 to agree
 *   2. each rebuilds real Debian packages (base-files, distro-info-data) with `rbq rebuild
 *      --publish`, signing what it got; the attestations gossip to the other nodes
 *   3. `rbq verify` on the official .deb from the archive → reproduced (exit 0), and on a copy
 *      with one byte changed → mismatch (exit 1)
 *
 * Debian rebuilds need root and mmdebstrap (see `rbq doctor`). Without them the demo says so and
 * uses a recipe instead (a small tarball built from a text file): same nodes, same story.
 *
 * Options: --recipes (use the recipe even when Debian builds could run), --keep (keep the demo's
 * data dirs). The Debian download cache and build root are kept between runs in
 * $XDG_CACHE_HOME/rbq-demo (the three nodes share it; each still runs its own build).
 */
import '../common/polyfills.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { homedir, tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ApiClient } from '../client/api-client.js'

const RBQ = fileURLToPath(new URL('./main.js', import.meta.url))
const NAMES = ['alice', 'bob', 'carol'] as const
type Name = (typeof NAMES)[number]
const DEBIAN_PACKAGES = ['base-files', 'distro-info-data']
const RECIPE_PURL = 'pkg:generic/rbq-demo-greeting@1.0'

const argv = new Set(process.argv.slice(2))
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s)
const dim = (s: string) => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s)
const say = (s = '') => process.stdout.write(s + '\n')
let step = 0
const heading = (s: string) => say(`\n${bold(`${++step}. ${s}`)}`)

interface NodeProc {
  name: Name
  dir: string
  child: ChildProcess
  client: ApiClient
  keyid: string
  publicKey: string
  address: string
  api: string
}

interface Result {
  code: number | null
  stdout: string
  stderr: string
}

let base = ''
/** Paths in echoed commands are shown relative to the demo dir: `$DEMO/alice`. */
const short = (s: string) => (base === '' ? s : s.split(base).join('$DEMO'))

/** Runs `rbq ARGS`; with `show`, echoes the command and streams its output, indented. */
function rbq(args: string[], opts: { show?: boolean; showStdout?: boolean } = {}): Promise<Result> {
  const show = opts.show === true
  const showStdout = opts.showStdout ?? show
  if (show) say(dim(`  $ rbq ${args.map(short).join(' ')}`))
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RBQ, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    const indent = (chunk: string) => chunk.replace(/^(?=.)/gm, '    ')
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString()
      if (showStdout) process.stdout.write(indent(short(d.toString())))
    })
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
      if (show) process.stdout.write(dim(indent(short(d.toString()))))
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

async function must(args: string[], opts: { show?: boolean; showStdout?: boolean } = {}): Promise<Result> {
  const r = await rbq(args, opts)
  if (r.code !== 0) throw new Error(`rbq ${args.map(short).join(' ')} failed (exit ${r.code}):\n${short(r.stderr.trim())}`)
  return r
}

/** Polls `check` until it returns a value, or fails after `ms` with `what`. */
async function waitFor<T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await check().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

async function startNode(name: Name, dir: string, bootstrap: string[]): Promise<NodeProc> {
  const config = [
    '[log]',
    'level = "info"',
    '[p2p]',
    'listen = ["/ip4/127.0.0.1/tcp/0"]',
    `bootstrap = ${JSON.stringify(bootstrap)}`,
    '[sync]',
    'interval_seconds = 10',
    '[api]',
    'port = 0',
    ''
  ].join('\n')
  await writeFile(join(dir, 'node.toml'), config)
  const log = createWriteStream(join(dir, 'node.log'))
  await new Promise((resolve) => log.once('open', resolve))
  const child = spawn(process.execPath, [RBQ, 'node', 'start', '--data', dir, '--config', join(dir, 'node.toml')], { stdio: ['ignore', 'ignore', log] })
  children.push(child)
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${name}'s node exited (code ${code}); see ${join(dir, 'node.log')}`))))
  exited.catch(() => undefined)
  const { ApiClient } = await import('../client/api-client.js')
  const api = await Promise.race([exited, waitFor(`${name}'s API`, 60_000, async () => (await readFile(join(dir, 'api.url'), 'utf8')).trim() || undefined)])
  const client = new ApiClient({ dataDir: dir })
  const status = await Promise.race([exited, waitFor(`${name}'s status`, 30_000, () => client.status())])
  const listen = status.listen[0] ?? ''
  const address = listen.includes('/p2p/') ? listen : `${listen}/p2p/${status.peerId}`
  return { name, dir, child, client, keyid: status.keyid ?? '', publicKey: status.publicKey ?? '', address, api }
}

const children: ChildProcess[] = []

async function stopAll(): Promise<void> {
  await Promise.all(
    children.splice(0).map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve()
          const kill = setTimeout(() => child.kill('SIGKILL'), 15_000)
          child.once('exit', () => {
            clearTimeout(kill)
            resolve()
          })
          child.kill('SIGTERM')
        })
    )
  )
}

/** Debian builds possible here? The doctor's verdict, and why not. */
async function debianReadiness(): Promise<{ ready: boolean; why: string }> {
  if (argv.has('--recipes')) return { ready: false, why: 'you asked for --recipes' }
  const { debianDoctor } = await import('../node/rebuild/debian/debian-doctor.js')
  const report = await debianDoctor()
  const missing = report.checks.filter((c) => c.required && !c.ok)
  if (missing.length === 0) return { ready: true, why: '' }
  const fix = report.install.length > 0 ? ` (apt-get install ${report.install.join(' ')})` : ''
  return { ready: false, why: missing.map((c) => `${c.name}: ${c.detail}`).join('; ') + fix }
}

interface Target {
  /** What `rbq verify` is asked about. */
  file: string
  /** Passed as --package for non-.deb files. */
  package?: string
}

/** Each node rebuilds each Debian package and publishes; returns the official .debs to verify. */
async function rebuildDebian(nodes: NodeProc[], cache: string): Promise<Target[]> {
  const official: Target[] = []
  for (const pkg of DEBIAN_PACKAGES) {
    let result: { package: string; outcome: string; upstream: { name: string; sha256: string }[] } | undefined
    for (const n of nodes) {
      say(`\n  ${bold(n.name)} rebuilds ${pkg} from its source package:`)
      const r = await rbq(['rebuild', `pkg:deb/debian/${pkg}`, '--publish', '--json', '--data', n.dir, '--output-dir', join(base, 'builds', `${n.name}-${pkg}`)], { show: true, showStdout: false })
      if (r.code === 2) throw new Error(`the rebuild could not run:\n${short(r.stderr.trim())}`)
      const j = JSON.parse(r.stdout) as { package: string; outcome: string; artifacts: { name: string; sha256: string }[]; upstream: { name: string; sha256: string }[]; frame?: { published?: string } }
      const compared = j.artifacts.map((a) => `${a.name} ${j.upstream.some((u) => u.name === a.name && u.sha256 === a.sha256) ? '= the archive\'s file' : '≠ the archive\'s file'}`)
      say(`    → ${j.outcome}: ${compared.join(', ')}; signed by ${n.name} and published (${j.frame?.published ?? 'not published'})`)
      result = j
    }
    if (result === undefined) continue
    // The official .deb, fetched from the archive and checked against its signed Packages index.
    const { openArchive } = await import('../node/rebuild/debian/archive.js')
    const { parsePurl } = await import('../protocol/purl.js')
    const p = parsePurl(result.package)
    const archive = await openArchive({ cacheDir: cache })
    const src = await archive.sourcePackage(p.name, p.version)
    for (const b of await archive.binaries(src)) {
      const path = await archive.fetchPoolFile(b.filename, { sha256: b.sha256, size: b.size }, undefined, b.mirror)
      const dest = join(base, 'official', basename(b.filename))
      await mkdir(join(base, 'official'), { recursive: true })
      await copyFile(path, dest)
      official.push({ file: dest })
    }
  }
  return official
}

const GREETING = 'Reproducible builds let anyone check that a binary came from its source.\n'
const RECIPE = `# A tiny declarative build: the same inputs must give the same bytes on every machine.
purl = "${RECIPE_PURL}"
command = "mkdir -p out && tr a-z A-Z < greeting.txt > out/GREETING.txt && tar --sort=name --mtime=@$SOURCE_DATE_EPOCH --owner=0 --group=0 --numeric-owner -cf - out | gzip -n > rbq-demo-greeting-1.0.tar.gz"
outputs = ["rbq-demo-greeting-1.0.tar.gz"]

[[source]]
path = "greeting.txt"
sha256 = "SHA256"
`

/** Recipe fallback: the "release" is built once by its publisher, then every node rebuilds it. */
async function rebuildRecipe(nodes: NodeProc[]): Promise<Target[]> {
  const { sha256Hex } = await import('../protocol/encoding.js')
  const dir = join(base, 'recipe')
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'greeting.txt'), GREETING)
  const recipe = join(dir, 'greeting.toml')
  await writeFile(recipe, RECIPE.replace('SHA256', sha256Hex(GREETING)))
  say(`\n  The recipe ${short(recipe)}:`)
  for (const line of (await readFile(recipe, 'utf8')).trimEnd().split('\n')) say(dim(`    ${line}`))
  say(`\n  The publisher builds the release file once (this is the file users download):`)
  const release = await must(['rebuild', recipe, '--json', '--output-dir', join(base, 'release')], { show: true, showStdout: false })
  const published = (JSON.parse(release.stdout) as { artifacts: { name: string; path: string; sha256: string }[] }).artifacts[0]
  if (published === undefined) throw new Error('the recipe produced no file')
  say(`    → ${short(published.path)} sha256:${published.sha256.slice(0, 16)}…`)
  for (const n of nodes) {
    say(`\n  ${bold(n.name)} rebuilds it and publishes what it got:`)
    const r = await must(['rebuild', recipe, '--publish', '--json', '--data', n.dir, '--output-dir', join(base, 'builds', n.name)], { show: true, showStdout: false })
    const j = JSON.parse(r.stdout) as { outcome: string; artifacts: { name: string; sha256: string }[]; frame?: { published?: string } }
    say(`    → ${j.outcome}: ${j.artifacts.map((a) => `${a.name} sha256:${a.sha256.slice(0, 16)}…`).join(', ')}; published (${j.frame?.published ?? 'no'})`)
  }
  return [{ file: published.path, package: RECIPE_PURL }]
}

/** A copy with one byte changed near the end: same name, another file. */
async function tampered(src: string): Promise<string> {
  const bytes = await readFile(src)
  const at = Math.max(0, bytes.length - 20)
  bytes.writeUInt8(bytes.readUInt8(at) ^ 0x01, at)
  const dest = join(base, 'tampered', basename(src))
  await mkdir(join(base, 'tampered'), { recursive: true })
  await writeFile(dest, bytes)
  return dest
}

async function verify(carol: NodeProc, t: Target): Promise<number | null> {
  const r = await rbq(['verify', t.file, ...(t.package === undefined ? [] : ['--package', t.package]), '--data', carol.dir], { show: true })
  say(dim(`    (exit code ${r.code})`))
  return r.code
}

async function main(): Promise<number> {
  say(bold('rebuild-quorum demo'))
  say('Three rebuilder nodes start on this machine: alice, bob and carol. Each has its own data dir')
  say('and signing key. They rebuild packages, sign what they got, and gossip the signed statements.')
  say('Then carol asks her node: "does this exact file meet my policy?" — her policy trusts all three')
  say('and needs 2 of them to have rebuilt exactly that file.')

  base = await mkdtemp(join(tmpdir(), 'rbq-demo-'))
  say(dim(`\n$DEMO = ${base}`))
  const readiness = await debianReadiness()
  const mode = readiness.ready ? 'debian' : 'recipe'
  if (mode === 'recipe') {
    say(`\nDebian rebuilds cannot run here (${readiness.why}).`)
    say('The demo uses a recipe instead: a declarative build anyone can repeat (run as root with mmdebstrap')
    say('installed to see real Debian packages rebuilt: sudo npm run demo).')
  }
  const cache = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'rbq-demo', 'debian')

  heading('Three nodes, three keys')
  for (const name of NAMES) {
    const dir = join(base, name)
    await mkdir(dir, { recursive: true, mode: 0o700 })
    if (mode === 'debian') {
      // One download cache and build root for the three nodes: each still runs its own build.
      await mkdir(cache, { recursive: true })
      await mkdir(join(dir, 'cache'), { recursive: true })
      await symlink(cache, join(dir, 'cache', 'debian'))
    }
    await must(['init', '--data', dir], { show: name === 'alice' })
  }

  heading('Starting the nodes (libp2p on 127.0.0.1; logs in each data dir: node.log)')
  const alice = await startNode('alice', join(base, 'alice'), [])
  const others = await Promise.all((['bob', 'carol'] as const).map((n) => startNode(n, join(base, n), [alice.address])))
  const nodes = [alice, ...others]
  const carol = nodes[2] as NodeProc
  for (const n of nodes) say(`  ${n.name.padEnd(6)} key ${n.keyid.slice(0, 16)}…  peer ${short(n.address)}  API ${n.api}`)
  await waitFor('bob and carol to connect to alice', 30_000, async () => ((await alice.client.peers()).length >= 2 ? true : undefined))
  say('  bob and carol are connected to alice; gossip flows through her to everyone.')

  heading('Trust: every node trusts the three keys, threshold 2')
  for (const n of nodes) {
    for (const m of nodes) {
      await must(['trust', 'add', m.name, m.publicKey, '--data', n.dir], { show: n === carol })
    }
  }
  await must(['trust', 'list', '--data', carol.dir], { show: true })

  heading(mode === 'debian' ? `Each node rebuilds ${DEBIAN_PACKAGES.join(' and ')} from source and compares with the archive` : 'Each node rebuilds the recipe')
  const targets = mode === 'debian' ? await rebuildDebian(nodes, cache) : await rebuildRecipe(nodes)

  heading('Gossip: waiting until carol has everybody\'s statements')
  const { sha256File } = await import('../common/files.js')
  for (const t of targets) {
    const { sha256 } = await sha256File(t.file)
    const have = await waitFor(`carol to see 3 statements about ${basename(t.file)}`, 60_000, async () => {
      const r = await carol.client.verdict({ sha256, ...(t.package === undefined ? {} : { package: t.package, artifact: basename(t.file) }) })
      const n = Math.max(0, ...r.verdicts.map((v) => v.evidence.have))
      return n >= 3 ? n : undefined
    }).catch(() => undefined)
    say(`  ${basename(t.file)}: ${have === undefined ? 'not every statement arrived in time; judging with what is there' : 'alice, bob and carol agree on its digest'}`)
  }

  heading(mode === 'debian' ? 'carol verifies the official .deb files from the Debian archive' : 'carol verifies the release file')
  let ok = true
  for (const t of targets) ok = (await verify(carol, t)) === 0 && ok

  heading('Someone hands carol a tampered copy (one byte changed, same name)')
  const first = targets[0]
  if (first !== undefined) {
    const bad = { ...first, file: await tampered(first.file) }
    ok = (await verify(carol, bad)) === 1 && ok
  }

  say(`\n${bold(ok ? 'That is the whole idea.' : 'The demo did not go as expected (see above).')}`)
  say('  reproduced → independent parties you trust rebuilt exactly this file from source;')
  say('  mismatch   → they agree on another file: what you have is not what the source builds to.')
  say('Next: README.md — run a node (rbq init, rbq node start), gate apt installs (rbq apt-hook install),')
  say('score your system (rbq health).')
  return ok ? 0 : 1
}

let code = 1
const onSignal = () => {
  void stopAll().then(() => process.exit(130))
}
process.once('SIGINT', onSignal)
process.once('SIGTERM', onSignal)
try {
  code = await main()
} catch (e) {
  say(`\ndemo failed: ${(e as Error).message}`)
  if (base !== '') say(`node logs: ${base}/<name>/node.log`)
} finally {
  await stopAll()
  // A failed run keeps its data dirs and node logs for a look.
  if (base !== '' && code === 0 && !argv.has('--keep') && existsSync(base)) await rm(base, { recursive: true, force: true })
  else if (base !== '') say(dim(`kept ${base}`))
}
process.exitCode = code
