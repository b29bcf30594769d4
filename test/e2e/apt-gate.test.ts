/**
 * The apt install gate, end to end: the real `apt-get` installs locally built .debs into a
 * throwaway dpkg root, with the gate installed by the real `rbq apt-hook install` into that
 * root's apt.conf.d (hook protocol 3, a launcher script standing for /usr/local/bin/rbq, the
 * settings in a temp apt-gate.toml), asking a real node (LevelDB store, ingest, HTTP API) over
 * loopback.
 *
 *   mode strict (default): reproduced → installed silently; unknown, insufficient → refused
 *   tampered copy (one byte changed)           → refused as mismatch, in every mode but warn
 *   mode tampering-only                        → insufficient installed, mismatch refused
 *   mode warn                                  → installed, with the report
 *   per-verdict settings (unreproducible warn) → installed with a warning naming the cause tags
 *   allow_packages / allow_origins             → installed with a warning (the origin from a
 *                                                local apt repository whose Release says
 *                                                Origin: Debian, Label: Debian-Security)
 *   launcher deleted                           → refused with the fix, never a bare exit 127
 *   no node answering; a policy with errors    → refused, saying why
 *   apt's protocol 3 input, captured by a second hook, parses as the gate reads it
 *
 * The throwaway root: apt's state, cache and config dirs and dpkg's --root/--admindir all point
 * into a temp dir (APT_CONFIG), so the host's packages and apt configuration are untouched.
 * Needs root (dpkg --root writes files owned by root). Skipped with the reason when not root or
 * apt/dpkg are missing — except in CI (CI=true), where a skip would hide a regression.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from '../../client/api-client.js'
import { policyPath } from '../../node/trust/policy-file.js'
import { formatPolicy } from '../../node/consensus/index.js'
import { inspectDeb } from '../../debian/deb-file.js'
import { aptListsDir, parseHookInput } from '../../client/apt/hook-input.js'
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
  let launcher: string
  let gateConfig: string

  // Asynchronous: the node answering the hook runs in this process's event loop.
  const apt = (args: string[]) => run('apt-get', args, { ...process.env, APT_CONFIG: env.aptConfig, DEBIAN_FRONTEND: 'noninteractive' })
  const aptInstall = (deb: string, ...extra: string[]) => apt(['install', '-y', '-q', ...extra, deb])
  const installed = (pkg: string) => existsSync(join(env.root, 'usr/share', pkg, 'README'))
  const hookInstall = async (...args: string[]) => {
    const r = await runRbq(['apt-hook', 'install', '--apt-conf-dir', env.confDir, '--gate-config', gateConfig, '--launcher', launcher, '--data', join(dir, 'data'), ...args])
    expect(r.code, r.stderr).toBe(0)
    return r
  }
  /** Signs `pkg`'s exact file as reproduced by the given parties. */
  const attestDeb = async (deb: string, parties: (typeof A)[], seq: number) => {
    const { query } = await inspectDeb(deb)
    const frames = parties.map((k) => attest(k, { seq, pkg: query.package, artifact: query.artifact, sha256: query.sha256 }).bytes)
    const results = await new ApiClient({ dataDir: join(dir, 'data') }).submitFrames(frames)
    expect(results.map((r) => r.status)).toEqual(parties.map(() => 'stored'))
  }

  beforeAll(async () => {
    ;({ dir, cleanup } = await makeTempDir('rbq-apt-gate-'))
    env = await makeRoot(dir)
    gateConfig = join(dir, 'etc-rbq', 'apt-gate.toml')
    // What `npm install -g` puts at /usr/local/bin/rbq: a stable name that starts this rbq.
    launcher = join(dir, 'bin', 'rbq')
    await mkdir(join(dir, 'bin'))
    await writeFile(launcher, `#!/bin/sh\nexec ${process.execPath} ${RBQ_BIN} "$@"\n`)
    await chmod(launcher, 0o755)
    const debs = join(dir, 'debs')
    good = makeDeb(debs, { package: 'rbq-good', version: '1.0-1' })
    unattested = makeDeb(debs, { package: 'rbq-unattested', version: '1.0-1' })
    tampered = tamperedCopy(good, join(debs, 'tampered', 'rbq-good_1.0-1_all.deb'))

    const dataDir = join(dir, 'data')
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    await writeFile(policyPath(dataDir), formatPolicy(policy({ threshold: 2, roots: [{ name: 'a', key: A }, { name: 'b', key: B }] })))
    node = await startApiNode(dataDir)
    await attestDeb(good, [A, B], 1)
  })

  afterAll(async () => {
    await node?.stop()
    await cleanup?.()
  })

  it('installs a package reproduced by 2 trusted parties, and rbq prints nothing; protocol 3, settings in their own file', async () => {
    const r = await hookInstall()
    expect(r.stdout).toContain(`apt starts ${launcher} (rbq `)
    const conf = await readFile(join(env.confDir, '80rbq'), 'utf8')
    expect(conf).toContain(`"${launcher} apt-hook run --gate-config ${gateConfig} --apt-conf-dir ${env.confDir};`)
    expect(conf).toContain(`DPkg::Tools::Options::${launcher}::Version "3";`)
    expect(await readFile(gateConfig, 'utf8')).toMatch(/^mode = "strict"$/m)
    const ok = await aptInstall(good)
    expect(ok.status, ok.stderr + ok.stdout).toBe(0)
    expect(installed('rbq-good')).toBe(true)
    expect(ok.stderr).not.toMatch(/rbq/)
  })

  it('strict refuses a package nobody attested, naming it and its verdict; dpkg never runs', async () => {
    await hookInstall('--mode', 'strict')
    const r = await aptInstall(unattested)
    expect(r.status).not.toBe(0)
    expect(r.stderr).toContain('rbq: refusing the installation')
    expect(r.stderr).toMatch(/rbq-unattested:all 1\.0-1 \(rbq-unattested_1\.0-1_all\.deb.*\): unknown/)
    expect(r.stderr).toContain(`mode = "tampering-only", or allow_packages / allow_origins, in ${gateConfig}`)
    // the hint removes the gate where it was installed (issue 15)
    expect(r.stderr).toContain(`Stop gating installations: rbq apt-hook uninstall --apt-conf-dir ${env.confDir}\n`)
    expect(installed('rbq-unattested')).toBe(false)
  })

  it('refuses a tampered copy of an attested package as a mismatch, naming the reinstall', async () => {
    // --reinstall: whether or not the genuine file was installed by another test, apt must act.
    const r = await aptInstall(tampered, '--reinstall')
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/rbq-good:all 1\.0-1 \(reinstall; .*: mismatch/)
  })

  it('tampering-only installs what only 1 of 2 parties rebuilt (insufficient), and still refuses a mismatch', async () => {
    const deb = makeDeb(join(dir, 'debs'), { package: 'rbq-insufficient', version: '1.0-1' })
    await attestDeb(deb, [A], 3)
    await hookInstall('--mode', 'strict')
    const strict = await aptInstall(deb)
    expect(strict.status).not.toBe(0)
    expect(strict.stderr).toMatch(/rbq-insufficient:all 1\.0-1 .*: insufficient/)
    expect(installed('rbq-insufficient')).toBe(false)

    await hookInstall('--mode', 'tampering-only')
    const lenient = await aptInstall(deb)
    expect(lenient.status, lenient.stderr).toBe(0)
    expect(lenient.stderr).not.toMatch(/rbq/)
    expect(installed('rbq-insufficient')).toBe(true)
    const mismatch = await aptInstall(tampered, '--reinstall')
    expect(mismatch.status).not.toBe(0)
    expect(mismatch.stderr).toMatch(/rbq-good:all 1\.0-1 .*: mismatch/)
  })

  it('warn mode installs anyway and says why', async () => {
    await hookInstall('--mode', 'warn')
    const deb = makeDeb(join(dir, 'debs'), { package: 'rbq-warned', version: '1' })
    const r = await aptInstall(deb)
    expect(r.status, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/rbq: warning: 1 package is not reproduced; installing as your gate settings allow:\n  rbq-warned:all 1 .*: unknown/)
    expect(installed('rbq-warned')).toBe(true)
  })

  it('per-verdict settings: unreproducible is refused by default with its cause tags, installed with unreproducible = "warn"; mismatch always refused', async () => {
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

    await hookInstall('--mode', 'strict')
    const refused = await aptInstall(deb)
    expect(refused.status).not.toBe(0)
    expect(refused.stderr).toMatch(/rbq-drifted:all 1\.0-1 .*: unreproducible — not reproducible with today's toolchain: 2 parties rebuilt other bytes \(build-id\); the archive published this file; not a sign of tampering/)
    expect(refused.stderr).toContain(`to install such packages: set unreproducible = "warn" (or "allow") in ${gateConfig}`)
    expect(installed('rbq-drifted')).toBe(false)

    // by hand, as an admin edits the file
    await writeFile(gateConfig, (await readFile(gateConfig, 'utf8')).replace('# unreproducible = "refuse"', 'unreproducible = "warn"'))
    const warned = await aptInstall(deb)
    expect(warned.status, warned.stderr).toBe(0)
    expect(warned.stderr).toMatch(/rbq: warning: 1 package is not reproduced; installing as your gate settings allow:\n  rbq-drifted:all 1\.0-1 .*: unreproducible/)
    expect(installed('rbq-drifted')).toBe(true)
    const tamperedRun = await aptInstall(tampered, '--reinstall')
    expect(tamperedRun.status).not.toBe(0)
    expect(tamperedRun.stderr).toMatch(/rbq-good:all 1\.0-1 .*: mismatch/)
  })

  it('allowlists: a package by name, and the security archive by origin, install with a warning under strict', async () => {
    await hookInstall('--mode', 'strict', '--allow-package', 'rbq-trusted-*', '--allow-origin', 'origin=Debian,label=Debian-Security')
    const byName = makeDeb(join(dir, 'debs'), { package: 'rbq-trusted-tool', version: '1' })
    const r = await aptInstall(byName)
    expect(r.status, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/rbq-trusted-tool:all 1 .*: unknown — .* \[installed: allow_packages "rbq-trusted-\*"\]/)

    // A local repository that says what Debian's security archive says in its Release file.
    const repo = join(dir, 'security-repo')
    const secDeb = makeDeb(repo, { package: 'rbq-security-fix', version: '1.0-1+deb12u1' })
    const { sha256, size } = await inspectDeb(secDeb)
    const packages = ['Package: rbq-security-fix', 'Version: 1.0-1+deb12u1', 'Architecture: all', `Filename: ./rbq-security-fix_1.0-1+deb12u1_all.deb`, `Size: ${size}`, `SHA256: ${sha256}`, 'Description: test', ''].join('\n')
    await writeFile(join(repo, 'Packages'), packages)
    await writeFile(
      join(repo, 'Release'),
      ['Origin: Debian', 'Label: Debian-Security', 'Suite: stable-security', 'Codename: bookworm-security', 'Date: Thu, 01 Jan 2026 00:00:00 UTC', 'SHA256:', ` ${sha256Hex(packages)} ${Buffer.byteLength(packages)} Packages`, ''].join('\n')
    )
    await writeFile(join(env.root, 'etc/apt/sources.list.d/security.list'), `deb [trusted=yes] file:${repo} ./\n`)
    const update = await apt(['update', '-q'])
    expect(update.status, update.stderr).toBe(0)
    const sec = await apt(['install', '-y', '-q', 'rbq-security-fix'])
    expect(sec.status, sec.stderr).toBe(0)
    expect(sec.stderr).toMatch(/rbq-security-fix:all 1\.0-1\+deb12u1 .*: unknown — .* \[installed: allow_origins "origin=Debian,label=Debian-Security": from Debian\/Debian-Security \(stable-security\)\]/)
    expect(installed('rbq-security-fix')).toBe(true)
    // the allowlists never let the tampering alarm through
    const mismatch = await aptInstall(tampered, '--reinstall')
    expect(mismatch.status).not.toBe(0)
    expect(mismatch.stderr).toMatch(/rbq-good:all 1\.0-1 .*: mismatch/)
  })

  it("apt's protocol 3 input, captured by a second hook, is what the gate parses", async () => {
    await hookInstall('--mode', 'warn')
    const captured = join(dir, 'captured-v3.txt')
    await writeFile(join(env.confDir, '70capture'), `DPkg::Pre-Install-Pkgs { "/usr/bin/tee ${captured} >/dev/null"; };\nDPkg::Tools::Options::/usr/bin/tee::Version "3";\n`)
    try {
      const v2 = makeDeb(join(dir, 'debs', 'v2'), { package: 'rbq-good', version: '1:2.0-1', architecture: 'amd64' })
      const r = await aptInstall(v2)
      expect(r.status, r.stderr).toBe(0)
      const input = parseHookInput(readFileSync(captured, 'utf8'))
      expect(input.version).toBe(3)
      expect(aptListsDir(input.config)).toBe(join(env.root, 'var/lib/apt/lists/'))
      expect(input.debs).toEqual([
        {
          path: v2,
          announced: { package: 'rbq-good', oldVersion: '1.0-1', oldArchitecture: 'all', direction: '<', newVersion: '1:2.0-1', newArchitecture: 'amd64', action: 'unpack', path: v2 }
        }
      ])
      expect(r.stderr).toMatch(/rbq-good:amd64 1:2\.0-1 \(upgrade from 1\.0-1; rbq-good_2\.0-1_amd64\.deb/)
    } finally {
      await rm(join(env.confDir, '70capture'))
    }
  })

  it('a launcher that is gone refuses the installation with the fix, not a bare exit 127', async () => {
    const moved = join(dir, 'bin-moved', 'rbq')
    await mkdir(join(dir, 'bin-moved'))
    await writeFile(moved, readFileSync(launcher))
    await chmod(moved, 0o755)
    const r0 = await runRbq(['apt-hook', 'install', '--apt-conf-dir', env.confDir, '--gate-config', gateConfig, '--launcher', moved, '--mode', 'strict'])
    expect(r0.code, r0.stderr).toBe(0)
    await rm(moved) // Node switched, checkout deleted, package removed: the launcher is gone
    const deb = makeDeb(join(dir, 'debs'), { package: 'rbq-launcher-gone', version: '1' })
    const r = await aptInstall(deb)
    expect(r.status).not.toBe(0)
    expect(r.stderr).toContain(`rbq: refusing the installation: the apt gate cannot start its launcher ${moved} (exit 127)`)
    expect(r.stderr).toContain('rbq apt-hook install --launcher PATH')
    expect(r.stderr).not.toMatch(/error code \(127\)/)
    expect(installed('rbq-launcher-gone')).toBe(false)
    // and install checks the launcher runs before writing anything
    const bad = await runRbq(['apt-hook', 'install', '--apt-conf-dir', env.confDir, '--gate-config', gateConfig, '--launcher', moved])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain(`launcher ${moved} is not an executable file`)
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
    await hookInstall('--mode', 'strict')
    const bad = join(dir, 'bad-policy.toml')
    await writeFile(bad, 'threshold = 2\ncount = "parties"\n')
    // install checks the policy; a policy broken later is caught at apt time
    const refusedAtInstall = await runRbq(['apt-hook', 'install', '--apt-conf-dir', env.confDir, '--gate-config', gateConfig, '--launcher', launcher, '--policy', bad])
    expect(refusedAtInstall.stderr).toMatch(/count.*\[POLICY_INVALID\]/)
    await writeFile(gateConfig, (await readFile(gateConfig, 'utf8')).replace('# policy = "/etc/rbq/policy.toml"', `policy = "${bad}"`))
    const deb = makeDeb(join(dir, 'debs'), { package: 'rbq-bad-policy', version: '1' })
    const r = await aptInstall(deb)
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/rbq: refusing the installation: packages could not be checked: .*bad-policy\.toml:2:.*count.*\[POLICY_INVALID\]/)
    expect(installed('rbq-bad-policy')).toBe(false)
  })

  it('uninstall removes exactly the gate; the settings file stays', async () => {
    await hookInstall('--mode', 'strict')
    const r = await runRbq(['apt-hook', 'uninstall', '--apt-conf-dir', env.confDir])
    expect(r.code).toBe(0)
    expect(existsSync(join(env.confDir, '80rbq'))).toBe(false)
    expect(statSync(gateConfig).isFile()).toBe(true)
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
