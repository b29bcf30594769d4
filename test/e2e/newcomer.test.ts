/**
 * Regression tests for the stumbles of a newcomer's first hour (issue 15, items 4–9), through
 * the real `rbq` binary (`node dist/cli/main.js …`) against real nodes: nodes started in this
 * process (LevelDB, libp2p and the HTTP API on loopback) or `rbq node start` as a child process.
 */
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from '../../client/api-client.js'
import { sha256Hex } from '../../protocol/index.js'
import { runRbq } from '../utils/cli.js'
import { startTestNode, waitFor, type TestNode } from '../utils/network.js'
import { makeTempDir } from '../utils/tmp.js'
import { attest, delegate, key } from '../unit/node/consensus/fixtures.js'

const WITH_API = { api: { enabled: true, port: 0 } }
const ORG = key('newcomer org')
const PKG = 'pkg:deb/debian/hello@2.10-3?arch=source'
const DEB = 'hello_2.10-3_amd64.deb'
/** No stack trace ever reaches a user: no "    at fn (file:line)" frames on stderr. */
const STACK_FRAME = /^\s+at .+:\d+/m

let tmp: { dir: string; cleanup: () => Promise<void> }
beforeAll(async () => {
  tmp = await makeTempDir('rbq-newcomer-')
})
afterAll(async () => {
  await tmp?.cleanup()
})

describe('item 4: the README config example', () => {
  it('a placeholder bootstrap address is one CONFIG_INVALID line naming p2p.bootstrap[0], exit 2, no keys created', async () => {
    const data = join(tmp.dir, 'readme-config')
    await mkdir(data, { recursive: true })
    // README.md, "A volunteer running a node", step 2, verbatim
    await writeFile(
      join(data, 'config.toml'),
      [
        '[p2p]',
        'bootstrap = ["/ip4/203.0.113.7/tcp/4777/p2p/12D3KooW…"]   # any node of the network',
        '[rebuild]',
        'share = 0.2                  # rebuild a secret, stable 20% sample of what the feeds list',
        '[rebuild.debian]',
        'sources = ["base-files", "distro-info-data", "hello"]',
        ''
      ].join('\n')
    )
    const r = await runRbq(['node', 'start', '--data', data])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^rbq: .*config\.toml: config p2p\.bootstrap\[0\]: "12D3KooW…" is not a peer id .*\[CONFIG_INVALID\]\n$/)
    expect(r.stderr).not.toMatch(STACK_FRAME)
    expect(existsSync(join(data, 'signing.key'))).toBe(false)
  })
})

describe('item 7: help texts state the real default data dir', () => {
  it('names the directory this user would get (root: /var/lib/rbq whatever HOME is), never "~/.local/share"', async () => {
    const home = join(tmp.dir, 'home')
    const env = { HOME: home, RBQ_DATA_DIR: '', XDG_DATA_HOME: '' }
    const expected = process.getuid?.() === 0 ? '/var/lib/rbq as root, whatever $HOME is' : `${home}/.local/share/rbq; /var/lib/rbq as root`
    for (const verb of [['init'], ['node', 'start'], ['status'], ['trust', 'add'], ['rebuild'], ['delegate'], ['verify']]) {
      const r = await runRbq([...verb, '--help'], { env })
      expect(r.code).toBe(0)
      const text = r.stdout.replace(/\s+/g, ' ')
      expect([verb, text]).toEqual([verb, expect.stringContaining(expected)])
      expect(text).not.toContain('~/.local/share')
    }
    const withEnv = await runRbq(['status', '--help'], { env: { RBQ_DATA_DIR: '/srv/rbq-b' } })
    expect(withEnv.stdout.replace(/\s+/g, ' ')).toContain('/srv/rbq-b, from $RBQ_DATA_DIR')
  })
})

describe('with a running node', () => {
  let node: TestNode
  let data: string
  let client: ApiClient

  beforeAll(async () => {
    data = join(tmp.dir, 'node')
    const init = await runRbq(['init', '--data', data])
    expect(init.code, init.stderr).toBe(0)
    node = await startTestNode({ dataDir: data, toml: WITH_API })
    client = new ApiClient({ dataDir: data })
  }, 120_000)
  afterAll(async () => {
    await node?.node.stop()
  })

  it('item 7: a second node on this machine is told which port to change, before it creates keys', async () => {
    const p2pPort = Number(/\/tcp\/(\d+)/.exec(node.node.addresses[0] ?? '')?.[1])
    const apiPort = Number(new URL((await readFile(join(data, 'api.url'), 'utf8')).trim()).port)
    expect(p2pPort).toBeGreaterThan(0)

    const second = join(tmp.dir, 'second')
    await mkdir(second)
    await writeFile(join(second, 'config.toml'), `[p2p]\nlisten = ["/ip4/127.0.0.1/tcp/${p2pPort}"]\n[rebuild]\nenabled = false\n`)
    const p2p = await runRbq(['node', 'start', '--data', second])
    expect(p2p.code).toBe(2)
    expect(p2p.stderr).toContain(`rbq: p2p address /ip4/127.0.0.1/tcp/${p2pPort} is in use (another rbq node on this machine?): set [p2p] listen in ${join(second, 'config.toml')}`)
    expect(p2p.stderr).not.toMatch(STACK_FRAME)
    expect(existsSync(join(second, 'signing.key'))).toBe(false)

    const config = join(tmp.dir, 'second-api.toml')
    await writeFile(config, `[p2p]\nlisten = ["/ip4/127.0.0.1/tcp/0"]\n[api]\nport = ${apiPort}\n[rebuild]\nenabled = false\n`)
    const api = await runRbq(['node', 'start', '--config', config, '--data', second])
    expect(api.code).toBe(2)
    expect(api.stderr).toContain(`rbq: API port 127.0.0.1:${apiPort} is in use (another rbq node on this machine?): set [api] port in ${config}`)
    expect(existsSync(join(second, 'signing.key'))).toBe(false)
  })

  it('item 5: trust explain shows a first delegation while the threshold cannot be met yet, with a note', async () => {
    const own = node.node.signingKey
    const add = await runRbq(['trust', 'add', 'org', ORG.publicKey.text, '--data', data])
    expect(add.code, add.stderr).toBe(0)
    expect(add.stderr).toContain('add 1 more') // threshold 2, one root
    const [stored] = await client.submitFrames([delegate(ORG, own, { name: 'buildd-1', scope: ['pkg:deb/debian/*'] }).bytes])
    expect(stored?.status).toBe('stored')

    const r = await runRbq(['trust', 'explain', own.publicKey.text, '--package', PKG, '--data', data])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(`${own.publicKey.keyid}: TRUSTED for ${PKG}`)
    expect(r.stdout).toContain('root "org"')
    expect(r.stdout).toContain('"buildd-1"')
    expect(r.stderr).toMatch(/^rbq: note: this policy gives no verdicts yet: .*2 parties needed but only 1 \[\[root\]\] listed/)

    // the same with a policy file given on the command line
    const file = join(tmp.dir, 'one-root.toml')
    await writeFile(file, `threshold = 2\n[[root]]\nname = "org"\nkey = "${ORG.publicKey.text}"\n`)
    const withFile = await runRbq(['trust', 'explain', own.publicKey.keyid, '--policy', file, '--data', data])
    expect(withFile.code, withFile.stderr).toBe(0)
    expect(withFile.stdout).toContain('TRUSTED')
    expect(withFile.stderr).toContain('rbq: note: this policy gives no verdicts yet: policy:1: threshold')
  })

  it('item 6a: verify suggests `rbq trust add me self` only when the own key is not trusted already', async () => {
    // continues item 5: org (root) delegated to this node's key; now the user also adds itself
    const self = await runRbq(['trust', 'add', 'me', 'self', '--data', data])
    expect(self.code, self.stderr).toBe(0)
    const sha256 = sha256Hex('newcomer deb')
    const ask = (pkg = PKG) => runRbq(['verify', sha256, '--package', pkg, '--artifact', DEB, '--data', data])

    // the node's own rebuild (what `rbq rebuild … --publish` sends) is counted under org; the
    // hint says so instead of suggesting what is already done
    await client.submitFrames([attest(node.node.signingKey, { seq: 1, pkg: PKG, artifact: DEB, sha256 }).bytes])
    const counted = await ask()
    expect(counted.code).toBe(1)
    expect(counted.stdout).toMatch(/^insufficient: 1 of 2 parties/)
    expect(counted.stderr).toMatch(/this node's own rebuild already counts \(party "org"\)/)
    expect(counted.stderr).not.toContain('trust add me self')

    // another package someone else rebuilt: the own key is trusted, so only the rebuild is suggested
    const other = 'pkg:deb/debian/other@1.0-1?arch=source'
    const member = key('newcomer org member')
    await client.submitFrames([delegate(ORG, member).bytes, attest(member, { seq: 1, pkg: other, artifact: DEB, sha256 }).bytes])
    const thin = await ask(other)
    expect(thin.code).toBe(1)
    expect(thin.stdout).toMatch(/^insufficient: 1 of 2 parties/)
    expect(thin.stderr).toContain(`rbq rebuild '${other}' --publish`)
    expect(thin.stderr).not.toContain('trust add me self')

    // once the own key is no root and no delegate, adding it is the advice
    expect((await runRbq(['trust', 'remove', 'me', '--data', data])).code).toBe(0)
    const strictFile = join(tmp.dir, 'member-only.toml')
    await writeFile(strictFile, `threshold = 1\ncount = "key"\n[[root]]\nname = "m"\nkey = "${member.publicKey.text}"\n`)
    const untrusted = await runRbq(['verify', sha256, '--package', other, '--artifact', DEB, '--policy', strictFile, '--data', data])
    expect(untrusted.code).toBe(0) // 1 key of 1: reproduced, no hint at all
    const needTwo = join(tmp.dir, 'member-two.toml')
    await writeFile(needTwo, `threshold = 2\ncount = "key"\n[[root]]\nname = "m"\nkey = "${member.publicKey.text}"\n`)
    const advice = await runRbq(['verify', sha256, '--package', other, '--artifact', DEB, '--policy', needTwo, '--data', data])
    expect(advice.code).toBe(1)
    expect(advice.stderr).toContain('(with your own key as a root: rbq trust add me self)')
  })
})

describe('item 9: what the node is doing, and typos', () => {
  it('rbq status names the running rebuild: purl, phase, time so far', async () => {
    const recipes = join(tmp.dir, 'recipes')
    await mkdir(recipes)
    const go = join(tmp.dir, 'go')
    await writeFile(join(recipes, 'input.txt'), 'slow\n')
    await writeFile(
      join(recipes, 'slow.toml'),
      `purl = "pkg:generic/slow@1"\ncommand = "while [ ! -e ${go} ]; do sleep 0.05; done; cp input.txt out.txt"\noutputs = ["out.txt"]\n[[source]]\npath = "input.txt"\nsha256 = "${sha256Hex('slow\n')}"\n`
    )
    const builder = await startTestNode({ dataDir: join(tmp.dir, 'builder'), toml: { ...WITH_API, rebuild: { share: 0, recipes_dir: recipes } } })
    try {
      const req = await runRbq(['rebuild-request', 'pkg:generic/slow@1', '--data', builder.dataDir])
      expect(req.code, req.stderr).toBe(0)
      const client = new ApiClient({ dataDir: builder.dataDir })
      await waitFor(async () => (await client.status()).scheduler?.jobs?.[0]?.phase === 'build', { what: 'the build phase' })
      const status = await runRbq(['status', '--data', builder.dataDir])
      expect(status.code, status.stderr).toBe(0)
      expect(status.stdout).toMatch(/rebuilds +0 queued, 1 running\b/)
      expect(status.stdout).toMatch(/\n +pkg:generic\/slow@1: build, building for \d+s — /)
    } finally {
      await writeFile(go, '')
      await builder.cleanup()
    }
  })

  it('a mistyped verb or flag prints the error, a suggestion and where the help is — not the whole help', async () => {
    const verb = await runRbq(['statuss'])
    expect(verb.code).toBe(2)
    expect(verb.stderr).toBe("error: unknown command 'statuss'\n(Did you mean status?)\n(see rbq --help)\n")
    const flag = await runRbq(['trust', 'add', '--sope', 'x', 'me', 'self'])
    expect(flag.code).toBe(2)
    expect(flag.stderr).toBe("error: unknown option '--sope'\n(Did you mean --scope?)\n(see rbq trust add --help)\n")
  })
})
