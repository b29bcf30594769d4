/**
 * `rbq health`: how much of this system is reproduced under your policy. Reads dpkg's status,
 * finds each installed package's .deb digest (apt's cache, else the Packages indexes apt
 * verified), asks the node once for all of them, and prints the score and every package that
 * is not reproduced (like debian-repro-status, judged by your own trust roots).
 * Exit 0 when the report was made (whatever the score); 2 on usage/IO errors or no node.
 */
import type { Command } from 'commander'
import { RbqError } from '../../protocol/errors.js'
import { printJson } from '../exit.js'
import { withNode, type NodeOptions } from '../../client/node-session.js'
import { withNodeOptions } from '../options.js'

interface HealthCliOptions extends NodeOptions {
  json?: boolean
  all?: boolean
  statusFile?: string
  archives?: string
  lists?: string
  policy?: string
  watch?: boolean
  quiet?: boolean
}

export function registerHealth(program: Command): void {
  withNodeOptions(
    program
      .command('health')
      .description('score this system: the share of installed packages whose exact .deb is reproduced under your policy')
      .option('--json', 'print the full report as JSON')
      .option('--all', 'list reproduced packages too')
      .option('--policy <file>', 'judge with this policy file instead of the node\'s')
      .option('--watch', 'also ask the node to watch these files, so `rbq watch` reports verdict changes (needs the API token)')
      .option('--status-file <file>', 'dpkg status file (default /var/lib/dpkg/status)')
      .option('--archives <dir>', 'apt archive cache (default /var/cache/apt/archives)')
      .option('--lists <dir>', 'apt lists with the Packages indexes (default /var/lib/apt/lists)')
      .option('-q, --quiet', 'no progress on stderr')
  ).action(async (opts: HealthCliOptions) => {
    const [{ systemHealth, formatHealth }, { readFileBounded }, { API_MAX_POLICY_BYTES }, { parsePolicy }] = await Promise.all([
      import('../../client/health/system-health.js'),
      import('../../common/files.js'),
      import('../../protocol/api.js'),
      import('../../node/consensus/index.js')
    ])
    const policy = opts.policy === undefined ? undefined : Buffer.from(await readFileBounded(opts.policy, API_MAX_POLICY_BYTES, 'policy file')).toString('utf8')
    if (policy !== undefined) parsePolicy(policy, opts.policy) // a broken or empty policy fails now, naming its line
    const progress = opts.quiet === true || opts.json === true ? undefined : (m: string) => process.stderr.write(`rbq: ${m}\n`)
    await withNode(opts, async (client) => {
      // Fail fast, before minutes of hashing: no node running, or a node policy that judges nothing.
      const status = await client.status()
      if (policy === undefined && !status.policy.loaded) {
        throw new RbqError('POLICY_INVALID', `the node's policy ${status.policy.file} is not usable: ${status.policy.error ?? 'not loaded'} (add a trusted party: rbq trust add NAME ed25519:…)`)
      }
      const report = await systemHealth((queries) => client.verdicts(queries, { evidence: 'brief', ...(policy === undefined ? {} : { policy }) }), {
        ...(opts.statusFile === undefined ? {} : { statusFile: opts.statusFile }),
        ...(opts.archives === undefined ? {} : { archivesDir: opts.archives }),
        ...(opts.lists === undefined ? {} : { listsDir: opts.lists }),
        ...(progress === undefined ? {} : { onProgress: progress })
      })
      if (opts.watch === true) {
        const items = report.packages.filter((p) => p.sha256 !== null).map((p) => ({ package: p.purl, artifact: p.artifact, sha256: p.sha256 as string }))
        await client.watch(items, { replace: true })
        progress?.(`the node now watches ${items.length} installed files`)
      }
      if (opts.json === true) printJson(report)
      else process.stdout.write(formatHealth(report, { all: opts.all === true }))
    })
  })
}
