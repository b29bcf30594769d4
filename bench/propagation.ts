/**
 * Gossip propagation latency across 10 nodes on loopback, all in this process (so they share
 * the CPU: on 2 cores this measures our overhead more than the network's).
 *
 *   npm run build && node dist/bench/propagation.js [nodes=10] [frames=100]
 *   node dist/bench/propagation.js --rate 1000 --seconds 60 [--nodes 10]    (issue 13 row)
 *   node dist/bench/propagation.js --quick                                  (--rate 100 --seconds 5)
 *
 * Topology: node i dials i+1 and i+3 (mod n): degree 4, diameter 3 for 10 nodes. Each frame is
 * submitted at a random node through its API path (pipeline source 'api': verified, stored,
 * then published); latency = submit → 'stored' at each other node.
 * - Without --rate: frames go one at a time (each waits until every node has it).
 * - With --rate R --seconds T: R frames a second are offered for T seconds (on a 10 ms clock,
 *   catching up when late; frames signed as they are offered), whether or not earlier ones
 *   have arrived; then up to 60 s to drain. Lost = deliveries that never happened. Goal (issue
 *   13): 10 nodes, 1k msg/s for 60 s, p99 ≤ 250 ms, 0 lost.
 * Baseline of the same run: one raw Ed25519 verify (each delivery costs every node at least one).
 * Also printed: the process's CPU time per frame per node (all nodes share this process), i.e.
 * what 1k msg/s costs one node: 1,000 × that figure in CPU-milliseconds per second.
 */
import '../common/polyfills.js'
import { generateKeyPairSync, sign, verify } from 'node:crypto'
import { generateSigningKey, type SigningKey } from '../protocol/index.js'
import { TOPICS } from '../protocol/index.js'
import { benchAttestation, connect, percentile, startBenchNode, waitUntil, type BenchNode } from './network-lib.js'
import { BenchReport, benchFlags, numberArg } from './report.js'

const flags = benchFlags('propagation')
const NODES = numberArg(flags, 'nodes', 0, 10)
const FRAMES = numberArg(flags, 'frames', 1, 100)
const RATE = numberArg(flags, 'rate', -1, 0, 100)
const SECONDS = numberArg(flags, 'seconds', -1, 60, 5)
const DRAIN_MS = 60_000

function verifyBaselineUs(): number {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const message = Buffer.alloc(600, 7)
  const signature = sign(null, message, privateKey)
  const times: number[] = []
  for (let i = 0; i < 5000; i++) {
    const t = performance.now()
    verify(null, message, publicKey, signature)
    times.push((performance.now() - t) * 1000)
  }
  return percentile(times.sort((a, b) => a - b), 50)
}

/** Offers RATE frames a second for SECONDS at random nodes; every other node must store each. */
async function offered(nodes: BenchNode[], keys: SigningKey[], report: BenchReport): Promise<void> {
  const total = Math.round(RATE * SECONDS)
  const submittedAt = new Map<string, number>()
  const arrivals = new Map<string, number>()
  const latencies: number[] = []
  let delivered = 0
  let refused = 0
  const offs = nodes.map(({ node }) => {
    const listener = (stored: { id: string }, source: string) => {
      if (source === 'api') return // the origin's own store
      const at = submittedAt.get(stored.id)
      if (at === undefined) return
      latencies.push(performance.now() - at)
      delivered++
      const n = (arrivals.get(stored.id) ?? 0) + 1
      if (n === nodes.length - 1) {
        arrivals.delete(stored.id)
        submittedAt.delete(stored.id)
      } else arrivals.set(stored.id, n)
    }
    node.events.on('stored', listener)
    return () => node.events.off('stored', listener)
  })
  const seqs = keys.map(() => 0)
  const submits: Promise<unknown>[] = []
  const cpuBefore = process.cpuUsage()
  const start = performance.now()
  let sent = 0
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * RATE))
      for (; sent < due; sent++) {
        const origin = Math.floor(Math.random() * nodes.length)
        const frame = benchAttestation(keys[origin]!, ++seqs[origin]!, sent)
        submittedAt.set(frame.id, performance.now())
        submits.push(
          nodes[origin]!.node.pipeline.submit(frame.bytes, 'api').then((r) => {
            if (r.status !== 'stored') refused++
          })
        )
      }
      if (sent >= total) resolve()
      else setTimeout(tick, 10)
    }
    tick()
  })
  const offeredFor = (performance.now() - start) / 1000
  await Promise.all(submits)
  const expected = total * (nodes.length - 1)
  await waitUntil(() => delivered >= expected, DRAIN_MS, 'deliveries').catch(() => undefined)
  const drained = (performance.now() - start) / 1000
  const cpu = process.cpuUsage(cpuBefore)
  // All nodes share this process: its CPU time over every frame's arrival at every node.
  const cpuPerDeliveryMs = (cpu.user + cpu.system) / 1000 / Math.max(1, delivered + total)
  offs.forEach((off) => off())
  latencies.sort((a, b) => a - b)
  const lost = expected - delivered
  const p99 = percentile(latencies, 99)
  report.add({
    id: 'offered',
    what: `${nodes.length} nodes, ${RATE} msg/s offered for ${SECONDS} s (${total} frames, ${expected} deliveries expected): delivery p99`,
    value: p99,
    unit: 'ms',
    detail: { p50: percentile(latencies, 50), p90: percentile(latencies, 90), max: latencies.at(-1) ?? NaN, lost, 'refused at origin': refused, 'offered msg/s': total / offeredFor, 'all stored after s': drained, 'CPU ms per frame per node': cpuPerDeliveryMs },
    baseline: 'verify-ms',
    goal: 'p99 ≤ 250 ms, 0 lost (1k msg/s, 60 s, 10 nodes)',
    met: p99 <= 250 && lost === 0 && RATE >= 1000 && SECONDS >= 60
  })
}

async function main(): Promise<void> {
  const report = new BenchReport('propagation', flags, { nodes: NODES, ...(RATE > 0 ? { rate: RATE, seconds: SECONDS } : { frames: FRAMES }) })
  report.add({ id: 'verify-ms', what: 'baseline: node:crypto Ed25519 verify, 600-byte message (p50)', value: verifyBaselineUs() / 1000, unit: 'ms' })
  // Decoding on each node's main thread: 10 nodes × a worker pool each would oversubscribe 2 cores.
  const nodes: BenchNode[] = await Promise.all(Array.from({ length: NODES }, () => startBenchNode({ ingest: { workers: 0 } })))
  try {
    const at = (i: number) => (nodes[((i % NODES) + NODES) % NODES] as BenchNode).node
    for (let i = 0; i < NODES; i++) {
      await connect(at(i), at(i + 1))
      if (NODES > 4) await connect(at(i), at(i + 3))
    }
    await waitUntil(() => nodes.every(({ node }) => TOPICS.every((t) => node.libp2p.services.pubsub.getSubscribers(t).length >= 2)), 20_000, 'subscriptions')
    // Let the meshes settle (grafts happen on subscribe and at the 1 s heartbeat).
    await new Promise((r) => setTimeout(r, 2000))

    const keys: SigningKey[] = Array.from({ length: NODES }, () => generateSigningKey())
    if (RATE > 0) {
      await offered(nodes, keys, report)
      report.finish()
      return
    }
    const latencies: number[] = []
    const worst: number[] = []
    for (let f = 0; f < FRAMES; f++) {
      const origin = Math.floor(Math.random() * NODES)
      const frame = benchAttestation(keys[origin] as SigningKey, f + 1, f)
      const arrived = new Map<number, number>()
      const listeners = nodes.map(({ node }, i) => {
        const listener = (stored: { id: string }) => {
          if (stored.id === frame.id && i !== origin) arrived.set(i, performance.now())
        }
        node.events.on('stored', listener)
        return () => node.events.off('stored', listener)
      })
      const start = performance.now()
      const result = await at(origin).pipeline.submit(frame.bytes, 'api')
      if (result.status !== 'stored') throw new Error(`origin did not store the frame: ${result.status}`)
      await waitUntil(() => arrived.size === NODES - 1, 30_000, `frame ${f} everywhere`)
      listeners.forEach((off) => off())
      const these = [...arrived.values()].map((t) => t - start)
      latencies.push(...these)
      worst.push(Math.max(...these))
    }
    latencies.sort((a, b) => a - b)
    worst.sort((a, b) => a - b)
    report.add({
      id: 'one-at-a-time',
      what: `${NODES} nodes (degree ${NODES > 4 ? 4 : 2}), ${FRAMES} frames one at a time, ${latencies.length} deliveries: delivery p99`,
      value: percentile(latencies, 99),
      unit: 'ms',
      detail: { p50: percentile(latencies, 50), p90: percentile(latencies, 90), max: latencies.at(-1) ?? NaN, 'last node p50': percentile(worst, 50), 'last node p99': percentile(worst, 99) },
      baseline: 'verify-ms'
    })
    report.finish()
  } finally {
    await Promise.all(nodes.map((n) => n.stop()))
  }
}

await main()
