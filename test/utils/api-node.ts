/**
 * A real node for client-surface e2e tests (apt gate, health, import): node/node.ts with its
 * store, ingest pipeline, network and HTTP API on ephemeral 127.0.0.1 ports, in a given data dir
 * (where the API writes api.url and api.token, so `rbq --data DIR` finds it).
 */
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import type { RbqNode } from '../../node/node.js'
import { startTestNode } from './network.js'

export interface ApiNode {
  node: RbqNode
  url: string
  stop: () => Promise<void>
}

export async function startApiNode(dataDir: string): Promise<ApiNode> {
  const { node, cleanup } = await startTestNode({ dataDir, toml: { api: { port: 0 } } })
  const url = (await readFile(join(dataDir, 'api.url'), 'utf8')).trim()
  return { node, url, stop: cleanup }
}

/** A loopback URL where nothing listens (a port just released by the OS). */
export async function closedPortUrl(): Promise<string> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return `http://127.0.0.1:${port}`
}
