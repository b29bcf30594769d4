/**
 * `rbq db check [--repair] [--data DIR] [--config FILE] [--json]`: checks a STOPPED node's store
 * offline (node/db/check.ts): every frame's id and full decoding, every index entry against its
 * frame and every frame against its index entries, the counters. Refuses while a node holds the
 * store. Exit 0: clean (with --repair: clean after repairing); 1: problems found (and, with
 * --repair, some remain); 2: usage, or the store cannot be opened (a running node, no store).
 */
import type { Command } from 'commander'
import type { CheckReport } from '../../node/db/check.js'
import { loadConfig } from '../../node/node-config.js'
import { dataDirLayout } from '../../common/data-dir.js'
import { CliExit, EXIT_NEGATIVE, EXIT_OK, printJson } from '../exit.js'
import { dataDirHelp } from '../options.js'

interface DbCheckOptions {
  repair?: boolean
  data?: string
  config?: string
  json?: boolean
}

export function registerDb(program: Command): void {
  const db = program.command('db').description("the node's store, offline (stop the node first)")
  db.command('check')
    .description("verify every stored frame (id, decoding, signature), every index entry and counter of a stopped node's store")
    .option('--repair', 'rebuild index entries and counters from the frames, and drop frames that fail the check')
    .option('--data <dir>', dataDirHelp('data directory'))
    .option('--config <file>', 'TOML config file naming data_dir (default: <data dir>/config.toml when present)')
    .option('--json', 'print the report as JSON')
    .action(async (opts: DbCheckOptions) => {
      const config = await loadConfig({ ...(opts.config === undefined ? {} : { file: opts.config }), ...(opts.data === undefined ? {} : { dataDir: opts.data }) })
      const { checkStore } = await import('../../node/db/check.js')
      const dir = dataDirLayout(config.dataDir).db
      const report = await checkStore(dir, { repair: opts.repair === true })
      const clean = report.problems.length === 0
      if (opts.json === true) printJson({ store: dir, clean, ...report })
      else {
        let out = `store ${dir}: ${report.frames} frames, ${report.indexEntries} index entries\n`
        if (report.found !== undefined) {
          out += `found ${describe(report.found.counts)}\n${listed(report.found)}repair: ${report.repaired ?? 0} operations applied in one batch; checked again:\n`
        }
        out += listed(report)
        out += clean ? 'clean\n' : `${describe(report.counts)}${report.repaired === undefined ? '; `rbq db check --repair` rebuilds indexes and counters from the frames' : ' remain after repair'}\n`
        process.stdout.write(out)
      }
      if (!clean) throw new CliExit(EXIT_NEGATIVE)
      process.exitCode = EXIT_OK
    })
}

function problemCount(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0)
}

function describe(counts: Record<string, number>): string {
  const total = problemCount(counts)
  return total === 0 ? 'no problems' : `${total} problems (${Object.entries(counts).map(([k, n]) => `${k} ${n}`).join(', ')})`
}

function listed(report: CheckReport): string {
  let out = ''
  for (const p of report.problems) out += `  ${p.kind}: ${p.message}\n`
  const total = problemCount(report.counts)
  if (total > report.problems.length) out += `  … ${total - report.problems.length} more\n`
  return out
}
