/**
 * Exit codes (documented in README.md):
 *   0  success; `inspect`: frame valid; `verify`/`verdict`: reproduced
 *   1  a negative answer: frame invalid, verdict other than reproduced (and unreproducible)
 *   2  usage or input/IO error (bad flags, missing file, node not running)
 *   3  `verify`/`verdict`: unreproducible (the archive published this file; rebuilds with
 *      today's toolchain differ; not a sign of tampering)
 */
import { RbqError, type ErrorCode } from '../protocol/index.js'

export const EXIT_OK = 0
export const EXIT_NEGATIVE = 1
export const EXIT_USAGE = 2
export const EXIT_UNREPRODUCIBLE = 3

/** Exit code of a verdict (`verify`, `verdict`): 0 reproduced, 3 unreproducible, 1 any other. */
export function verdictExitCode(status: string): number {
  return status === 'reproduced' ? EXIT_OK : status === 'unreproducible' ? EXIT_UNREPRODUCIBLE : EXIT_NEGATIVE
}

/**
 * Thrown by commands to end with a given code after printing `message` to stderr. `code` names
 * the failure in `--json` errors (default USAGE for exit 2, FAILED otherwise).
 */
export class CliExit extends Error {
  constructor(
    readonly exitCode: number,
    message = '',
    readonly code?: ErrorCode
  ) {
    super(message)
  }
}

/**
 * How errors are printed: `text`, one line on stderr; `json` (the verb was given --json), one
 * JSON object `{"error":{"code","message"[,"field"]}}` on stdout, where the verb's JSON output
 * goes, so a script reads one stream and one shape (the API's error body). When the verb already
 * printed its JSON answer (printJson) before failing, that answer stays the one document on
 * stdout and the error goes to stderr as text. The exit code is the same either way.
 * Codes are RbqError codes, plus FAILED for a negative answer a verb explains in `message`.
 */
export type ErrorFormat = 'text' | 'json'

/** The `--json` form of an error, or undefined when there is nothing to say. */
export function errorJson(e: unknown, env: NodeJS.ProcessEnv = process.env): { error: { code: string; message: string; field?: string } } | undefined {
  if (e instanceof CliExit) {
    if (!e.message) return undefined
    const code = e.code ?? (e.exitCode === EXIT_USAGE ? 'USAGE' : 'FAILED')
    return { error: { code, message: e.message.replace(/^rbq: /, '').replace(` [${code}]`, '') } }
  }
  if (e instanceof RbqError) return { error: e.toJSON() }
  const text = unexpectedErrorText(e, env).replace(/^rbq: unexpected error: /, '').replace(/ \[INTERNAL\].*$/s, '').trimEnd()
  return { error: { code: 'INTERNAL', message: text } }
}

export function printError(e: unknown, format: ErrorFormat = 'text'): number {
  if (format === 'json' && !answeredWithJson) {
    const body = errorJson(e)
    if (body !== undefined) process.stdout.write(JSON.stringify(body) + '\n')
    return e instanceof CliExit ? e.exitCode : EXIT_USAGE
  }
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

/** Set once a verb printed its JSON answer: a later error must not add a second document. */
let answeredWithJson = false

/** Writes JSON to stdout in one piece (stable 2-space form). */
export function printJson(value: unknown): void {
  answeredWithJson = true
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}
