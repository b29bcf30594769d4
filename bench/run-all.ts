/**
 * `npm run bench`: runs every benchmark in sequence, each in its own process (they measure
 * CPU-bound work and must not share a process or overlap). Figures are printed by each bench.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const BENCHES = ['ingest', 'verdict', 'propagation', 'catchup', 'api-verdict', 'rebuild-overhead']

let failed = 0
for (const name of BENCHES) {
  process.stdout.write(`\n=== bench/${name}\n`)
  const script = fileURLToPath(new URL(`./${name}.js`, import.meta.url))
  const r = spawnSync(process.execPath, [script], { stdio: 'inherit' })
  if (r.status !== 0) {
    failed++
    process.stdout.write(`bench/${name} exited with ${r.status ?? r.signal}\n`)
  }
}
process.exitCode = failed === 0 ? 0 : 1
