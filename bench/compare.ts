/**
 * Compares two JSON results of one bench (bench/report.ts), e.g. before and after a commit:
 *
 *   node dist/bench/compare.js bench-results/verdict.old.json bench-results/verdict.json
 *
 * Prints each row present in both with the two values and new / old (for times, < 1 is faster),
 * and the ratios to the baseline of each run (which is what to compare across machines or loads).
 */
import { readFileSync } from 'node:fs'
import type { BenchRow } from './report.js'

interface Doc {
  bench: string
  commit: string | null
  date: string
  quick: boolean
  rows: BenchRow[]
}

const [a, b] = process.argv.slice(2)
if (a === undefined || b === undefined) {
  process.stderr.write('usage: node dist/bench/compare.js OLD.json NEW.json\n')
  process.exit(2)
}
const read = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Doc
const old = read(a)
const now = read(b)
const short = (c: string | null) => (c === null ? '?' : c.slice(0, 10))
process.stdout.write(`bench/${now.bench}: ${short(old.commit)} (${old.date}${old.quick ? ', quick' : ''}) → ${short(now.commit)} (${now.date}${now.quick ? ', quick' : ''})\n`)
const fmt = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '—' : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(3))
for (const r of now.rows) {
  const o = old.rows.find((x) => x.id === r.id)
  if (o === undefined) {
    process.stdout.write(`${r.id.padEnd(28)} new row: ${fmt(r.value)} ${r.unit}\n`)
    continue
  }
  const ratio = r.ratio === undefined ? '' : `   vs baseline ${fmt(o.ratio)}× → ${fmt(r.ratio)}×`
  process.stdout.write(`${r.id.padEnd(28)} ${fmt(o.value)} → ${fmt(r.value)} ${r.unit}  (${(r.value / o.value).toFixed(2)}×)${ratio}\n`)
}
