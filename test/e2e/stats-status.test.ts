/**
 * Issue 10 items 4 and 5 through a real node, its HTTP API and the `rbq` binary:
 *   - `rbq stats` numbers against known attestations (signed with test keys, submitted through
 *     the API into the node's LevelDB store), with and without a suite (real bookworm indexes);
 *   - `rbq status` progress (feed size, sample, done by outcome, ETA) and the /metrics rebuild
 *     histogram and outcome counters after a recipe feed was rebuilt.
 * Uses dist/ (`npx tsc -p tsconfig.json` first).
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from '../../client/api-client.js'
import { sha256Hex } from '../../protocol/index.js'
import type { NetworkStats, StatusResponse } from '../../protocol/api.js'
import { runRbq } from '../utils/cli.js'
import { startTestNode, waitFor, type TestNode } from '../utils/network.js'
import { makeTempDir } from '../utils/tmp.js'
import { attest, key } from '../unit/node/consensus/fixtures.js'

const A = key('e2e stats alpha')
const B = key('e2e stats beta')
const src = (name: string, version: string) => `pkg:deb/debian/${name}@${version}?arch=source`

describe('rbq stats and rbq status on a real node', () => {
  let temp: { dir: string; cleanup: () => Promise<void> }
  let node: TestNode

  beforeAll(async () => {
    temp = await makeTempDir('rbq-stats-e2e-')
    const recipes = join(temp.dir, 'recipes')
    await mkdir(recipes)
    await writeFile(join(recipes, 'input.txt'), 'hello\n')
    await writeFile(
      join(recipes, 'ok.toml'),
      `purl = "pkg:generic/ok@1"\ncommand = "tr a-z A-Z < input.txt > ok.txt"\noutputs = ["ok.txt"]\n[[source]]\npath = "input.txt"\nsha256 = "${sha256Hex('hello\n')}"\n`
    )
    await writeFile(join(recipes, 'fails.toml'), `purl = "pkg:generic/fails@1"\ncommand = "exit 1"\noutputs = ["x.txt"]\n`)
    node = await startTestNode({
      dataDir: join(temp.dir, 'data'),
      // Rebuild every recipe, no Debian package (follow the empty source list); the Debian
      // archive cache of the test run: `--suite bookworm` reads its indexes.
      toml: { api: { enabled: true, port: 0 }, rebuild: { share: 1, recipes_dir: recipes, debian: { follow: 'sources', cache_dir: process.env.RBQ_DEBIAN_TEST_CACHE! } } }
    })
    // hello 2.10-3 is bookworm's; the rbq-e2e-* names are in no suite.
    const frames = [
      attest(A, { seq: 1, pkg: src('hello', '2.10-3') }),
      attest(B, { seq: 1, pkg: src('hello', '2.10-3') }),
      attest(A, { seq: 2, pkg: src('rbq-e2e-drift', '1.0-1'), outcome: 'mismatch', diff: { tags: ['build-id'], summary: 'x' } }),
      attest(B, { seq: 2, pkg: src('rbq-e2e-drift', '1.0-1'), outcome: 'mismatch', diff: { tags: ['build-id', 'locale'], summary: 'x' } }),
      attest(A, { seq: 3, pkg: src('rbq-e2e-broken', '2'), outcome: 'failed' })
    ]
    const results = await new ApiClient({ dataDir: node.dataDir }).submitFrames(frames.map((f) => f.bytes))
    expect(results.map((r) => r.status)).toEqual(frames.map(() => 'stored'))
  })

  afterAll(async () => {
    await node?.cleanup()
    await temp?.cleanup()
  })

  it('rbq stats counts the known attestations', async () => {
    const r = await runRbq(['stats', '--json', '--data', node.dataDir])
    expect(r.code, r.stderr).toBe(0)
    const s = JSON.parse(r.stdout) as NetworkStats
    expect(s).toMatchObject({ distribution: 'debian', suite: null, attestations: 5 })
    expect(s.packages).toEqual({ rebuilt: 3, reproduced: 1, unreproducible: 1, disputed: 0, failed: 1, built: 0 })
    expect(s.parties).toEqual({ keys: 2, byCount: [{ parties: 1, packages: 1 }, { parties: 2, packages: 2 }] })
    expect(s.unreproducible).toEqual({ faithful: 0, current: 1, untagged: 0, causes: [{ tag: 'build-id', packages: 1 }, { tag: 'locale', packages: 1 }] })
    expect(s.trustedParties).toBeNull() // the test node has no policy
    const text = await runRbq(['stats', '--data', node.dataDir])
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toMatch(/rebuilt\s+3 source packages/)
    expect(text.stdout).toMatch(/unreproducible\s+1 \(33\.3%\)/)
    expect(text.stdout).toMatch(/causes\s+build-id 1, locale 1/)
  })

  it('rbq stats --suite bookworm counts only what bookworm lists', async () => {
    const r = await runRbq(['stats', '--json', '--suite', 'bookworm', '--data', node.dataDir], { timeoutMs: 120_000 })
    expect(r.code, r.stderr).toBe(0)
    const s = JSON.parse(r.stdout) as NetworkStats
    expect(s.suite).toBe('bookworm')
    expect(s.packages).toEqual({ rebuilt: 1, reproduced: 1, unreproducible: 0, disputed: 0, failed: 0, built: 0 })
    expect(s.versionsSkipped).toBe(2)
    const bad = await runRbq(['stats', '--suite', '../etc', '--data', node.dataDir])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('SCHEMA_INVALID')
  })

  it('rbq status shows the feed, the sample, done by outcome and the ETA; /metrics the durations', async () => {
    const client = new ApiClient({ dataDir: node.dataDir })
    await waitFor(async () => {
      const d = (await client.status()).scheduler?.done
      return d !== undefined && d.built + d.failed === 2
    }, { timeoutMs: 60_000, what: 'both recipes to be rebuilt' })
    const r = await runRbq(['status', '--json', '--data', node.dataDir])
    expect(r.code, r.stderr).toBe(0)
    const sch = (JSON.parse(r.stdout) as StatusResponse).scheduler!
    expect(sch.feeds?.find((f) => f.entries === 2)).toMatchObject({ entries: 2, sampled: 2 })
    expect(sch.done).toEqual({ reproduced: 0, mismatch: 0, failed: 1, built: 1, error: 0 })
    expect(sch).toMatchObject({ queued: 0, running: 0, etaSeconds: 0 })
    expect(sch.recentSeconds).toBeGreaterThanOrEqual(0)
    const text = await runRbq(['status', '--data', node.dataDir])
    expect(text.stdout).toMatch(/feed \S+: 2 packages, 2 sampled for this node/)
    expect(text.stdout).toContain('done: 2 (0 reproduced, 0 other bytes, 1 failed, 1 built)')
    const metrics = await client.metrics()
    expect(metrics).toMatch(/rbq_rebuild_duration_seconds_count\{backend="recipe",outcome="built"\} 1/)
    expect(metrics).toMatch(/rbq_rebuild_duration_seconds_bucket\{le="\+Inf",backend="recipe",outcome="failed"\} 1/)
    expect(metrics).toMatch(/rbq_rebuild_outcomes_total\{backend="recipe",outcome="failed"\} 1/)
  })
})
