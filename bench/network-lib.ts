/** Shared by the network benches: real nodes on loopback in this process, signed frames. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { openFrame, parseFrame, type SigningKey, type VerifiedFrame } from '../protocol/index.js'
import { benchFrameBytes } from './verify-lib.js'
import { configFromToml } from '../node/node-config.js'
import { createLogger } from '../common/logger.js'
import { Metrics } from '../node/metrics.js'
import { RbqNode } from '../node/node.js'

export interface BenchNode {
  node: RbqNode
  dir: string
  stop: () => Promise<void>
}

/**
 * A node on 127.0.0.1 with a temp data dir (or `dir`), silent unless `log.level` is given,
 * periodic sync off unless asked, no HTTP API, no rebuilds (their feeds read the Debian archive:
 * not what these benches measure).
 */
export async function startBenchNode(toml: Record<string, Record<string, unknown>> = {}, dir?: string): Promise<BenchNode> {
  const dataDir = dir ?? (await mkdtemp(join(tmpdir(), 'rbq-bench-')))
  const base: Record<string, Record<string, unknown>> = { log: { level: 'silent' }, p2p: { listen: ['/ip4/127.0.0.1/tcp/0'] }, sync: { interval_seconds: 3600 }, api: { enabled: false }, rebuild: { enabled: false } }
  for (const [k, v] of Object.entries(toml)) base[k] = { ...base[k], ...v }
  const config = configFromToml({ toml: base, dataDir })
  const node = await RbqNode.start({ config, logger: createLogger({ level: config.log.level }), metrics: new Metrics() })
  return {
    node,
    dir: dataDir,
    stop: async () => {
      await node.stop()
      if (dir === undefined) await rm(dataDir, { recursive: true, force: true })
    }
  }
}

export async function connect(a: RbqNode, b: RbqNode): Promise<void> {
  await a.libp2p.dial(multiaddr(b.addresses[0] as string))
}

export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/**
 * A signed attestation (verify-lib's frame, without a material). Opened without re-verifying (we
 * just signed it), which halves the cost of making 100k of them; the receiving node verifies
 * everything as usual.
 */
export function benchAttestation(key: SigningKey, seq: number, n: number): VerifiedFrame {
  return openFrame(parseFrame(benchFrameBytes(key, seq, n, { material: false })))
}

export { percentile } from './report.js'
