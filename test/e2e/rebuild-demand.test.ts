/**
 * Demand (issue 10 item 2) between real nodes on loopback: node A (no rebuilds of its own; its
 * policy needs 2 of {X, B}, and only X attested so far) has an `insufficient` verdict for an artifact; `rbq rebuild-request --network`
 * on A publishes a signed request on /rbq/1/rebuild-requests; node B, whose recipe feed follows
 * the package but whose sample (share 0) does not include it, honours it, rebuilds, attests, and
 * A's verdict changes. A recipe stands in for a Debian package to keep CI time small: the
 * request path is the same for both (feeds resolve the purl; node/rebuild/README.md "Demand").
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from '../../client/api-client.js'
import { formatPolicy } from '../../node/consensus/index.js'
import { policyPath } from '../../node/trust/policy-file.js'
import { sha256Hex, TOPIC_REBUILD_REQUESTS } from '../../protocol/index.js'
import { attest, key, policy } from '../unit/node/consensus/fixtures.js'
import { runRbq } from '../utils/cli.js'
import { connect, counterValue, startTestNode, waitFor, waitForSubscribers, type TestNode } from '../utils/network.js'
import { makeTempDir } from '../utils/tmp.js'

const PURL = 'pkg:generic/demanded@1'
const CONTENT = 'demanded by the network\n'
const X = key('demand e2e: an earlier rebuilder')

describe('rebuild requests on gossip', () => {
  let temp: { dir: string; cleanup: () => Promise<void> }
  let a: TestNode
  let b: TestNode

  beforeAll(async () => {
    temp = await makeTempDir('rbq-demand-')
    const recipes = join(temp.dir, 'recipes')
    await mkdir(recipes)
    await writeFile(join(recipes, 'input.txt'), CONTENT)
    await writeFile(
      join(recipes, 'demanded.toml'),
      `purl = "${PURL}"\ncommand = "cp input.txt out.txt"\noutputs = ["out.txt"]\n[[source]]\npath = "input.txt"\nsha256 = "${sha256Hex(CONTENT)}"\n`
    )
    // One after the other (libp2p's prometheus metrics register once per process).
    a = await startTestNode({ toml: { api: { enabled: true, port: 0 } } })
    b = await startTestNode({ toml: { rebuild: { share: 0, recipes_dir: recipes } } })
    await writeFile(policyPath(a.dataDir), formatPolicy(policy({ threshold: 2, roots: [{ name: 'x', key: X }, { name: 'b', key: b.node.signingKey }] })))
    await connect(a.node, b.node)
    await waitForSubscribers([[a.node, b.node]], TOPIC_REBUILD_REQUESTS)
  }, 120_000)

  afterAll(async () => {
    await Promise.all([a?.cleanup(), b?.cleanup()])
    await temp?.cleanup()
  })

  it("A's client asks the network; B rebuilds a package outside its sample and A's verdict is no longer insufficient", async () => {
    const client = new ApiClient({ dataDir: a.dataDir })
    const query = { sha256: sha256Hex(CONTENT), package: PURL, artifact: 'out.txt' }
    await client.submitFrame(attest(X, { seq: 1, pkg: PURL, artifact: 'out.txt', sha256: query.sha256, outcome: 'built' }).bytes)
    expect((await client.verdict(query)).status).toBe('insufficient')
    expect(b.node.rebuilds?.scheduler.stats()).toMatchObject({ queued: 0, running: 0 }) // share 0: B's feed queued nothing

    const r = await runRbq(['rebuild-request', PURL, '--network', '--data', a.dataDir, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ purl: PURL, status: 'requested', detail: 'sent to 1 peer; this node does not rebuild' })

    const verdict = await waitFor(
      async () => {
        const v = await client.verdict(query)
        return v.status === 'insufficient' ? undefined : v
      },
      { timeoutMs: 60_000, what: "A's verdict to change after B's rebuild" }
    )
    expect(verdict.status).toBe('reproduced')
    expect(await counterValue(b.node, 'rbq_gossip_messages_total', { topic: TOPIC_REBUILD_REQUESTS, result: 'accept', code: 'none' })).toBe(1)
    const done = await b.node.rebuilds?.scheduler.get(PURL)
    expect(done).toMatchObject({ status: 'done', outcome: 'built' })
  })

  it('the same request again within the window is refused by the sender (DUPLICATE, exit 2), nothing is sent', async () => {
    const r = await runRbq(['rebuild-request', PURL, '--network', '--data', a.dataDir])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('DUPLICATE')
  })
})
