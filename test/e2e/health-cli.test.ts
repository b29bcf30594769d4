/**
 * `rbq health` as a shell user runs it: piped into `head` (the reader closes the pipe early:
 * EPIPE must end the command quietly, not with a crash), and against a node whose policy
 * judges nothing (refused before any hashing or index scanning).
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { formatPolicy } from '../../node/consensus/index.js'
import { policyPath } from '../../node/trust/policy-file.js'
import { key, policy } from '../unit/node/consensus/fixtures.js'
import { RBQ_BIN, runRbq } from '../utils/cli.js'
import { startApiNode, type ApiNode } from '../utils/api-node.js'
import { makeTempDir } from '../utils/tmp.js'

describe('rbq health in a pipeline', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let node: ApiNode | undefined
  let statusFile: string

  beforeAll(async () => {
    ;({ dir, cleanup } = await makeTempDir('rbq-health-cli-'))
    const data = join(dir, 'data')
    await mkdir(data, { recursive: true, mode: 0o700 })
    await writeFile(policyPath(data), formatPolicy(policy({ threshold: 1, roots: [{ name: 'a', key: key('health cli a') }] })))
    node = await startApiNode(data)
    // 3000 installed packages with no digest anywhere: ~300 kB of report, far over a pipe buffer.
    statusFile = join(dir, 'status')
    const paragraphs = Array.from({ length: 3000 }, (_, i) => `Package: pkg-${i}\nStatus: install ok installed\nVersion: 1.0-${i}\nArchitecture: amd64\n`)
    await writeFile(statusFile, paragraphs.join('\n'))
  })

  afterAll(async () => {
    await node?.stop()
    await cleanup?.()
  })

  it('`rbq health | head -1` prints one line and exits quietly (EPIPE handled)', async () => {
    const empty = join(dir, 'empty')
    const cmd = `${process.execPath} ${RBQ_BIN} health -q --data ${join(dir, 'data')} --status-file ${statusFile} --archives ${empty} --lists ${empty} | head -1; echo "rbq exit $\{PIPESTATUS[0]}"`
    // Asynchronous: the node answering rbq runs in this process's event loop.
    const r = await promisify(execFile)('bash', ['-c', cmd], { encoding: 'utf8', timeout: 60_000 })
    expect(r.stdout).toMatch(/^\[\?\] pkg-\d+ amd64 1\.0-\d+ NO-DIGEST/)
    expect(r.stdout).toContain('rbq exit 0')
    expect(r.stderr).toBe('')
  })

  it('refuses a policy file that judges nothing before doing any work', async () => {
    const noRoots = join(dir, 'no-roots.toml')
    await writeFile(noRoots, 'threshold = 1\n')
    const r = await runRbq(['health', '--data', join(dir, 'data'), '--status-file', statusFile, '--policy', noRoots])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/no-roots\.toml: root: no \[\[root\]\] entry.*\[POLICY_INVALID\]/)
    expect(r.stderr).not.toContain('installed packages') // no progress: nothing was read
  })
})
