/**
 * `rbq stats [--json] [--distribution NAME] [--suite NAME]`: statistics of the network from the
 * attestations the local node holds (GET /v1/stats; node/rebuild/rebuild-stats.ts defines each number).
 */
import type { Command } from 'commander'
import type { NetworkStats } from '../../protocol/api.js'
import { printJson } from '../exit.js'
import { withNode, type NodeOptions } from '../../client/node-session.js'
import { withNodeOptions } from '../options.js'

const pct = (n: number, of: number) => (of === 0 ? '' : ` (${((100 * n) / of).toFixed(1)}%)`)
const histogram = (h: readonly { parties: number; packages: number }[]) =>
  h.length === 0 ? 'none' : h.map((b) => `${b.packages} by ${b.parties} ${b.parties === 1 ? 'party' : 'parties'}`).join(', ')

export function formatStats(s: NetworkStats): string {
  const p = s.packages
  const row = (label: string, value: string) => `  ${label.padEnd(16)} ${value}\n`
  let out = `${s.distribution}${s.suite === null ? '' : ` ${s.suite}`}: ${s.scope}\n`
  out += row('rebuilt', `${p.rebuilt} source packages (${s.attestations} attestations read)`)
  out += row('reproduced', `${p.reproduced}${pct(p.reproduced, p.rebuilt)}`)
  out += row('unreproducible', `${p.unreproducible}${pct(p.unreproducible, p.rebuilt)}`)
  out += row('disputed', `${p.disputed}${pct(p.disputed, p.rebuilt)}  (some keys reproduced, others got other bytes)`)
  out += row('failed', `${p.failed}${pct(p.failed, p.rebuilt)}`)
  if (p.built > 0) out += row('built', `${p.built}  (nothing to compare with)`)
  out += row('signer keys', `${s.parties.keys}; packages: ${histogram(s.parties.byCount)}`)
  out += row('policy parties', s.trustedParties === null ? `not counted (${s.policyError ?? 'no usable policy'})` : histogram(s.trustedParties.byCount))
  const u = s.unreproducible
  if (p.unreproducible + p.disputed > 0) {
    out += row('other bytes', `${u.current} in today's environment, ${u.faithful} in the official build environment (faithful)`)
    out += row('causes', u.causes.length === 0 ? 'none tagged' : u.causes.map((c) => `${c.tag} ${c.packages}`).join(', '))
    if (u.untagged > 0) out += row('', `${u.untagged} without a cause tag`)
  }
  if (s.versionsSkipped > 0) out += row('not counted', `${s.versionsSkipped} older or out-of-suite versions`)
  return out
}

export function registerStats(program: Command): void {
  withNodeOptions(
    program
      .command('stats')
      .description('statistics of the network from the attestations the node holds: source packages rebuilt, by how many parties, reproduced, unreproducible (by cause tag), failed')
  )
    .option('--distribution <name>', 'purl namespace of the Debian-like distribution', 'debian')
    .option('--suite <name>', 'only versions this suite lists (with its -updates/-security), e.g. bookworm')
    .option('--json', 'print the statistics as JSON')
    .action(async (opts: NodeOptions & { json?: boolean; distribution: string; suite?: string }) => {
      const stats = await withNode(opts, (c) => c.stats({ distribution: opts.distribution, ...(opts.suite === undefined ? {} : { suite: opts.suite }) }))
      if (opts.json) printJson(stats)
      else process.stdout.write(formatStats(stats))
    })
}
