/**
 * `rbq rebuild-request` (spawned) against a real node whose rebuild pipeline follows a recipe
 * directory with share = 0 (its feed alone rebuilds nothing): the request queues the recipe, the
 * node rebuilds it and stores its own attestation. Unknown purls and a missing token are refused.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeFrame, sha256Hex } from '../../protocol/index.js'
import { runRbq } from '../utils/cli.js'
import { startTestNode, waitFor, type TestNode } from '../utils/network.js'
import { makeTempDir } from '../utils/tmp.js'

const PURL = 'pkg:generic/requested@1'

describe('rbq rebuild-request', () => {
  let temp: { dir: string; cleanup: () => Promise<void> }
  let node: TestNode

  beforeAll(async () => {
    temp = await makeTempDir('rbq-rebuild-request-')
    const recipes = join(temp.dir, 'recipes')
    await mkdir(recipes)
    await writeFile(join(recipes, 'input.txt'), 'requested\n')
    await writeFile(
      join(recipes, 'requested.toml'),
      `purl = "${PURL}"\ncommand = "cp input.txt out.txt"\noutputs = ["out.txt"]\n[[source]]\npath = "input.txt"\nsha256 = "${sha256Hex('requested\n')}"\n`
    )
    node = await startTestNode({ dataDir: join(temp.dir, 'data'), toml: { api: { enabled: true, port: 0 }, rebuild: { share: 0, recipes_dir: recipes } } })
  })

  afterAll(async () => {
    await node?.cleanup()
    await temp?.cleanup()
  })

  it('queues the rebuild; the node attests the result with its own key', async () => {
    const r = await runRbq(['rebuild-request', PURL, '--data', node.dataDir, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ purl: PURL, status: 'queued' })
    const keyid = node.node.signingKey.publicKey.keyid
    await waitFor(async () => (await node.node.store.attestationsInRange(keyid, 1, 10, 10)).length === 1, { timeoutMs: 60_000, what: 'the requested rebuild to be attested' })
    const [bytes] = await node.node.store.attestationsInRange(keyid, 1, 10, 10)
    const f = decodeFrame(bytes as Uint8Array)
    expect(f.kind === 'attestation' && f.statement.predicate.package).toBe(PURL)
    expect(f.kind === 'attestation' && f.statement.subject).toEqual([{ name: 'out.txt', digest: { sha256: sha256Hex('requested\n') } }])
  })

  it('refuses a purl no feed knows (exit 2, NOT_FOUND) and a request without the token', async () => {
    const unknown = await runRbq(['rebuild-request', 'pkg:generic/nobody@1', '--data', node.dataDir])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('NOT_FOUND')
    await rm(join(node.dataDir, 'api.token'))
    const noToken = await runRbq(['rebuild-request', PURL, '--data', node.dataDir])
    expect(noToken.code).toBe(2)
    expect(noToken.stderr).toMatch(/token|UNAUTHORIZED|FILE_NOT_FOUND/)
  })
})
