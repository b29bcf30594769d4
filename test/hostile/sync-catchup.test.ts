/**
 * A node returning from a partition (issue 14 item 4): it missed a backlog its three peers all
 * hold, and reconnects to all of them at once. It must download each missing frame from one
 * peer only — the other sessions ask only for what is still missing — instead of the whole
 * backlog from every peer. Counts frames-requests per peer and duplicates received.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { generateSigningKey } from '../../protocol/index.js'
import type { RbqNode } from '../../node/node.js'
import { attestation } from '../utils/frames.js'
import { connect, counterValue, startTestNode, waitFor, type TestNode } from '../utils/network.js'

const LONG = process.env.RBQ_HOSTILE === 'long'
const KEYS = 3
const PER_KEY = LONG ? 2000 : 300
/** Frames the returning node already had before the partition, per key. */
const BEFORE = 50
const BATCH = 50

const served = (node: RbqNode) => counterValue(node, 'rbq_sync_requests_served_total', { request: 'frames-request' })
const received = (node: RbqNode, status: string) => counterValue(node, 'rbq_sync_frames_received_total', { status })

describe('catch-up after a partition, from three peers holding the same backlog', () => {
  const nodes: TestNode[] = []
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.cleanup()))
  })

  it('downloads each missing frame once: one peer per range', { timeout: LONG ? 600_000 : 60_000 }, async () => {
    const keys = Array.from({ length: KEYS }, () => generateSigningKey())
    const bySeq = keys.flatMap((key) => Array.from({ length: PER_KEY }, (_, i) => ({ seq: i + 1, frame: attestation(key, i + 1) })))
    const frames = bySeq.map((f) => f.frame)
    const holders = await Promise.all([0, 1, 2].map(() => startTestNode({ toml: { sync: { batch_frames: BATCH } } })))
    const returning = await startTestNode({ toml: { sync: { batch_frames: BATCH, max_concurrent_peers: 4 } } })
    nodes.push(...holders, returning)
    await Promise.all(holders.map((h) => h.node.pipeline.submitMany(frames.map((f) => f.bytes), 'local')))
    const known = bySeq.filter((f) => f.seq <= BEFORE).map((f) => f.frame)
    await returning.node.pipeline.submitMany(known.map((f) => f.bytes), 'local')
    const missing = frames.length - known.length

    const start = performance.now()
    await Promise.all(holders.map((h) => connect(returning.node, h.node)))
    await waitFor(async () => (await returning.node.store.count()) === frames.length, { what: 'the whole backlog', timeoutMs: LONG ? 300_000 : 30_000 })
    await waitFor(() => returning.node.network.sync.activePeers.length === 0, { what: 'sessions to end' })
    const ms = performance.now() - start

    const perPeer = await Promise.all(holders.map((h) => served(h.node)))
    const stored = await received(returning.node, 'stored')
    const duplicates = await received(returning.node, 'duplicate')
    const deferred = await counterValue(returning.node, 'rbq_sync_deferred_total', {})
    console.log(
      `[sync catch-up] ${missing} missing frames (${KEYS} keys), batch ${BATCH}, 3 peers: ${Math.round(ms)} ms; ` +
        `frames-requests per peer ${perPeer.join('/')} (total ${perPeer.reduce((a, b) => a + b, 0)}); ` +
        `stored ${stored}, duplicates ${duplicates}, ranges left to another session ${deferred}`
    )
    expect(stored).toBe(missing)
    // Every frame came from exactly one peer.
    expect(duplicates).toBe(0)
    // One peer's worth of requests in all: full batches, plus at most one short one per range.
    expect(perPeer.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(Math.ceil(missing / BATCH) + KEYS)
  })
})
