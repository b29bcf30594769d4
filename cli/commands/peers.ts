/** `rbq peers`: the libp2p peers the local node is connected to. */
import type { Command } from 'commander'
import { printJson } from '../exit.js'
import { withNode, type NodeOptions } from '../../client/node-session.js'
import { withNodeOptions } from '../options.js'

export function registerPeers(program: Command): void {
  withNodeOptions(program.command('peers').description('list the peers the local node is connected to'))
    .option('--json', 'print the peers as JSON')
    .action(async (opts: NodeOptions & { json?: boolean }) => {
      const peers = await withNode(opts, (c) => c.peers())
      if (opts.json) return printJson({ peers })
      if (peers.length === 0) {
        process.stdout.write('no peers connected (add bootstrap peers to the node config, or enable mdns on a LAN)\n')
        return
      }
      for (const p of peers) {
        const since = p.openedAt === null ? '' : ` since ${p.openedAt}`
        process.stdout.write(`${p.peerId}  ${p.direction.padEnd(8)} ${p.addrs.join(' ')}${since}\n`)
      }
    })
}
