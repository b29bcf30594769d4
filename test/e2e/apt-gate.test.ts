/**
 * The apt install gate, end to end: the real `apt-get` installs locally built .debs into a
 * throwaway dpkg root, with the gate installed by the real `rbq apt-hook install` into that
 * root's apt.conf.d, asking a real node (LevelDB store, ingest, HTTP API) over loopback.
 *
 *   attested reproduced by 2 trusted parties  → installed, nothing printed by rbq
 *   not attested                               → refused: apt exits non-zero, nothing unpacked
 *   tampered copy (one byte changed)           → refused as mismatch
 *   no node answering                          → refused, saying how to start it
 *   a policy with errors                       → refused, naming the line
 *   warn-only                                  → installed, with the warning
 *   unreproducible (archive file, rebuilds drift) → refused by default, naming the cause tags and
 *                                                how to allow it; `--unreproducible warn` installs
 *                                                with a warning; mismatch stays refused whatever
 *                                                the settings
 *
 * The throwaway root: apt's state, cache and config dirs and dpkg's --root/--admindir all point
 * into a temp dir (APT_CONFIG), so the host's packages and apt configuration are untouched.
 * Needs root (dpkg --root writes files owned by root). Skipped with the reason when not root or
 * apt/dpkg are missing — except in CI (CI=true), where a skip would hide a regression.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from '../../node/api/client.js'
import { policyPath } from '../../node/trust/policy-file.js'
import { formatPolicy } from '../../node/consensus/index.js'
import { inspectDeb } from '../../node/apt/deb-file.js'
import { sha256Hex } from '../../protocol/index.js'
import { attest, key, policy } from '../unit/node/consensus/fixtures.js'
import { RBQ_BIN, runRbq } from '../utils/cli.js'
import { hasDpkgDeb, makeDeb, tamperedCopy } from '../utils/make-deb.js'
import { closedPortUrl, startApiNode, type ApiNode } from '../utils/api-node.js'
import { makeTempDir } from '../utils/tmp.js'

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root (dpkg --root installs root-owned files)'
  if (spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status !== 0) return 'apt-get not installed'
  if (!hasDpkgDeb()) return 'dpkg-deb not installed'
  if (!existsSync(RBQ_BIN)) return `${RBQ_BIN} not built (npm run build)`
  return undefined
}
const reason = skipReason()
if (reason !== undefined) {
  if (process.env.CI === 'true') throw new Error(`apt gate e2e cannot run in CI: ${reason}`)
  console.log(`skipped test/e2e/apt-gate.test.ts: ${reason}`)
}

const A = key('apt gate party a')
const B = key('apt gate party b')

/** A dpkg root and the apt configuration that confines apt-get to it. */
async function makeRoot(dir: string): Promise<{ root: string; aptConfig: string; confDir: string }> {
  const root = join(dir, 'root')
  for (const d of ['var/lib/dpkg/info', 'var/lib/dpkg/updates', 'var/lib/dpkg/triggers', 'var/lib/apt/lists/partial', 'var/cache/apt/archives/partial', 'etc/apt/apt.conf.d', 'etc/apt/sources.list.d', 'etc/apt/preferences.d', 'var/log/apt']) {
    await mkdir(join(root, d), { recursive: true })
  }
  await writeFile(join(root, 'var/lib/dpkg/status'), '')
  const aptConfig = join(dir, 'apt.conf')
  // APT_CONFIG is read first, so its Dir::Etc::parts decides which apt.conf.d apt reads: ours.
  await writeFile(
    aptConfig,
    [
      `Dir::Etc::parts "${root}/etc/apt/apt.conf.d";`,
      'Dir::Etc::main "/dev/null";',
      'Dir::Etc::sourcelist "/dev/null";',
      `Dir::Etc::sourceparts "${root}/etc/apt/sources.list.d";`,
      `Dir::Etc::preferencesparts "${root}/etc/apt/preferences.d";`,
      `Dir::State "${root}/var/lib/apt";`,
      `Dir::State::status "${root}/var/lib/dpkg/status";`,
      `Dir::Cache "${root}/var/cache/apt";`,
      `Dir::Log "${root}/var/log/apt";`,
      `DPkg::Options { "--root=${root}"; "--admindir=${root}/var/lib/dpkg"; "--log=${root}/var/log/dpkg.log"; };`,
      'Debug::NoLocking "true";',
      'APT::Sandbox::User "root";',
      ''
    ].join('\n')
  )
  return { root, aptConfig, confDir: join(root, 'etc/apt/apt.conf.d') }
}

describe.skipIf(reason !== undefined)('apt gate with the real apt-get', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let node: ApiNode | undefined
  let env: { root: string; aptConfig: string; confDir: string }
  let good: string
  let unattested: string
  let tampered: string

  // Asynchronous: the node answering the hook runs in this process's event loop.
  const aptInstall = (deb: string, ...extra: string[]) => run('apt-get', ['install', '-y', '-q', ...extra, deb], { ...process.env, APT_CONFIG: env.aptConfig, DEBIAN_FRONTEND: 'noninteractive' })
  const installed = (pkg: string) => existsSync(join(env.root, 'usr/share', pkg, 'README'))
  const hookInstall = async (...args: string[]) => {
    const r = await runRbq(['apt-hook', 'install', '--apt-conf-dir', env.confDir, '--data', join(dir, 'data'), ...args])
    expect(r.code, r.stderr).toBe(0)
  }

  beforeAll(async () => {
    ;({ dir, cleanup } = await makeTempDir('rbq-apt-gate-'))
    env = await makeRoot(dir)
    const debs = join(dir, 'debs')
    good = makeDeb(debs, { package: 'rbq-good', version: '1.0-1' })
    unattested = makeDeb(debs, { package: 'rbq-unattested', version: '1.0-1' })
    tampered = tamperedCopy(good, join(debs, 'tampered', 'rbq-good_1.0-1_all.deb'))

    const dataDir = join(dir, 'data')
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    await writeFile(policyPath(dataDir), formatPolicy(policy({ threshold: 2, roots: [{ name: 'a', key: A }, { name: 'b', key: B }] })))
    node = await startApiNode(dataDir)
    const { query } = await inspectDeb(good)
    const frames = [A, B].map((k) => attest(k, { seq: 1, pkg: query.package, artifact: query.artifact, sha256: query.sha256 }).bytes)
    const results = await new ApiClient({ dataDir }).submitFrames(frames)
    expect(results.map((r) => r.status)).toEqual(['stored', 'stored'])
  })

  afterAll(async () => {
    await node?.stop()
    await cleanup?.()
  })

  it('installs a package reproduced by 2 trusted parties, and rbq prints nothing', async () => {
    await hookInstall()
    expect(await readFile(join(env.confDir, '80rbq'), 'utf8')).toContain('apt-hook run --data')
    const r = await aptInstall(good)
    expect(r.status, r.stderr + r.stdout).toBe(0)
    expect(installed('rbq-good')).toBe(true)
    expect(r.stderr).not.toMatch(/rbq/)
  })

  it('refuses a package nobody attested, naming it and its verdict; dpkg never runs', async () => {
    await hookInstall()
    const r = await aptInstall(unattested)
    expect(r.status).not.toBe(0)
    expect(r.stderr).toContain('rbq: refusing the installation')
    expect(r.stderr).toMatch(/rbq-unattested:all 1\.0-1 \(rbq-unattested_1\.0-1_all\.deb.*\): unknown/)
    // the hint removes the gate where it was installed (issue 15)
    expect(r.stderr).toContain(`Stop gating installations: rbq apt-hook uninstall --apt-conf-dir ${env.confDir}\n`)
    expect(installed('rbq-unattested')).toBe(false)
  })

  it('refuses a tampered copy of an attested package as a mismatch', async () => {
    await hookInstall()
    // --reinstall: whether or not the genuine file was installed by another test, apt must act.
    const r = await aptInstall(tampered, '--reinstall')
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/rbq-good:all 1\.0-1 .*: mismatch/)
  })

  it('warn-only installs anyway and says why', async () => {
    await hookInstall('--warn-only')
    const deb = makeDeb(join(dir, 'debs'), { package: 'rbq-warned', version: '1' })
    const r = await aptInstall(deb)
    expect(r.status, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/warning: 1 package does not meet.*\n.*rbq-warned.*unknown/)
    expect(installed('rbq-warned')).toBe(true)
  })

  it('per-status settings: unreproducible is refused by default with its cause tags, installed with --unreproducible warn; mismatch always refused', async () => {
    const deb = makeDeb(join(dir, 'debs'), { package: 'rbq-drifted', version: '1.0-1' })
    const { query } = await inspectDeb(deb)
    // a and b saw the archive publish this very file; their rebuilds with today's toolchain differ.
    const frames = [A, B].map(
      (k, i) =>
        attest(k, {
          seq: 2,
          pkg: query.package,
          artifact: query.artifact,
          sha256: sha256Hex(`today's rebuild ${i}`),
          outcome: 'mismatch',
          upstream: query.sha256,
          diff: { tags: ['build-id'], summary: 'ELF build-id differs' }
        }).bytes
    )
    const stored = await new ApiClient({ dataDir: join(dir, 'data') }).submitFrames(frames)
    expect(stored.map((s) => s.status)).toEqual(['stored', 'stored'])

    await hookInstall()
    const refused = await aptInstall(deb)
    expect(refused.status).not.toBe(0)
    expect(refused.stderr).toMatch(/rbq-drifted:all 1\.0-1 .*: unreproducible — not reproducible with today's toolchain: 2 parties rebuilt other bytes \(build-id\); the archive published this file; not a sign of tampering/)
    expect(refused.stderr).toMatch(/to install such packages: rbq apt-hook install .*--unreproducible warn \(or allow\)/)
    expect(installed('rbq-drifted')).toBe(false)

    await hookInstall('--unreproducible', 'warn', '--unknown', 'allow')
    expect(await readFile(join(env.confDir, '80rbq'), 'utf8')).toContain('--unreproducible warn --unknown allow')
    const warned = await aptInstall(deb)
    expect(warned.status, warned.stderr).toBe(0)
    expect(warned.stderr).toMatch(/rbq: warning: 1 package is not reproduced; installing as your gate settings allow:\n  rbq-drifted:all 1\.0-1 .*: unreproducible/)
    expect(installed('rbq-drifted')).toBe(true)
    // allowing unknown files does not let a tampered copy through
    const tamperedRun = await aptInstall(tampered, '--reinstall')
    expect(tamperedRun.status).not.toBe(0)
    expect(tamperedRun.stderr).toMatch(/rbq-good:all 1\.0-1 .*: mismatch/)
  })

  it('refuses everything when no node answers, saying how to start it', async () => {
    await hookInstall('--api', await closedPortUrl())
    const deb = makeDeb(join(dir, 'debs'), { package: 'rbq-no-node', version: '1' })
    const r = await aptInstall(deb)
    expect(r.status).not.toBe(0)
    expect(r.stderr).toContain('the local rebuild-quorum node is not answering')
    expect(r.stderr).toContain('rbq node start --data')
    expect(r.stderr).toContain(`rbq apt-hook uninstall --apt-conf-dir ${env.confDir}\``)
    expect(installed('rbq-no-node')).toBe(false)
  })

  it('refuses when the policy has errors, naming the line', async () => {
    const bad = join(dir, 'bad-policy.toml')
    await writeFile(bad, 'threshold = 2\ncount = "parties"\n')
    await hookInstall('--policy', bad)
    const deb = makeDeb(join(dir, 'debs'), { package: 'rbq-bad-policy', version: '1' })
    const r = await aptInstall(deb)
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/rbq: refusing the installation: packages could not be checked: policy:2:.*count.*\[POLICY_INVALID\]/)
    expect(installed('rbq-bad-policy')).toBe(false)
  })

  it('uninstall removes exactly the gate', async () => {
    await hookInstall()
    const r = await runRbq(['apt-hook', 'uninstall', '--apt-conf-dir', env.confDir])
    expect(r.code).toBe(0)
    expect(existsSync(join(env.confDir, '80rbq'))).toBe(false)
    const deb = makeDeb(join(dir, 'debs'), { package: 'rbq-ungated', version: '1' })
    const later = await aptInstall(deb)
    expect(later.status, later.stderr).toBe(0)
    expect(installed('rbq-ungated')).toBe(true)
  })
})

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('error', reject)
    child.on('close', (status) => {
      clearTimeout(timer)
      resolve({ status, stdout, stderr })
    })
  })
}
