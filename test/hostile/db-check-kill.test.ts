/**
 * `rbq db check` on the store of a real `rbq node start` process killed with SIGKILL while frames
 * pour in through its API (issue 14): after every kill the store must check clean (atomic
 * batches), the node restarts on it, and a check while it runs is refused. Then an index entry
 * and a frame corrupted through LevelDB directly are found (exit 1) and `--repair` fixes them.
 *
 * Quick form: 3 kills; `npm run hostile` (RBQ_HOSTILE=long): 30.
 */
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import { afterAll, describe, expect, it } from 'vitest'
import { Bucket, bucketName, keys } from '../../node/db/buckets.js'
import { dataDirLayout } from '../../common/data-dir.js'
import { sha256Hex, type AttestationFrame } from '../../protocol/index.js'
import { attest, key } from '../unit/node/consensus/fixtures.js'
import { RBQ_BIN, runRbq } from '../utils/cli.js'
import { nodeProcessConfig, spawnNodeProcess, STACK_TRACE, userEnv, type NodeProcess } from '../utils/node-process.js'
import { makeTempDir } from '../utils/tmp.js'

const LONG = process.env.RBQ_HOSTILE === 'long'
const KILLS = LONG ? 30 : 3
const SIGNERS = 20

const tmp = await makeTempDir('rbq-dbcheck-')
let running: NodeProcess | undefined
afterAll(async () => {
  await running?.stop()
  await tmp.cleanup()
})

const CONFIG = nodeProcessConfig({ ingest: ['workers = 1'] })

function startNode(): NodeProcess {
  return spawnNodeProcess(process.execPath, [RBQ_BIN, 'node', 'start', '--data', tmp.dir], { env: userEnv({}) })
}

/** Signed statements from SIGNERS keys, seq after seq, so every round sends new ones. */
function* statements(): Generator<AttestationFrame> {
  for (let seq = 1; ; seq++) for (let k = 0; k < SIGNERS; k++) yield attest(key(`db check load ${k}`), { seq, sha256: sha256Hex(`load ${k} ${seq}`) })
}

describe('rbq db check after kill -9 under load', () => {
  it(`checks clean after ${KILLS} kills mid-write; refuses while the node runs; finds and repairs corruption`, async () => {
    await writeFile(join(tmp.dir, 'config.toml'), CONFIG)
    const source = statements()
    let acknowledged = 0
    for (let round = 0; round < KILLS; round++) {
      running = startNode()
      await running.waitForLog('node started')
      const base = (await readFile(join(tmp.dir, 'api.url'), 'utf8')).trim()
      const token = (await readFile(join(tmp.dir, 'api.token'), 'utf8')).trim()
      // Load: uploads of 100 statements back to back until the kill.
      let alive = true
      const load = (async () => {
        while (alive) {
          const body = Array.from({ length: 100 }, () => Buffer.from(source.next().value!.bytes).toString('utf8')).join('\n')
          try {
            const res = await fetch(`${base}/v1/attestations`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' }, body })
            if (res.ok) acknowledged += ((await res.json()) as { results: { status: string }[] }).results.filter((r) => r.status === 'stored').length
          } catch {
            return // the node is gone
          }
        }
      })()
      if (round === 0) {
        // A running node holds the store: the check refuses with a clear error (exit 2).
        const refused = await runRbq(['db', 'check', '--data', tmp.dir])
        expect(refused.code).toBe(2)
        expect(refused.stderr).toMatch(/in use by another process: stop the node first/)
        expect(refused.stderr).not.toMatch(STACK_TRACE)
      }
      await new Promise((resolve) => setTimeout(resolve, 300 + Math.floor(Math.random() * 700)))
      running.child.kill('SIGKILL')
      await running.exited
      alive = false
      await load
      running = undefined
      const check = await runRbq(['db', 'check', '--data', tmp.dir])
      expect(check.stderr).toBe('')
      expect(check.stdout).toMatch(/\nclean\n$/)
      expect(check.code).toBe(0)
    }
    const final = await runRbq(['db', 'check', '--data', tmp.dir, '--json'])
    const report = JSON.parse(final.stdout) as { frames: number; indexEntries: number; clean: boolean }
    expect(report.clean).toBe(true)
    expect(report.frames).toBeGreaterThanOrEqual(acknowledged)
    console.log(`[hostile] db check: ${KILLS} kill -9 under load, ${acknowledged} frames acknowledged, ${report.frames} frames and ${report.indexEntries} index entries stored, clean after every kill`)

    // Corrupt an index entry, drop another, flip a byte of a frame: found, then repaired.
    const dbDir = dataDirLayout(tmp.dir).db
    const raw = new Level<string, string>(dbDir)
    const frames = raw.sublevel<string, Uint8Array>(bucketName(Bucket.frame), { valueEncoding: 'view' })
    const [victim] = await frames.iterator({ limit: 1 }).all()
    const [victimId, victimBytes] = victim!
    const corrupt = new Uint8Array(victimBytes)
    corrupt[40] = corrupt[40]! ^ 1
    await frames.put(victimId, corrupt)
    const byArtifact = raw.sublevel<string, string>(bucketName(Bucket.framesByArtifact), { valueEncoding: 'utf8' })
    await byArtifact.put(keys.byArtifact('pkg:deb/debian/ghost@1?arch=source', 'ghost.deb', sha256Hex('no such frame')), '')
    const bySeq = raw.sublevel<string, string>(bucketName(Bucket.attestationBySeq), { valueEncoding: 'utf8' })
    const [someSeqKey] = await bySeq.keys({ limit: 1, reverse: true }).all()
    await bySeq.del(someSeqKey!)
    await raw.close()

    const found = await runRbq(['db', 'check', '--data', tmp.dir])
    expect(found.code).toBe(1)
    expect(found.stdout).toMatch(/undecodable-frame|bad-frame-id/)
    expect(found.stdout).toMatch(/dangling-entry: framesByArtifact pkg:deb\/debian\/ghost@1/)
    expect(found.stdout).toMatch(/missing-entry: attestationBySeq/)
    expect(found.stdout).toMatch(/--repair/)
    const repaired = await runRbq(['db', 'check', '--repair', '--data', tmp.dir])
    expect(repaired.code).toBe(0)
    expect(repaired.stdout).toMatch(/repair: \d+ operations applied/)
    expect(repaired.stdout).toMatch(/\nclean\n$/)
    // The node starts on the repaired store.
    running = startNode()
    await running.waitForLog('node started')
    expect((await running.stop()).code).toBe(0)
    running = undefined
    expect((await runRbq(['db', 'check', '--data', tmp.dir])).code).toBe(0)
    await rm(join(tmp.dir, 'config.toml'))
    expect((await runRbq(['db', 'check', '--data', join(tmp.dir, 'nothing-here')])).code).toBe(2)
  }, 900_000)
})
