/**
 * The verbs that talk to a node — init, status, peers, trust, verify, delegate/revoke, watch —
 * run as real processes (`node dist/cli/main.js …`) against real nodes started in this process
 * (LevelDB, libp2p on loopback, the HTTP API on an ephemeral loopback port found through
 * `<data>/api.url`). Exit codes: 0 ok/reproduced, 1 negative answer, 2 usage/IO/no node.
 */
import { spawn } from 'node:child_process'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from '../../client/api-client.js'
import { sha256File } from '../../common/files.js'
import { sha256Hex, type SigningKey } from '../../protocol/index.js'
import { RBQ_BIN, runRbq } from '../utils/cli.js'
import { hasDpkgDeb, makeDeb } from '../utils/make-deb.js'
import { startTestNode, waitFor, type TestNode } from '../utils/network.js'
import { makeTempDir } from '../utils/tmp.js'
import { attest, key } from '../unit/node/consensus/fixtures.js'

/** Test nodes run without the API by default; these tests need it (on a free loopback port). */
const WITH_API = { api: { enabled: true, port: 0 } }

const ALICE = key('cli alice')
const BOB = key('cli bob')
const STRANGER = key('cli stranger')
const PKG = 'pkg:deb/debian/hello@2.10-3?arch=source'
const DEB = 'hello_2.10-3_amd64.deb'

let tmp: { dir: string; cleanup: () => Promise<void> }
let data: string
let a: TestNode
let client: ApiClient
let ownKeyText: string

const rbq = (args: string[]) => runRbq(args)

beforeAll(async () => {
  tmp = await makeTempDir('rbq-cli-node-')
  data = join(tmp.dir, 'node-a')
  // `rbq init` first; the node then starts on that data dir with its keys and token.
  const init = await rbq(['init', '--data', data, '--json'])
  expect(init.code, init.stderr).toBe(0)
  ownKeyText = (JSON.parse(init.stdout) as { publicKey: string }).publicKey
  a = await startTestNode({ dataDir: data, toml: WITH_API })
  client = new ApiClient({ dataDir: data })
}, 120_000)

afterAll(async () => {
  await a?.cleanup()
  await tmp?.cleanup()
})

async function trustTwo(): Promise<void> {
  for (const [name, k] of [['alice', ALICE], ['bob', BOB]] as [string, SigningKey][]) {
    const r = await rbq(['trust', 'add', name, k.publicKey.text, '--scope', 'pkg:deb/debian/*', '--data', data])
    if (r.code !== 0 && !r.stderr.includes('duplicate')) throw new Error(r.stderr)
  }
}

describe('rbq init', () => {
  it('creates keys, token and a starter policy naming the own key (0600 secrets), and keeps them on a second run', async () => {
    const d = join(tmp.dir, 'fresh')
    const first = await rbq(['init', '--data', d])
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toContain('created')
    for (const f of ['signing.key', 'peer.key', 'api.token']) expect((await stat(join(d, f))).mode & 0o777).toBe(0o600)
    const policy = await readFile(join(d, 'policy.toml'), 'utf8')
    const again = await rbq(['init', '--data', d, '--json'])
    const result = JSON.parse(again.stdout) as { publicKey: string; created: Record<string, boolean> }
    expect(result.created).toEqual({ signingKey: false, peerKey: false, apiToken: false, policy: false })
    expect(policy).toContain(`# key = "${result.publicKey}"`)
    expect(policy).toMatch(/^threshold = 2$/m)
  })
})

describe('rbq status / peers', () => {
  it('shows the node found through --data, as text and JSON', async () => {
    const text = await rbq(['status', '--data', data])
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toContain(a.node.signingKey.publicKey.keyid)
    expect(text.stdout).toContain(a.node.peerId.toString())
    const json = await rbq(['status', '--data', data, '--json'])
    const s = JSON.parse(json.stdout) as { keyid: string; publicKey: string; sync: { state: string } }
    expect(s.keyid).toBe(a.node.signingKey.publicKey.keyid)
    expect(s.publicKey).toBe(ownKeyText)
    expect(['idle', 'catching-up']).toContain(s.sync.state)
  })

  it('lists a connected peer', async () => {
    const b = await startTestNode({ toml: { p2p: { bootstrap: [a.node.addresses[0]!] } } })
    try {
      const peers = await waitFor(async () => {
        const r = await rbq(['peers', '--data', data, '--json'])
        const list = (JSON.parse(r.stdout) as { peers: { peerId: string }[] }).peers
        return list.some((p) => p.peerId === b.node.peerId.toString()) ? list : undefined
      }, { what: 'peer in rbq peers' })
      expect(peers.length).toBeGreaterThanOrEqual(1)
      const text = await rbq(['peers', '--data', data])
      expect(text.stdout).toContain(b.node.peerId.toString())
    } finally {
      await b.cleanup()
    }
  })

  it('no node running: exit 2 and how to start one', async () => {
    const d = join(tmp.dir, 'idle')
    await rbq(['init', '--data', d])
    for (const args of [['status'], ['peers'], ['verify', sha256Hex('x')], ['trust', 'explain', ALICE.publicKey.keyid], ['watch']]) {
      const r = await rbq([...args, '--data', d])
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr).toContain(`rbq node start --data ${d}`)
      expect(r.stderr).toContain('[API_UNAVAILABLE]')
    }
    const refused = await rbq(['status', '--api', 'http://127.0.0.1:9'])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain('no rbq node at http://127.0.0.1:9')
  })
})

describe('rbq trust', () => {
  it('add, list, remove: edits the policy file (the node re-reads it); bad input is refused with exit 2', async () => {
    const first = await rbq(['trust', 'add', 'alice', ALICE.publicKey.text, '--scope', 'pkg:deb/debian/*', '--data', data])
    expect(first.code, first.stderr).toBe(0)
    expect(first.stderr).toContain('add 1 more') // threshold 2, one root
    await trustTwo()
    const list = await rbq(['trust', 'list', '--data', data, '--json'])
    const parsed = JSON.parse(list.stdout) as { roots: { name: string }[]; usable: boolean; threshold: number }
    expect(parsed.roots.map((r) => r.name)).toEqual(['alice', 'bob'])
    expect(parsed.usable).toBe(true)
    await waitFor(async () => (await client.status()).policy.loaded, { what: 'node to load the policy' })

    const dup = await rbq(['trust', 'add', 'alice2', ALICE.publicKey.text, '--data', data])
    expect(dup.code).toBe(2)
    expect(dup.stderr).toMatch(/duplicate root key/)
    const badKey = await rbq(['trust', 'add', 'x', 'ed25519:AAAA', '--data', data])
    expect(badKey.code).toBe(2)
    const badScope = await rbq(['trust', 'add', 'x', STRANGER.publicKey.text, '--scope', 'debian', '--data', data])
    expect(badScope.code).toBe(2)
    expect(badScope.stderr).toMatch(/scope/)

    const self = await rbq(['trust', 'add', 'me', 'self', '--data', data])
    expect(self.code, self.stderr).toBe(0)
    expect(self.stdout).toContain(a.node.signingKey.publicKey.keyid)
    const removed = await rbq(['trust', 'remove', 'me', '--data', data])
    expect(removed.code).toBe(0)
    const missing = await rbq(['trust', 'remove', 'nobody', '--data', data])
    expect(missing.code).toBe(1)
  })

  it('a broken policy file is refused naming its line', async () => {
    const p = join(tmp.dir, 'broken.toml')
    await writeFile(p, 'threshold = 2\ncount = "party"\nmax_dissent = "none"\n')
    const r = await rbq(['trust', 'list', '--policy', p])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`${p}:3: max_dissent`)
  })
})

describe('rbq verify', () => {
  beforeAll(async () => {
    await trustTwo()
  })

  it('reproduced → 0; insufficient → 1 with the rebuild hint; unknown and mismatch → 1 with the reason on one line', async () => {
    const file = join(tmp.dir, DEB)
    await writeFile(file, 'pretend .deb contents\n')
    const { sha256 } = await sha256File(file)
    await client.submitFrames([attest(ALICE, { seq: 1, pkg: PKG, artifact: DEB, sha256 }).bytes])

    const thin = await rbq(['verify', file, '--package', PKG, '--data', data])
    expect(thin.code).toBe(1)
    expect(thin.stdout).toMatch(/^insufficient: 1 of 2 parties rebuilt [0-9a-f]{12} \(alice\)\n$/)
    expect(thin.stderr).toContain(`rbq rebuild '${PKG}' --publish`)

    await client.submitFrames([attest(BOB, { seq: 1, pkg: PKG, artifact: DEB, sha256 }).bytes])
    const ok = await rbq(['verify', file, '--package', PKG, '--data', data])
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.stdout).toMatch(/^reproduced: 2 parties rebuilt [0-9a-f]{12} \(.*; 2 needed\)/)
    const bySha = await rbq(['verify', sha256, '--data', data, '--json'])
    expect(bySha.code).toBe(0)
    expect((JSON.parse(bySha.stdout) as { verdicts: { evidence: { package: string } }[] }).verdicts[0]!.evidence.package).toBe(PKG)

    const tampered = join(tmp.dir, 'tampered', DEB)
    await import('node:fs/promises').then((fs) => fs.mkdir(join(tmp.dir, 'tampered')))
    await writeFile(tampered, 'pretend .deb contents!\n')
    const mismatch = await rbq(['verify', tampered, '--package', PKG, '--data', data])
    expect(mismatch.code).toBe(1)
    expect(mismatch.stdout.trim().split('\n')).toHaveLength(1)
    expect(mismatch.stdout).toMatch(/^mismatch: 2 parties saw the archive publish [0-9a-f]{12} as .*; this file \([0-9a-f]{12}\) was never published\n$/)

    const unknown = await rbq(['verify', sha256Hex('nobody built this'), '--data', data])
    expect(unknown.code).toBe(1)
    expect(unknown.stdout).toMatch(/^unknown: /)

    // A policy file given on the command line replaces the node's for this question.
    const strict = join(tmp.dir, 'strict.toml')
    await writeFile(strict, `threshold = 3\ncount = "key"\n[[root]]\nname = "alice"\nkey = "${ALICE.publicKey.text}"\n[[root]]\nname = "bob"\nkey = "${BOB.publicKey.text}"\n`)
    const stricter = await rbq(['verify', file, '--package', PKG, '--policy', strict, '--data', data])
    expect(stricter.code).toBe(1)
    expect(stricter.stdout).toMatch(/^insufficient: 2 of 3 keys/)
  })

  it('unreproducible → 3, saying why in one line, by file and by bare digest alike', async () => {
    const pkg = 'pkg:deb/debian/drifty@2.0-1?arch=source'
    const deb = 'drifty_2.0-1_amd64.deb'
    const file = join(tmp.dir, deb)
    await writeFile(file, 'the archive file of drifty\n')
    const { sha256 } = await sha256File(file)
    // alice and bob saw the archive publish this file; today's rebuilds differ by their build-id
    const drift = (k: typeof ALICE, i: number) =>
      attest(k, { seq: 30, pkg, artifact: deb, sha256: sha256Hex(`rebuild ${i}`), outcome: 'mismatch', upstream: sha256, diff: { tags: ['build-id'], summary: 'ELF build-id differs' } }).bytes
    await client.submitFrames([drift(ALICE, 0), drift(BOB, 1)])
    const expected = "unreproducible: not reproducible with today's toolchain: 2 parties rebuilt other bytes (build-id); the archive published this file; not a sign of tampering\n"
    const byFile = await rbq(['verify', file, '--package', pkg, '--data', data])
    expect(byFile.code, byFile.stderr).toBe(3)
    expect(byFile.stdout).toBe(expected)
    const byDigest = await rbq(['verify', sha256, '--data', data])
    expect(byDigest.code, byDigest.stderr).toBe(3)
    expect(byDigest.stdout).toBe(expected)
    // one byte changed: nobody saw the archive publish that
    const changed = join(tmp.dir, 'changed', deb)
    await import('node:fs/promises').then((fs) => fs.mkdir(join(tmp.dir, 'changed')))
    await writeFile(changed, 'the archive file of drifty!\n')
    const alarm = await rbq(['verify', changed, '--package', pkg, '--data', data])
    expect(alarm.code).toBe(1)
    expect(alarm.stdout).toMatch(/^mismatch: 2 parties saw the archive publish /)
  })

  it.skipIf(!hasDpkgDeb())('a .deb is named by its control fields (source purl, pool file name)', async () => {
    const path = makeDeb(tmp.dir, { package: 'tinytool', version: '1:1.0-2', architecture: 'all', source: 'tiny-src (1.0-2)' })
    const { sha256 } = await sha256File(path)
    const pkg = 'pkg:deb/debian/tiny-src@1.0-2?arch=source'
    await client.submitFrames([ALICE, BOB].map((k) => attest(k, { seq: 2, pkg, artifact: 'tinytool_1.0-2_all.deb', sha256 }).bytes))
    const r = await rbq(['verify', path, '--data', data, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect((JSON.parse(r.stdout) as { query: unknown }).query).toEqual({ sha256, package: pkg, artifact: 'tinytool_1.0-2_all.deb' })
  })

  it('usage and I/O errors exit 2', async () => {
    const missing = await rbq(['verify', join(tmp.dir, 'nope.deb'), '--data', data])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('[FILE_NOT_FOUND]')
    const traversal = await rbq(['verify', sha256Hex('x'), '--package', PKG, '--artifact', '../../etc/passwd', '--data', data])
    expect(traversal.code).toBe(2)
    expect(traversal.stderr).toContain('not a file name')
    const dir = await rbq(['verify', tmp.dir, '--data', data])
    expect(dir.code).toBe(2)
    const badPurl = await rbq(['verify', sha256Hex('x'), '--package', 'nonsense', '--data', data])
    expect(badPurl.code).toBe(2)
  })
})

describe('rbq delegate (publishing) and rbq revoke', () => {
  it('publishes a delegation signed with the data dir key, versions it, and revokes it', async () => {
    // The node's own key as a root, so its delegations count.
    expect((await rbq(['trust', 'add', 'me', 'self', '--data', data])).code).toBe(0)
    const buildd = key('cli buildd')
    const d1 = await rbq(['delegate', buildd.publicKey.text, '--name', 'buildd-1', '--scope', 'pkg:deb/debian/*', '--expires', '2099-01-01', '--data', data, '--json'])
    expect(d1.code, d1.stderr).toBe(0)
    expect(JSON.parse(d1.stdout)).toMatchObject({ version: 1, status: 'stored', delegator: a.node.signingKey.publicKey.keyid, delegate: buildd.publicKey.keyid })
    const d2 = await rbq(['delegate', buildd.publicKey.text, '--name', 'buildd-1', '--scope', 'pkg:deb/debian/*', '--expires', '2099-06-01', '--data', data, '--json'])
    expect(JSON.parse(d2.stdout)).toMatchObject({ version: 2, status: 'stored' })

    const explain = await rbq(['trust', 'explain', buildd.publicKey.keyid, '--package', PKG, '--data', data])
    expect(explain.code, explain.stderr).toBe(0)
    expect(explain.stdout).toContain('TRUSTED')
    expect(explain.stdout).toMatch(/root "me"\n\s+└─ "buildd-1" .* v2/)

    const revoke = await rbq(['revoke', buildd.publicKey.keyid, '--data', data, '--json'])
    expect(revoke.code, revoke.stderr).toBe(0)
    expect(JSON.parse(revoke.stdout)).toMatchObject({ status: 'stored', statement: { version: 3, revoked: true } })
    const after = await rbq(['trust', 'explain', buildd.publicKey.keyid, '--package', PKG, '--data', data, '--json'])
    expect(after.code).toBe(1)
    expect((JSON.parse(after.stdout) as { trusted: boolean; incoming: { state: string }[] }).incoming[0]!.state).toBe('revoked')

    const nothing = await rbq(['revoke', STRANGER.publicKey.text, '--data', data])
    expect(nothing.code).toBe(2)
    expect(nothing.stderr).toContain('nothing to revoke')
    expect((await rbq(['trust', 'remove', 'me', '--data', data])).code).toBe(0)
  })

  it("the node signs delegations from its own key; another --key signs in the CLI; bad input stores nothing", async () => {
    // The node's publisher announces only what it signed itself (a frame submitted by the CLI is not its own).
    const signedByNode: string[] = []
    const onPublished = (f: { id: string }) => signedByNode.push(f.id)
    a.node.publisher.on('published', onPublished)
    try {
      const target = key('cli buildd 2')
      const own = await rbq(['delegate', target.publicKey.text, '--name', 'buildd-2', '--scope', 'pkg:deb/debian/*', '--expires', '2099-01-01', '--data', data, '--json'])
      expect(own.code, own.stderr).toBe(0)
      const ownResult = JSON.parse(own.stdout) as { id: string; delegator: string; status: string }
      expect(ownResult).toMatchObject({ status: 'stored', delegator: a.node.signingKey.publicKey.keyid })
      expect(signedByNode).toEqual([ownResult.id])

      const otherKey = join(tmp.dir, 'other-delegator.key')
      expect((await rbq(['key', 'generate', '--out', otherKey])).code).toBe(0)
      const other = await rbq(['delegate', target.publicKey.text, '--key', otherKey, '--name', 'buildd-2', '--scope', 'pkg:deb/debian/*', '--expires', '2099-01-01', '--data', data, '--json'])
      expect(other.code, other.stderr).toBe(0)
      const otherResult = JSON.parse(other.stdout) as { id: string; delegator: string; status: string; version: number }
      expect(otherResult).toMatchObject({ status: 'stored', version: 1 })
      expect(otherResult.delegator).not.toBe(a.node.signingKey.publicKey.keyid)
      expect((await a.node.store.delegationIdsByDelegate(target.publicKey.keyid)).sort()).toEqual([ownResult.id, otherResult.id].sort())
      expect(signedByNode).toEqual([ownResult.id])

      const before = await a.node.store.count('delegation')
      const self = await rbq(['delegate', a.node.signingKey.publicKey.text, '--name', 'me', '--scope', 'pkg:deb/debian/*', '--expires', '2099-01-01', '--data', data])
      expect(self.code).toBe(2)
      expect(self.stderr).toMatch(/cannot delegate: .*itself/)
      const past = await rbq(['delegate', target.publicKey.text, '--name', 'buildd-2', '--scope', 'pkg:deb/debian/*', '--expires', '2001-01-01', '--data', data])
      expect(past.code).toBe(2)
      expect(past.stderr).toMatch(/in the past/)
      expect(await a.node.store.count('delegation')).toBe(before)
      expect(signedByNode).toEqual([ownResult.id])
    } finally {
      a.node.publisher.off('published', onPublished)
    }
  })
})

describe('rbq watch', () => {
  it('prints the verdict change of a watched artifact when a new attestation arrives, and exits 0 on SIGINT', async () => {
    await trustTwo()
    const sha256 = sha256Hex('watched file')
    const pkg = 'pkg:deb/debian/watched@1.0-1?arch=source'
    await client.submitFrames([attest(ALICE, { seq: 10, pkg, artifact: 'watched_1.0-1_all.deb', sha256 }).bytes])
    await client.watch([{ package: pkg, artifact: 'watched_1.0-1_all.deb', sha256 }])
    const child = spawn(process.execPath, [RBQ_BIN, 'watch', '--data', data, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
    try {
      // The watcher is connected once the node counts an SSE client; then the attestation arrives.
      await waitFor(async () => (await sseClients()) > 0, { what: `rbq watch to connect (stderr: ${stderr})` })
      await client.submitFrames([attest(BOB, { seq: 10, pkg, artifact: 'watched_1.0-1_all.deb', sha256 }).bytes])
      const line = await waitFor(() => stdout.split('\n').find((l) => l.includes('"verdict"')), { what: `a verdict line (stderr: ${stderr})` })
      expect(JSON.parse(line)).toMatchObject({ type: 'verdict', data: { package: pkg, from: 'insufficient', to: 'reproduced' } })
    } finally {
      child.kill('SIGINT')
    }
    expect(await exited).toBe(0)
  })
})

/** Event streams open on node a (its API's gauge). */
async function sseClients(): Promise<number> {
  const text = await client.metrics()
  const m = /rbq_api_event_streams (\d+)/.exec(text)
  return m === null ? 0 : Number(m[1])
}
