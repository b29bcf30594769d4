/**
 * The privilege split over its real Unix socket: `rbq build-helper` runs as root (as its systemd
 * unit does), a real `rbq node start` runs as the unprivileged user nobody (setpriv) with
 * `[rebuild] build_helper` set, its recipe feed schedules a recipe, the helper builds it, and the
 * node attests the result under its own key (its verdict API then says `reproduced` under a
 * policy trusting that key). Malformed requests straight to the socket get typed errors while
 * the helper keeps serving. Skipped when not root or without setpriv.
 */
import { spawnSync } from 'node:child_process'
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from '../../client/api-client.js'
import { MAX_REQUEST_BYTES } from '../../node/build-helper/helper-protocol.js'
import { sha256Hex } from '../../protocol/index.js'
import { RBQ_BIN } from '../utils/cli.js'
import { spawnNodeProcess, STACK_TRACE, userEnv, type NodeProcess } from '../utils/node-process.js'
import { waitFor } from '../utils/network.js'
import { makeTempDir } from '../utils/tmp.js'

const NOBODY = 65534
const PURL = 'pkg:generic/helper-built@1'
const CONTENT = 'built by the helper, attested by the node\n'
const canRun = process.getuid?.() === 0 && spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0

/** One raw request line to the socket; resolves with the helper's reply lines. */
function ask(socket: string, bytes: string | Buffer): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const c = connect(socket)
    let text = ''
    c.on('connect', () => c.write(bytes))
    c.on('data', (d) => (text += d.toString()))
    c.on('error', reject)
    c.on('close', () => resolve(text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)))
  })
}

describe.skipIf(!canRun)('build helper: an unprivileged node builds through the root helper', () => {
  let temp: { dir: string; cleanup: () => Promise<void> }
  let helper: NodeProcess
  let node: NodeProcess | undefined
  let socket: string
  let recipe: string

  beforeAll(async () => {
    temp = await makeTempDir('rbq-helper-')
    await chmod(temp.dir, 0o755)
    const recipes = join(temp.dir, 'recipes')
    await mkdir(recipes)
    recipe = join(recipes, 'helper-built.toml')
    await writeFile(join(recipes, 'input.txt'), CONTENT)
    await writeFile(recipe, `purl = "${PURL}"\ncommand = "cp input.txt out.txt"\noutputs = ["out.txt"]\n[[source]]\npath = "input.txt"\nsha256 = "${sha256Hex(CONTENT)}"\n`)
    socket = join(temp.dir, 'run', 'build.sock')
    const helperConfig = join(temp.dir, 'helper.toml')
    await writeFile(helperConfig, `[rebuild]\nrecipes_dir = "${recipes}"\n`)
    helper = spawnNodeProcess(process.execPath, [RBQ_BIN, 'build-helper', '--socket', socket, '--group', 'nogroup', '--cache', join(temp.dir, 'cache'), '--config', helperConfig], {
      env: userEnv({})
    })
    await helper.waitForLog(`build helper listening on ${socket}`)
  }, 60_000)

  afterAll(async () => {
    await node?.stop()
    await helper?.stop()
    await temp?.cleanup()
  })

  it('refuses malformed requests with a typed error and keeps serving', async () => {
    const refusals: [string | Buffer, RegExp][] = [
      ['not json\n', /not JSON/],
      ['{"v":1,"op":"exec","target":{"backend":"recipe","recipe":"/x.toml","sha256":"00"},"timeout_seconds":1}\n', /only builds/],
      [`{"v":2,"op":"build","target":{},"timeout_seconds":1}\n`, /protocol version 2/],
      [`{"v":1,"op":"build","target":{"backend":"debian","source":"hello; rm -rf /","version":"1"},"timeout_seconds":60}\n`, /Debian source package name/],
      [`{"v":1,"op":"build","target":{"backend":"recipe","recipe":"/etc/passwd.toml","sha256":"${'0'.repeat(64)}"},"timeout_seconds":60}\n`, /not a recipe in/],
      [`{"v":1,"op":"build","target":{"backend":"recipe","recipe":"${recipe}","sha256":"${'0'.repeat(64)}"},"timeout_seconds":60,"extra":1}\n`, /unknown field "extra"/],
      [`{"v":1,"op":"build","target":{"backend":"recipe","recipe":"${recipe}","sha256":"${'0'.repeat(64)}"},"timeout_seconds":60}\n`, /changed since the node scheduled it/],
      [Buffer.alloc(MAX_REQUEST_BYTES + 10, 'x'), /over 4096 bytes/]
    ]
    for (const [request, message] of refusals) {
      const replies = await ask(socket, request)
      expect(replies).toHaveLength(1)
      expect(replies[0]).toMatchObject({ type: 'error', code: 'HELPER_REQUEST_INVALID' })
      expect(String(replies[0]?.message)).toMatch(message)
    }
    expect(helper.child.exitCode).toBeNull()
    expect(helper.lines.join('\n')).not.toMatch(STACK_TRACE)
  })

  it('a node running as nobody has the recipe built by the helper and attests it under its own key', async () => {
    const dataDir = join(temp.dir, 'node')
    await mkdir(dataDir)
    await chown(dataDir, NOBODY, NOBODY)
    // The checkout must be readable by nobody; where it is not (a 0700 temp clone), the node
    // gets CAP_DAC_READ_SEARCH only: still no root, no chroot, no mounts — it cannot build Debian.
    const readable = spawnSync('setpriv', ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', 'test', '-r', RBQ_BIN]).status === 0
    const asNobody = ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', ...(readable ? [] : ['--inh-caps=+dac_read_search', '--ambient-caps=+dac_read_search'])]
    const env = userEnv({ HOME: dataDir })
    const init = spawnSync('setpriv', [...asNobody, process.execPath, RBQ_BIN, 'init', '--data', dataDir, '--json'], { env, encoding: 'utf8' })
    expect(init.status, init.stderr).toBe(0)
    const publicKey = (JSON.parse(init.stdout) as { publicKey: string }).publicKey
    await writeFile(join(dataDir, 'policy.toml'), `threshold = 1\n[[root]]\nname = "me"\nkey = "${publicKey}"\nscope = ["*"]\n`, { mode: 0o644 })
    const config = join(temp.dir, 'node.toml')
    await writeFile(
      config,
      `[p2p]\nlisten = ["/ip4/127.0.0.1/tcp/0"]\n[api]\nport = 0\n[rebuild]\nrecipes_dir = "${join(temp.dir, 'recipes')}"\nbuild_helper = "${socket}"\n[rebuild.debian]\nfollow = "sources"\n`
    )
    node = spawnNodeProcess('setpriv', [...asNobody, process.execPath, RBQ_BIN, 'node', 'start', '--config', config, '--data', dataDir], { env })
    const attested = await node.waitForLog('rebuild attested', 60_000)
    expect(attested).toMatchObject({ purl: PURL, outcome: 'built' })
    expect(helper.logs.find((l) => l.msg === 'build finished')).toMatchObject({ package: PURL, outcome: 'built' })
    const nodeUid = spawnSync('ps', ['-o', 'uid=', '-p', String(node.child.pid)], { encoding: 'utf8' }).stdout.trim()
    // setpriv execs the node in place: the process that attested runs as nobody.
    expect(nodeUid).toBe(String(NOBODY))

    const client = new ApiClient({ dataDir })
    const verdict = await waitFor(async () => {
      const v = await client.verdict({ sha256: sha256Hex(CONTENT), package: PURL, artifact: 'out.txt' })
      return v.status === 'reproduced' ? v : undefined
    }, { timeoutMs: 30_000, what: 'the attested artifact to be reproduced under a policy trusting the node' })
    expect(verdict.status).toBe('reproduced')
    expect(node.lines.join('\n')).not.toMatch(STACK_TRACE)
  }, 90_000)
})
