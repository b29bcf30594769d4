/**
 * `rbq rebuild-request PURL`: asks the running node to rebuild a package now (ahead of its
 * feeds, without sampling), through the API. The attestation follows when the build is done;
 * `rbq watch --frames` or `rbq status` shows it. `--network`: the node asks every node instead,
 * with a request signed by its key on gossip (SPEC.md §10); nodes whose feed follows the package
 * rebuild it after their new uploads.
 */
import type { Command } from 'commander'
import { printJson } from '../exit.js'
import { parsePurlOption } from '../options.js'
import { withNode, type NodeOptions } from '../../client/node-session.js'
import { withNodeOptions } from '../options.js'

export function registerRebuildRequest(program: Command): void {
  withNodeOptions(
    program
      .command('rebuild-request')
      .description('ask the running node to rebuild a package now (a Debian source purl, or a purl of its recipe directory)')
      .argument('<purl>', 'e.g. pkg:deb/debian/hello@2.10-3?arch=source', parsePurlOption)
  )
    .option('--network', 'ask the network (every node whose feed follows the package), not only this node')
    .option('--json', 'print the answer as JSON')
    .action(async (purl: string, opts: NodeOptions & { json?: boolean; network?: boolean }) => {
      const answer = await withNode(opts, (c) => c.requestRebuild(purl, { network: opts.network === true }))
      if (opts.json) return printJson(answer)
      process.stdout.write(`${answer.purl}: ${answer.status}${answer.detail === undefined ? '' : ` (${answer.detail})`}\n`)
    })
}
