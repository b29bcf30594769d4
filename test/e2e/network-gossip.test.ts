/**
 * Gossip across real nodes on loopback (5 in a line: 0 - 1 - 2 - 3 - 4). Periodic sync is off
 * (the test defaults), so what arrives after the line is built arrives by gossip.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_FRAME_BYTES, TOPIC_ATTESTATIONS, TOPIC_DELEGATIONS, generateSigningKey, utf8, type Topic } from '../../protocol/index.js'
import type { RbqNode } from '../../node/node.js'
import { attestation, delegation, tampered } from '../utils/frames.js'
import { connect, counterValue, startTestNode, waitFor, waitForSubscribers, type TestNode } from '../utils/network.js'
import { hasFrame } from '../utils/store-reads.js'

async function line(n: number): Promise<{ nodes: TestNode[]; at: (i: number) => RbqNode }> {
  const nodes = await Promise.all(Array.from({ length: n }, () => startTestNode()))
  const at = (i: number) => (nodes[i] as TestNode).node
  for (let i = 0; i + 1 < n; i++) await connect(at(i), at(i + 1))
  const pairs = Array.from({ length: n - 1 }, (_, i): [RbqNode, RbqNode] => [at(i), at(i + 1)])
  await waitForSubscribers(pairs, TOPIC_ATTESTATIONS)
  await waitForSubscribers(pairs, TOPIC_DELEGATIONS)
  return { nodes, at }
}

const gossipCount = (node: RbqNode, labels: Record<string, string>) => counterValue(node, 'rbq_gossip_messages_total', labels)

describe('gossip along a line of 5 nodes', () => {
  let net: Awaited<ReturnType<typeof line>>
  beforeAll(async () => {
    net = await line(5)
  })
  afterAll(async () => {
    await Promise.all(net.nodes.map((n) => n.cleanup()))
  })

  it('a frame published at one end is stored by every node, each hop accepting it by gossip', async () => {
    const frame = await net.at(0).publisher.attest({
      package: 'pkg:deb/debian/hello@2.10-3?arch=source',
      subject: [{ name: 'hello_2.10-3_amd64.deb', sha256: 'a'.repeat(64) }],
      outcome: 'reproduced',
      upstream: [{ name: 'hello_2.10-3_amd64.deb', sha256: 'a'.repeat(64) }],
      inputs: { sha256: 'b'.repeat(64), materials: [] },
      startedOn: new Date('2026-01-01T00:00:00Z'),
      finishedOn: new Date('2026-01-01T00:01:00Z'),
      backend: 'debian'
    })
    for (let i = 1; i < 5; i++) {
      await waitFor(() => hasFrame(net.at(i).store, frame.id), { what: `frame at node ${i}` })
      expect(await gossipCount(net.at(i), { topic: TOPIC_ATTESTATIONS, result: 'accept' })).toBeGreaterThanOrEqual(1)
    }
  })

  it('a delegation travels on its own topic', async () => {
    const frame = delegation(generateSigningKey(), generateSigningKey())
    await net.at(4).network.gossip.publish(frame)
    for (let i = 0; i < 4; i++) await waitFor(() => hasFrame(net.at(i).store, frame.id), { what: `delegation at node ${i}` })
  })
})

describe('invalid frames published raw at one end', () => {
  let net: Awaited<ReturnType<typeof line>>
  beforeAll(async () => {
    net = await line(5)
  })
  afterAll(async () => {
    await Promise.all(net.nodes.map((n) => n.cleanup()))
  })

  it('are rejected by the first hop and never reach the others', async () => {
    const key = generateSigningKey()
    const good = attestation(key, 1)
    const badSignature = tampered(good.frame, (f) => {
      f.envelope.signatures[0].sig = attestation(key, 2).frame.envelope.signatures[0]?.sig
    })
    const oversized = new Uint8Array(MAX_FRAME_BYTES + 1).fill(0x20)
    const malformed = utf8('{"v":1,"publicKey":')
    const wrongTopic = delegation(key, generateSigningKey()).bytes
    const cases: { topic: Topic; bytes: Uint8Array; code: string }[] = [
      { topic: TOPIC_ATTESTATIONS, bytes: badSignature, code: 'SIGNATURE_INVALID' },
      { topic: TOPIC_ATTESTATIONS, bytes: oversized, code: 'INPUT_TOO_LARGE' },
      { topic: TOPIC_ATTESTATIONS, bytes: malformed, code: 'JSON_MALFORMED' },
      { topic: TOPIC_ATTESTATIONS, bytes: wrongTopic, code: 'TOPIC_MISMATCH' }
    ]
    // Node 0 plays the attacker: its raw gossipsub publishes without validating.
    const pubsub = net.at(0).libp2p.services.pubsub
    for (const c of cases) {
      await pubsub.publish(c.topic, c.bytes)
      await waitFor(async () => (await gossipCount(net.at(1), { topic: c.topic, result: 'reject', code: c.code })) === 1, { what: `node 1 rejecting ${c.code}` })
    }
    // A valid frame sent after them reaches the far end: anything forwarded would have too.
    await pubsub.publish(TOPIC_ATTESTATIONS, good.bytes)
    await waitFor(() => hasFrame(net.at(4).store, good.id), { what: 'the valid frame at node 4' })

    for (let i = 1; i < 5; i++) expect(await net.at(i).store.count()).toBe(1)
    for (let i = 2; i < 5; i++) {
      expect(await gossipCount(net.at(i), { result: 'reject' })).toBe(0)
      expect(await gossipCount(net.at(i), { topic: TOPIC_ATTESTATIONS })).toBe(1)
    }
    expect(await gossipCount(net.at(1), { result: 'reject' })).toBe(cases.length)
  })
})
