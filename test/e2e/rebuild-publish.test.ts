/**
 * `rbq rebuild --publish` and who signs (ARCHITECTURE.md, "One signer"), with a real node process
 * on loopback and real recipe builds: while the node runs, the node signs with its key and the
 * next seq of its own sequence (its log names the frame); with the node stopped, the CLI signs
 * offline with the same key and seq file, and the sequence goes on from there when the node is
 * back. A key other than the node's is signed in the CLI and submitted as any peer's frame.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from '../../client/api-client.js'
import { createKey } from '../../identity/signing-key.js'
import { decodeFrame, type AttestationFrame } from '../../protocol/index.js'
import { RBQ_BIN, runRbq } from '../utils/cli.js'
import { spawnNodeProcess, type NodeProcess } from '../utils/node-process.js'
import { makeTempDir } from '../utils/tmp.js'

let tmp: { dir: string; cleanup: () => Promise<void> }
let data: string
let config: string
let recipe: string
let node: NodeProcess | undefined
let nodeKeyId: string

interface Published {
  code: number | null
  frame: { id: string; seq: number; file: string; published?: string }
  stderr: string
}

async function startNode(): Promise<NodeProcess> {
  const started = spawnNodeProcess(process.execPath, [RBQ_BIN, 'node', 'start', '--config', config, '--data', data])
  await started.waitForLog('node started')
  return started
}

async function publish(n: number, extra: string[] = []): Promise<Published> {
  const run = await runRbq(['rebuild', recipe, '--data', data, '--publish', '--json', '--output-dir', join(tmp.dir, `out-${n}`), ...extra], { timeoutMs: 120_000 })
  if (run.stdout === '') throw new Error(`no output (exit ${run.code}): ${run.stderr}`)
  return { code: run.code, frame: (JSON.parse(run.stdout) as { frame: Published['frame'] }).frame, stderr: run.stderr }
}

async function frameFile(path: string): Promise<AttestationFrame> {
  const f = decodeFrame(new Uint8Array((await readFile(path)).subarray(0, -1)))
  if (f.kind !== 'attestation') throw new Error(`${path}: not an attestation`)
  return f
}

beforeAll(async () => {
  tmp = await makeTempDir('rbq-rebuild-publish-')
  data = join(tmp.dir, 'node')
  const init = await runRbq(['init', '--data', data, '--json'])
  expect(init.code, init.stderr).toBe(0)
  nodeKeyId = (JSON.parse(init.stdout) as { keyid: string }).keyid
  config = join(tmp.dir, 'node.toml')
  await writeFile(config, '[p2p]\nlisten = ["/ip4/127.0.0.1/tcp/0"]\n[api]\nport = 0\n[rebuild]\nenabled = false\n')
  recipe = join(tmp.dir, 'signed.toml')
  await writeFile(recipe, 'purl = "pkg:generic/signed@1"\ncommand = "echo x > x.txt"\noutputs = ["x.txt"]\n')
}, 60_000)

afterAll(async () => {
  await node?.stop()
  await tmp?.cleanup()
})

describe('rbq rebuild --publish', () => {
  it('is signed by the running node, offline by the same key and seq file when it is stopped, one sequence throughout', async () => {
    node = await startNode()
    const client = new ApiClient({ dataDir: data })
    expect((await client.status()).keyid).toBe(nodeKeyId)

    // Node running: the node signs (its log names each frame) with seqs 1 and 2, stores them.
    for (const seq of [1, 2]) {
      const run = await publish(seq)
      expect(run.code, run.stderr).toBe(0)
      expect(run.frame).toMatchObject({ seq, published: 'stored' })
      const logged = node.logs.find((l) => l.msg === 'signed and published a rebuild result sent through the API' && l.id === run.frame.id)
      expect(logged).toMatchObject({ seq, package: 'pkg:generic/signed@1' })
      const f = await frameFile(run.frame.file)
      expect(f.id).toBe(run.frame.id)
      expect(f.signer.keyid).toBe(nodeKeyId)
      expect(f.statement.predicate.builder).toMatchObject({ id: nodeKeyId, seq, backend: 'recipe' })
      expect((await client.frame(run.frame.id)).signer).toBe(nodeKeyId)
    }

    // Another key than the node's: signed here, submitted as any peer's frame.
    const otherKeyFile = join(tmp.dir, 'other.key')
    const other = await createKey(otherKeyFile)
    const foreign = await publish(3, ['--key', otherKeyFile])
    expect(foreign.code, foreign.stderr).toBe(0)
    expect(foreign.frame).toMatchObject({ seq: 1, published: 'stored' })
    expect((await frameFile(foreign.frame.file)).signer.keyid).toBe(other.publicKey.keyid)
    expect(node.logs.some((l) => l.id === foreign.frame.id)).toBe(false)

    // Node stopped: signed offline with the data dir's key and seq file; not published (exit 2).
    expect((await node.stop()).code).toBe(0)
    node = undefined
    const offline = await publish(4)
    expect(offline.code).toBe(2)
    expect(offline.frame.seq).toBe(3)
    expect(offline.frame.published).toMatch(/^not published: no rbq node is running with data dir /)
    expect(offline.stderr).toContain('[API_UNAVAILABLE]')
    const offlineFrame = await frameFile(offline.frame.file)
    expect(offlineFrame.signer.keyid).toBe(nodeKeyId)

    // Back up: the node's next statement continues above the offline one.
    node = await startNode()
    const after = await publish(5)
    expect(after.code, after.stderr).toBe(0)
    expect(after.frame).toMatchObject({ seq: 4, published: 'stored' })
    expect(node.logs.some((l) => l.id === after.frame.id)).toBe(true)
    // The offline frame is still good to hand in later.
    expect((await new ApiClient({ dataDir: data }).submitFrame(offlineFrame.bytes)).status).toBe('stored') // a new port: a new client
  }, 240_000)
})
