/**
 * The HTTP API of real nodes (LevelDB, libp2p on loopback, API on ephemeral loopback ports
 * found through <data>/api.url): frames submitted to one node's API are gossiped to the other,
 * whose event stream reports the verdict change of a watched artifact; watched verdicts survive
 * a restart; /metrics carries libp2p's metrics; status and peers show the network.
 */
import { writeFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from '../../client/api-client.js'
import { policyPath } from '../../node/trust/policy-file.js'
import { formatPolicy } from '../../node/consensus/index.js'
import { TOPIC_ATTESTATIONS } from '../../protocol/index.js'
import type { VerdictEvent } from '../../protocol/api.js'
import { attest, DEB, H, key, PKG, policy } from '../unit/node/consensus/fixtures.js'
import { connect, startTestNode, waitFor, waitForSubscribers, type TestNode } from '../utils/network.js'

/** Test nodes run without the API by default; these tests need it (on a free loopback port). */
const WITH_API = { api: { enabled: true, port: 0 } }

const ALICE = key('api e2e alice')
const BOB = key('api e2e bob')
const TWO = policy({ threshold: 2, roots: [{ name: 'alice', key: ALICE }, { name: 'bob', key: BOB }] })

let a: TestNode
let b: TestNode
let clientA: ApiClient
let clientB: ApiClient

beforeAll(async () => {
  // One after the other: @libp2p/prometheus-metrics keeps its metrics in a module-level map, so
  // only the first libp2p node of a process registers them (in its own registry).
  a = await startTestNode({ toml: WITH_API })
  b = await startTestNode({ toml: WITH_API })
  await writeFile(policyPath(b.dataDir), formatPolicy(TWO))
  await connect(a.node, b.node)
  await waitForSubscribers([[a.node, b.node]], TOPIC_ATTESTATIONS)
  clientA = new ApiClient({ dataDir: a.dataDir })
  clientB = new ApiClient({ dataDir: b.dataDir })
}, 120_000)

afterAll(async () => {
  await Promise.all([a?.cleanup(), b?.cleanup()])
})

describe('API on a network of two nodes', () => {
  it('status and peers show the libp2p side; /metrics includes libp2p metrics', async () => {
    const s = await clientA.status()
    expect(s.peerId).toBe(a.node.peerId.toString())
    expect(s.listen.length).toBeGreaterThan(0)
    expect(s.peers).toBe(1)
    expect(['idle', 'catching-up']).toContain(s.sync.state)
    const peers = await clientA.peers()
    expect(peers.map((p) => p.peerId)).toEqual([b.node.peerId.toString()])
    const metrics = await clientA.metrics()
    expect(metrics).toMatch(/^# TYPE libp2p_\w+/m)
    expect(metrics).toContain('rbq_api_requests_total')
    // `_total` is for counters: libp2p's gauges are exported without it.
    expect([...metrics.matchAll(/^# TYPE (\S+_total) (?!counter)\S+$/gm)].map((m) => m[1])).toEqual([])
    expect(metrics).toMatch(/^# TYPE libp2p_tcp_inbound_connections gauge$/m)
  })

  it('an attestation submitted to A reaches B by gossip, and B reports the verdict change of its watched artifact', async () => {
    await clientA.submitFrame(attest(ALICE, { seq: 1 }).bytes)
    await waitFor(async () => (await clientB.status()).frames.attestation === 1, { what: 'first frame on B' })
    const [watched] = await clientB.watch([{ package: PKG, artifact: DEB, sha256: H }])
    expect(watched!.status).toBe('insufficient')

    const controller = new AbortController()
    const deadline = setTimeout(() => controller.abort(), 20_000)
    const events = clientB.events({ types: ['verdict'], signal: controller.signal })
    const first = events.next()
    await waitFor(async () => /rbq_api_event_streams [1-9]/.test(await clientB.metrics()), { what: 'B to count the event stream' })
    const bob = attest(BOB, { seq: 1 })
    expect((await clientA.submitFrame(bob.bytes)).status).toBe('stored')
    const next = await first
    clearTimeout(deadline)
    controller.abort()
    expect(next.done).toBe(false)
    expect((next.value as { data: VerdictEvent }).data).toMatchObject({ package: PKG, artifact: DEB, sha256: H, from: 'insufficient', to: 'reproduced' })
    expect((await clientB.verdict({ sha256: H })).status).toBe('reproduced')
  })

  it('watched verdicts survive a restart of the node', async () => {
    const dataDir = b.dataDir
    await b.node.stop()
    const restarted = await startTestNode({ dataDir, toml: WITH_API })
    try {
      const client = new ApiClient({ dataDir })
      const list = await client.watched()
      expect(list).toHaveLength(1)
      expect(list[0]).toMatchObject({ package: PKG, status: 'reproduced' })
    } finally {
      await restarted.node.stop()
    }
  })
})
