/**
 * Real nodes on loopback for network tests: temp data dirs, 127.0.0.1 ephemeral ports, quiet
 * logs (RBQ_TEST_LOG=debug to see them), and polling with a deadline instead of sleeps.
 */
import { decodeFrame, type RebuildStatement } from '../../protocol/index.js'
import { configFromToml, type NodeConfig } from '../../node/node-config.js'
import { createLogger, type LogLevel } from '../../common/logger.js'
import { Metrics } from '../../node/metrics.js'
import { RbqNode } from '../../node/node.js'
import { makeTempDir } from './tmp.js'

export interface TestNodeOptions {
  /** TOML sections merged over the test defaults, e.g. `{ sync: { interval_seconds: 1 } }`. */
  toml?: Record<string, Record<string, unknown>>
  /** Reuse a data dir (restart tests); default a fresh temp dir removed by `cleanup`. */
  dataDir?: string
}

export interface TestNode {
  node: RbqNode
  dataDir: string
  /** Stops the node (idempotent) and removes its temp dir unless it was given. */
  cleanup: () => Promise<void>
}

/** Test defaults: loopback only, one decode worker, no periodic sync unless asked for, no HTTP API unless [api] is given. */
export function testToml(overrides: TestNodeOptions['toml'] = {}): Record<string, Record<string, unknown>> {
  const base: Record<string, Record<string, unknown>> = {
    log: { level: (process.env.RBQ_TEST_LOG ?? 'silent') as LogLevel },
    p2p: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    sync: { interval_seconds: 3600, timeout_seconds: 10 },
    ingest: { workers: 1 },
    // Network tests run without the HTTP API; a caller configuring [api] gets it.
    api: overrides.api === undefined ? { enabled: false } : {},
    // Likewise the rebuild pipeline: on only for tests that configure [rebuild].
    rebuild: overrides.rebuild === undefined ? { enabled: false } : {}
  }
  for (const [section, values] of Object.entries(overrides)) base[section] = { ...base[section], ...values }
  return base
}

export function testConfig(dataDir: string, toml?: TestNodeOptions['toml']): NodeConfig {
  return configFromToml({ toml: testToml(toml), dataDir })
}

export async function startTestNode(options: TestNodeOptions = {}): Promise<TestNode> {
  const temp = options.dataDir === undefined ? await makeTempDir('rbq-net-') : undefined
  const dataDir = options.dataDir ?? (temp as { dir: string }).dir
  const config = testConfig(dataDir, options.toml)
  let node: RbqNode
  try {
    node = await RbqNode.start({ config, logger: createLogger({ level: config.log.level }), metrics: new Metrics() })
  } catch (e) {
    await temp?.cleanup()
    throw e
  }
  return {
    node,
    dataDir,
    cleanup: async () => {
      await node.stop()
      await temp?.cleanup()
    }
  }
}

/** Dials b from a and waits until both see the connection. */
export async function connect(a: RbqNode, b: RbqNode): Promise<void> {
  const addr = b.addresses[0]
  if (addr === undefined) throw new Error('node has no listen address')
  await a.libp2p.dial((await import('@multiformats/multiaddr')).multiaddr(addr))
  await waitFor(() => b.libp2p.getConnections(a.peerId).length > 0, { what: 'connection' })
}

/** Waits until every node sees each of its neighbours subscribed to `topic`. */
export async function waitForSubscribers(pairs: [RbqNode, RbqNode][], topic: string): Promise<void> {
  await waitFor(
    () =>
      pairs.every(([a, b]) => {
        const subs = (n: RbqNode) => n.libp2p.services.pubsub.getSubscribers(topic).map(String)
        return subs(a).includes(b.peerId.toString()) && subs(b).includes(a.peerId.toString())
      }),
    { what: `subscriptions to ${topic}` }
  )
}

/** Polls `check` until it returns true (or a value other than false/undefined), or throws at the deadline. */
export async function waitFor<T>(check: () => T | Promise<T>, options: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<Exclude<T, false | undefined>> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000)
  for (;;) {
    const value = await check()
    if (value !== false && value !== undefined) return value as Exclude<T, false | undefined>
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${options.what ?? 'condition'}`)
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 50))
  }
}

/** Value of one counter series in a node's registry (0 when never incremented). */
export async function counterValue(node: RbqNode, name: string, labels: Record<string, string>): Promise<number> {
  const metric = node.metrics.registry.getSingleMetric(name)
  if (metric === undefined) return 0
  const { values } = await metric.get()
  return values.filter((v) => Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l)).reduce((n, v) => n + v.value, 0)
}

/** Every rebuild statement a node stores from `keyid` (seq 1..1000), by package: the highest seq wins. */
export async function statementsOf(node: RbqNode, keyid: string): Promise<Map<string, RebuildStatement>> {
  const out = new Map<string, RebuildStatement>()
  for (const bytes of await node.store.attestationsInRange(keyid, 1, 1000, 1000)) {
    const f = decodeFrame(bytes)
    if (f.kind === 'attestation') out.set(f.statement.predicate.package, f.statement)
  }
  return out
}
