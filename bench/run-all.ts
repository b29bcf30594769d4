/**
 * `npm run bench`: runs every benchmark in sequence, each in its own process (they measure
 * CPU-bound work and must not share a process or overlap). Figures are printed by each bench,
 * and written as JSON to bench-results/<bench>.json. Flags given here (`--quick`, `--no-json`)
 * are passed to every bench; `store-1m` (1M frames: many minutes) runs last.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const BENCHES = ['ingest', 'verdict', 'propagation', 'catchup', 'api-verdict', 'rebuild-overhead', 'store-1m']
/** Benches whose arguments are positional numbers only (no report flags). */
const POSITIONAL_ONLY = new Set(['rebuild-overhead'])
const passed = process.argv.slice(2)

let failed = 0
for (const name of BENCHES) {
  process.stdout.write(`\n=== bench/${name}\n`)
  const script = fileURLToPath(new URL(`./${name}.js`, import.meta.url))
  const r = spawnSync(process.execPath, [script, ...(POSITIONAL_ONLY.has(name) ? [] : passed)], { stdio: 'inherit' })
  if (r.status !== 0) {
    failed++
    process.stdout.write(`bench/${name} exited with ${r.status ?? r.signal}\n`)
  }
}
process.exitCode = failed === 0 ? 0 : 1
