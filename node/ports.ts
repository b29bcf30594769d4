/**
 * Before a node creates anything (keys, store), checks that the TCP ports it is configured to
 * listen on are free, so a second node on one machine is told which option to change instead of
 * dying after it made its keys. A check, not a reservation: a port taken in between still fails
 * when libp2p or the API listens (with a message naming the same option).
 */
import { createServer } from 'node:net'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { RbqError } from '../protocol/index.js'
import { DATA_DIR_CONFIG_FILE, type NodeConfig } from './node-config.js'

/** The config file to edit: the one read, else the one the node would read from its data dir. */
export function configFileToEdit(config: Pick<NodeConfig, 'dataDir' | 'configFile'>): string {
  return config.configFile ?? join(config.dataDir, DATA_DIR_CONFIG_FILE)
}

/** Resolves when host:port can be bound now; else the errno code (EADDRINUSE, EADDRNOTAVAIL, EACCES…). */
export function probePort(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message))
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)))
  })
}

/** host and port of a `/ip4|ip6/<host>/tcp/<port>` listen address (config.ts checked the shape). */
function tcpEndpoint(addr: string): { host: string; port: number } | undefined {
  const [ip, tcp] = multiaddr(addr).getComponents()
  if (ip?.value === undefined || tcp?.name !== 'tcp' || tcp.value === undefined) return undefined
  return { host: ip.value, port: Number(tcp.value) }
}

export async function checkListenPorts(config: Pick<NodeConfig, 'dataDir' | 'configFile' | 'p2p' | 'api'>): Promise<void> {
  const file = configFileToEdit(config)
  for (const [i, addr] of config.p2p.listen.entries()) {
    const end = tcpEndpoint(addr)
    if (end === undefined || end.port === 0) continue
    const code = await probePort(end.host, end.port)
    if (code === 'EADDRINUSE') {
      throw new RbqError(
        'CONFIG_INVALID',
        `p2p address ${addr} is in use (another rbq node on this machine?): set [p2p] listen in ${file} to a free port, e.g. listen = ["${addr.replace(/\/tcp\/\d+/, `/tcp/${end.port + 2}`)}"]`,
        { field: `p2p.listen[${i}]` }
      )
    }
    if (code === 'EADDRNOTAVAIL') {
      throw new RbqError('CONFIG_INVALID', `p2p address ${addr}: ${end.host} is not an address of this machine: fix [p2p] listen in ${file}`, { field: `p2p.listen[${i}]` })
    }
  }
  // Unset, the API port falls back to a free one when 4778 is taken; a port set is used or fails.
  const { enabled, host, port } = config.api
  if (!enabled || port === undefined || port === 0) return
  if ((await probePort(host, port)) === 'EADDRINUSE') {
    throw new RbqError(
      'CONFIG_INVALID',
      `API port ${host}:${port} is in use (another rbq node on this machine?): set [api] port in ${file} to a free port, or remove it to use any free port`,
      { field: 'api.port' }
    )
  }
}
