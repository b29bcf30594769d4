/**
 * Shared by the benches: command-line flags, rows printed with the baseline measured in the same
 * run and the ratio to it, and the same rows written as JSON so two commits can be compared
 * (`node dist/bench/compare.js old.json new.json`).
 *
 * Flags every bench accepts (positional arguments stay the bench's own):
 *   --quick         smaller sizes and fewer samples: a smoke run in seconds, figures indicative only
 *   --json FILE     where the JSON goes (default bench-results/<bench>.json under the current directory)
 *   --no-json       print only
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface BenchFlags {
  quick: boolean
  /** undefined: no JSON. */
  json: string | undefined
  /** Arguments that are not flags, in order. */
  positional: string[]
  /** `--name value` options other than the above. */
  options: Map<string, string>
}

/** Parses argv (after the script); `--name=value` and `--name value` both work. */
export function benchFlags(bench: string, argv: readonly string[] = process.argv.slice(2)): BenchFlags {
  const positional: string[] = []
  const options = new Map<string, string>()
  let quick = false
  let json: string | undefined = join('bench-results', `${bench}.json`)
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (!a.startsWith('--')) {
      positional.push(a)
      continue
    }
    const eq = a.indexOf('=')
    const name = eq < 0 ? a.slice(2) : a.slice(2, eq)
    if (name === 'quick') quick = true
    else if (name === 'no-json') json = undefined
    else {
      const value = eq >= 0 ? a.slice(eq + 1) : argv[++i]
      if (value === undefined) throw new Error(`${a}: expected a value`)
      if (name === 'json') json = value
      else options.set(name, value)
    }
  }
  return { quick, json, positional, options }
}

/** A number from a `--name` option or a positional argument, else the default (quick or full). */
export function numberArg(flags: BenchFlags, name: string, position: number, full: number, quick: number = full): number {
  const text = flags.options.get(name) ?? flags.positional[position]
  if (text === undefined) return flags.quick ? quick : full
  const n = Number(text)
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}: expected a number, got ${JSON.stringify(text)}`)
  return n
}

export interface BenchRow {
  /** Short stable id: the key two JSON files are compared by. */
  id: string
  /** What is measured, for humans. */
  what: string
  value: number
  unit: string
  /** More figures of the row (p50, p99, …), printed after the value. */
  detail?: Record<string, number>
  /** The baseline of the same run and value / baseline. */
  baseline?: { id: string; value: number }
  ratio?: number
  /** The goal, for humans (e.g. "p99 ≤ 1 ms"), and whether this run met it. */
  goal?: string
  met?: boolean
}

const fmtNumber = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(3))

export class BenchReport {
  readonly rows: BenchRow[] = []
  private readonly started = new Date()

  constructor(
    readonly bench: string,
    readonly flags: BenchFlags,
    /** Sizes and settings of this run (written to the JSON). */
    readonly settings: Record<string, unknown> = {}
  ) {}

  /** Adds a row; with `baseline` (a row already added) the ratio value / baseline is computed. */
  add(row: Omit<BenchRow, 'ratio' | 'baseline'> & { baseline?: string }): BenchRow {
    const { baseline, ...rest } = row
    const out: BenchRow = { ...rest }
    if (baseline !== undefined) {
      const b = this.rows.find((r) => r.id === baseline)
      if (b === undefined) throw new Error(`baseline ${baseline}: no such row`)
      out.baseline = { id: b.id, value: b.value }
      out.ratio = b.value === 0 ? NaN : row.value / b.value
    }
    this.rows.push(out)
    return out
  }

  /** Prints the table and writes the JSON (unless --no-json). */
  finish(): void {
    const lines = this.rows.map((r) => {
      const detail = r.detail === undefined ? '' : '  ' + Object.entries(r.detail).map(([k, v]) => `${k} ${fmtNumber(v)}`).join('  ')
      const ratio = r.ratio === undefined ? '' : `  = ${r.ratio.toFixed(2)}× ${r.baseline!.id}`
      const goal = r.goal === undefined ? '' : `  goal ${r.goal}: ${r.met === true ? 'met' : 'MISSED'}`
      return [r.id, r.what, `${fmtNumber(r.value)} ${r.unit}${detail}${ratio}${goal}`]
    })
    const w0 = Math.max(...lines.map((l) => l[0]!.length))
    const w1 = Math.max(...lines.map((l) => l[1]!.length))
    process.stdout.write(`bench/${this.bench}${this.flags.quick ? ' (--quick: indicative only)' : ''} — node ${process.version}, ${this.started.toISOString()}\n`)
    for (const l of lines) process.stdout.write(`${l[0]!.padEnd(w0)}  ${l[1]!.padEnd(w1)}  ${l[2]}\n`)
    if (this.flags.json === undefined) return
    const doc = {
      bench: this.bench,
      commit: gitCommit(),
      node: process.version,
      date: this.started.toISOString(),
      quick: this.flags.quick,
      settings: this.settings,
      rows: this.rows
    }
    mkdirSync(dirname(this.flags.json), { recursive: true })
    writeFileSync(this.flags.json, JSON.stringify(doc, null, 2) + '\n')
    process.stdout.write(`(written to ${this.flags.json})\n`)
  }
}

function gitCommit(): string | null {
  try {
    // The checkout the bench was built from, wherever it is run.
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: dirname(fileURLToPath(import.meta.url)), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return null
  }
}

/** Nearest-rank percentile of ascending values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}
