/**
 * `rbq doctor`: which builders can run on this machine, and what to install for the others.
 * Changes nothing. Exit 0 when every builder is ready, 1 otherwise.
 */
import type { Command } from 'commander'
import { debianDoctor, type DoctorCheck } from '../../node/rebuild/debian/debian-doctor.js'
import { recipeDoctor } from '../../node/rebuild/recipe/recipe-doctor.js'
import { CliExit, EXIT_NEGATIVE, printJson } from '../exit.js'

export interface BuilderReport {
  backend: string
  ready: boolean
  checks: DoctorCheck[]
  install: string[]
  suggest: string[]
}

export function formatBuilderReport(r: BuilderReport): string {
  const lines = [`${r.backend} builder: ${r.ready ? 'ready' : 'NOT ready'}`]
  for (const c of r.checks) lines.push(`  ${c.ok ? 'ok  ' : c.required ? 'FAIL' : 'warn'} ${c.name}: ${c.detail}`)
  if (r.install.length > 0) lines.push(`  to fix: apt-get install ${r.install.join(' ')}`)
  if (r.suggest.length > 0) lines.push(`  optional: apt-get install --no-install-recommends ${r.suggest.join(' ')}`)
  return lines.join('\n') + '\n'
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check which builders (debian, recipe) can run on this machine and what to install for the others')
    .option('--json', 'print the reports as JSON')
    .action(async (opts: { json?: boolean }) => {
      const reports: BuilderReport[] = [await debianDoctor(), await recipeDoctor()]
      if (opts.json === true) printJson({ ready: reports.every((r) => r.ready), builders: reports })
      else process.stdout.write(reports.map(formatBuilderReport).join('\n'))
      if (!reports.every((r) => r.ready)) throw new CliExit(EXIT_NEGATIVE)
    })
}
