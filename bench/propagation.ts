/**
 * Gossip propagation latency across 10 nodes on loopback, all in this process (so they share
 * the CPU: on 2 cores this measures our overhead more than the network's).
 *
 *   npm run build && node dist/bench/propagation.js [nodes=10] [frames=100]
 *
 * Topology: node i dials i+1 and i+3 (mod n): degree 4, diameter 3 for 10 nodes. Each frame is
 * submitted at a random node through its API path (pipeline source 'api': verified, stored,
 * then published); latency = submit → 'stored' at each other node. Frames go one at a time.
 */
import '../node/polyfills.js'
import { generateSigningKey, type SigningKey } from '../protocol/index.js'
import { TOPICS } from '../protocol/index.js'
import { benchAttestation, connect, percentile, startBenchNode, waitUntil, type BenchNode } from './network-lib.js'

const NODES = Number(process.argv[2] ?? 10)
const FRAMES = Number(process.argv[3] ?? 100)

async function main(): Promise<void> {
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
    const ms = (v: number) => `${v.toFixed(1)} ms`
    console.log(`propagation: ${NODES} nodes (degree ${NODES > 4 ? 4 : 2}), ${FRAMES} frames, ${latencies.length} deliveries`)
    console.log(`  per delivery   p50 ${ms(percentile(latencies, 50))}  p90 ${ms(percentile(latencies, 90))}  p99 ${ms(percentile(latencies, 99))}  max ${ms(latencies.at(-1) ?? NaN)}`)
    console.log(`  last node      p50 ${ms(percentile(worst, 50))}  p99 ${ms(percentile(worst, 99))}`)
  } finally {
    await Promise.all(nodes.map((n) => n.stop()))
  }
}

await main()
