/**
 * `rbq health` on this machine's real dpkg status, apt cache and Packages indexes, as a real
 * process against a real node whose store is empty: every package is `unknown` (or has no
 * digest to ask about), the score is 0, and the packages counted are exactly those dpkg-query
 * lists as present. Skipped with the reason on a system without dpkg (never in CI).
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from '../../client/api-client.js'
import { policyPath } from '../../node/trust/policy-file.js'
import type { HealthReport } from '../../client/health/system-health.js'
import { formatPolicy } from '../../node/consensus/index.js'
import { key, policy } from '../unit/node/consensus/fixtures.js'
import { RBQ_BIN, runRbq } from '../utils/cli.js'
import { closedPortUrl, startApiNode, type ApiNode } from '../utils/api-node.js'
import { makeTempDir } from '../utils/tmp.js'

function skipReason(): string | undefined {
  if (!existsSync('/var/lib/dpkg/status')) return 'no dpkg status on this system'
  if (spawnSync('dpkg-query', ['--version'], { stdio: 'ignore' }).status !== 0) return 'dpkg-query not installed'
  if (!existsSync(RBQ_BIN)) return `${RBQ_BIN} not built (npm run build)`
  return undefined
}
const reason = skipReason()
if (reason !== undefined) {
  if (process.env.CI === 'true') throw new Error(`health e2e cannot run in CI: ${reason}`)
  console.log(`skipped test/e2e/health.test.ts: ${reason}`)
}

/** What dpkg itself lists as present: `dpkg-query -W` minus removed packages with conffiles left. */
function dpkgPresentCount(): number {
  const r = spawnSync('dpkg-query', ['-W', '-f', '${db:Status-Status}\\n'], { encoding: 'utf8' })
  return r.stdout.split('\n').filter((s) => s !== '' && s !== 'config-files' && s !== 'not-installed').length
}

describe.skipIf(reason !== undefined)('rbq health on this machine', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let node: ApiNode | undefined

  beforeAll(async () => {
    ;({ dir, cleanup } = await makeTempDir('rbq-health-'))
    await mkdir(join(dir, 'data'), { recursive: true, mode: 0o700 })
    // A valid policy trusting one key that never attested anything: every verdict is unknown.
    await writeFile(policyPath(join(dir, 'data')), formatPolicy(policy({ threshold: 1, roots: [{ name: 'nobody', key: key('health: silent root') }] })))
    node = await startApiNode(join(dir, 'data'))
  })

  afterAll(async () => {
    await node?.stop()
    await cleanup?.()
  })

  it('reports every installed package, nothing reproduced, score 0', async () => {
    const r = await runRbq(['health', '--json', '--data', join(dir, 'data')], { timeoutMs: 120_000 })
    expect(r.code, r.stderr).toBe(0)
    const report = JSON.parse(r.stdout) as HealthReport
    const dpkgQueryLines = spawnSync('sh', ['-c', 'dpkg-query -W | wc -l'], { encoding: 'utf8' }).stdout.trim()
    expect(report.installed).toBe(dpkgPresentCount())
    expect(report.installed + report.configFilesOnly).toBe(Number(dpkgQueryLines))
    expect(report.reproduced).toBe(0)
    expect(report.score).toBe(0)
    const { unknown = 0, 'no-digest': noDigest = 0, ambiguous = 0, ...rest } = report.counts
    expect(rest).toEqual({})
    expect(unknown + noDigest + ambiguous).toBe(report.installed)
    expect(unknown).toBeGreaterThan(0)
    for (const p of report.packages) {
      expect(p.purl).toMatch(/^pkg:deb\/debian\/[^@]+@[^?]+\?arch=source$/)
      expect(p.artifact).toMatch(/^[^_/]+_[^_/]+_[^_/]+\.deb$/)
      if (p.status === 'unknown') expect(p.sha256).toMatch(/^[0-9a-f]{64}$/)
    }
  })

  it('prints the score and the packages that are not reproduced', async () => {
    const r = await runRbq(['health', '--quiet', '--data', join(dir, 'data')], { timeoutMs: 120_000 })
    expect(r.code, r.stderr).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines[lines.length - 1]).toBe('Your system is 0.00% reproduced.')
    expect(r.stdout).toMatch(/^\[\?\] \S+ \S+ \S+ UNKNOWN — /m)
    expect(r.stderr).toBe('')
  })

  it('--watch hands the installed files to the node, for `rbq watch`', async () => {
    const r = await runRbq(['health', '--watch', '--json', '--data', join(dir, 'data')], { timeoutMs: 120_000 })
    expect(r.code, r.stderr).toBe(0)
    const report = JSON.parse(r.stdout) as HealthReport
    const watched = await new ApiClient({ dataDir: join(dir, 'data') }).watched()
    expect(watched.length).toBe(report.packages.filter((p) => p.sha256 !== null).length)
    expect(watched.every((w) => w.status === 'unknown')).toBe(true)
  })

  it('says how to start the node when none is running (exit 2)', async () => {
    const r = await runRbq(['health', '--api', await closedPortUrl(), '--quiet'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('rbq node start')
  })
})
