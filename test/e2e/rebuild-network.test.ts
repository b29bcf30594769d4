/**
 * Three real nodes on loopback (libp2p TCP, gossip), each rebuilding the same small recipe list
 * at share = 1: every node ends up storing every node's attestations, and the clean recipe's
 * artifact has the same digest on all three (independent rebuilds agree).
 * Three nodes rebuilding real Debian packages, with verdicts, are in verdict-truth.test.ts.
 * Each node runs its rebuild pipeline from its own [rebuild] config, as `rbq node start` does.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sha256Hex, TOPIC_ATTESTATIONS, type RebuildStatement } from '../../protocol/index.js'
import type { RbqNode } from '../../node/node.js'
import { connect, startTestNode, statementsOf, waitFor, waitForSubscribers, type TestNode } from '../utils/network.js'
import { makeTempDir } from '../utils/tmp.js'


/** Three connected nodes, each rebuilding with this [rebuild] config. */
async function threeRebuilders(rebuild: Record<string, unknown>): Promise<{ nodes: TestNode[]; stop: () => Promise<void> }> {
  const nodes = await Promise.all([0, 1, 2].map(() => startTestNode({ toml: { rebuild } })))
  const at = (i: number) => (nodes[i] as TestNode).node
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.cleanup()))
  }
  try {
    for (const [a, b] of [[0, 1], [1, 2], [0, 2]] as const) await connect(at(a), at(b))
    await waitForSubscribers([[at(0), at(1)], [at(1), at(2)], [at(0), at(2)]], TOPIC_ATTESTATIONS)
  } catch (e) {
    await stop()
    throw e
  }
  return { nodes, stop }
}

const RECIPES: Record<string, string> = {
  'clean.toml': `purl = "pkg:generic/clean@1"
command = "tr a-z A-Z < input.txt > clean.txt && gzip -n -9 -c clean.txt > clean.txt.gz"
outputs = ["clean.txt", "clean.txt.gz"]
[[source]]
path = "input.txt"
sha256 = "${sha256Hex('rebuild quorum\n')}"
`,
  'clock.toml': `purl = "pkg:generic/clock@1"\ncommand = "date +%s%N > now.txt"\noutputs = ["now.txt"]\n`,
  'broken.toml': `purl = "pkg:generic/broken@1"\ncommand = "exit 2"\noutputs = ["never"]\n`
}

describe('three rebuilder nodes, share = 1, one recipe list', () => {
  let temp: { dir: string; cleanup: () => Promise<void> }
  let nodes: TestNode[]
  let stop: (() => Promise<void>) | undefined
  const at = (i: number): RbqNode => (nodes[i] as TestNode).node

  beforeAll(async () => {
    temp = await makeTempDir('rbq-rebuild-net-')
    const recipes = join(temp.dir, 'recipes')
    await mkdir(recipes)
    await writeFile(join(recipes, 'input.txt'), 'rebuild quorum\n')
    for (const [name, text] of Object.entries(RECIPES)) await writeFile(join(recipes, name), text)

    ;({ nodes, stop } = await threeRebuilders({ share: 1, recipes_dir: recipes }))
  })

  afterAll(async () => {
    await stop?.()
    await temp?.cleanup()
  })

  it("every node stores every node's attestations, failed included", async () => {
    const keyids = nodes.map((n) => n.node.signingKey.publicKey.keyid)
    for (let i = 0; i < 3; i++) {
      for (const keyid of keyids) {
        await waitFor(async () => (await statementsOf(at(i), keyid)).size === 3, { timeoutMs: 90_000, what: `node ${i} to store 3 attestations of ${keyid.slice(0, 8)}` })
      }
    }
    for (let i = 0; i < 3; i++) {
      for (const keyid of keyids) {
        const s = await statementsOf(at(i), keyid)
        expect(new Map([...s].map(([p, st]) => [p, st.predicate.outcome]))).toEqual(
          new Map([
            ['pkg:generic/broken@1', 'failed'],
            ['pkg:generic/clean@1', 'built'],
            ['pkg:generic/clock@1', 'built']
          ])
        )
        expect([...s.values()].every((st) => st.predicate.builder.id === keyid && st.predicate.builder.backend === 'recipe')).toBe(true)
      }
    }
  }, 5 * 60_000) // its waitFor calls have 90 s deadlines each: the test must outlast them on a loaded machine

  it('the clean recipe reproduces across the three nodes; all agree on its inputs digest', async () => {
    const keyids = nodes.map((n) => n.node.signingKey.publicKey.keyid)
    const clean = await Promise.all(keyids.map(async (k) => (await statementsOf(at(0), k)).get('pkg:generic/clean@1') as RebuildStatement))
    const digests = clean.map((st) => JSON.stringify(st.subject))
    expect(new Set(digests).size).toBe(1)
    expect(clean[0]?.subject.map((s) => s.name)).toEqual(['clean.txt', 'clean.txt.gz'])
    expect(new Set(clean.map((st) => st.predicate.inputs.digest.sha256)).size).toBe(1)
    expect(clean[0]?.subject.find((s) => s.name === 'clean.txt')?.digest.sha256).toBe(sha256Hex('REBUILD QUORUM\n'))
  })
})
