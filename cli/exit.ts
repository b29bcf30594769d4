/**
 * Exit codes (documented in README.md):
 *   0  success; `inspect`: frame valid; `verify`/`verdict`: reproduced
 *   1  a negative answer: frame invalid, verdict other than reproduced (and unreproducible)
 *   2  usage or input/IO error (bad flags, missing file, node not running)
 *   3  `verify`/`verdict`: unreproducible (the archive published this file; rebuilds with
 *      today's toolchain differ; not a sign of tampering)
 */
import { RbqError } from '../protocol/index.js'

export const EXIT_OK = 0
export const EXIT_NEGATIVE = 1
export const EXIT_USAGE = 2
export const EXIT_UNREPRODUCIBLE = 3

/** Exit code of a verdict (`verify`, `verdict`): 0 reproduced, 3 unreproducible, 1 any other. */
export function verdictExitCode(status: string): number {
  return status === 'reproduced' ? EXIT_OK : status === 'unreproducible' ? EXIT_UNREPRODUCIBLE : EXIT_NEGATIVE
}

/** Thrown by commands to end with a given code after printing `message` to stderr. */
export class CliExit extends Error {
  constructor(
    readonly exitCode: number,
    message = ''
  ) {
    super(message)
  }
}

export function printError(e: unknown): number {
  if (e instanceof CliExit) {
    if (e.message) process.stderr.write(`${e.message}\n`)
    return e.exitCode
  }
  if (e instanceof RbqError) {
    process.stderr.write(`rbq: ${e.message} [${e.code}]\n`)
    return EXIT_USAGE
  }
  process.stderr.write(unexpectedErrorText(e, process.env))
  return EXIT_USAGE
}

/**
 * A bug or an unforeseen failure: one line for the user; the stack trace only with RBQ_DEBUG=1
 * (documented in README.md), for a bug report.
 */
export function unexpectedErrorText(e: unknown, env: NodeJS.ProcessEnv): string {
  if (env.RBQ_DEBUG === '1') return `rbq: unexpected error: ${(e as Error)?.stack ?? String(e)}\n`
  const message = e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e)
  const firstLine = message.split('\n').find((l) => l.trim() !== '') ?? 'unknown error'
  return `rbq: unexpected error: ${firstLine.slice(0, 500)} [INTERNAL] (RBQ_DEBUG=1 shows the stack trace)\n`
}

/** Writes JSON to stdout in one piece (stable 2-space form). */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}
