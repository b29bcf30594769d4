/**
 * Structured logs (pino) on stderr; stdout stays free for command output. JSON lines for
 * journald and log shippers; on a terminal (format "auto") one readable line per record,
 * formatted here from pino's JSON (no pretty-printer dependency).
 * Components log through children: `logger.child({ component: 'p2p' })`.
 */
import { writeSync } from 'node:fs'
import { pino, type DestinationStream, type Logger } from 'pino'

export type { Logger }

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export const LOG_FORMATS = ['auto', 'json', 'text'] as const
/** `auto`: text when stderr is a terminal, else JSON lines. */
export type LogFormat = (typeof LOG_FORMATS)[number]

export interface LoggerInit {
  level?: LogLevel
  format?: LogFormat
  /** Defaults to stderr, written synchronously so nothing is lost on exit. */
  destination?: DestinationStream
}

export function createLogger(init: LoggerInit = {}): Logger {
  return pino(
    {
      level: init.level ?? 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) }
    },
    init.destination ?? (useText(init.format) ? textDestination((line) => writeSync(2, line)) : pino.destination({ dest: 2, sync: true }))
  )
}

function useText(format: LogFormat = 'auto'): boolean {
  return format === 'text' || (format === 'auto' && process.stderr.isTTY === true)
}

const HIDDEN = new Set(['level', 'time', 'pid', 'msg', 'component'])

/**
 * One JSON log record as a line a person reads: `12:03:04.511 INFO  p2p: connected peer=…`.
 * Fields that are not the message follow as key=value (strings with spaces quoted).
 */
export function formatLogLine(json: string): string {
  let r: Record<string, unknown>
  try {
    r = JSON.parse(json) as Record<string, unknown>
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`
  }
  const time = typeof r.time === 'string' ? r.time.slice(11, 23) : ''
  const level = String(r.level ?? '').toUpperCase().padEnd(5)
  const component = typeof r.component === 'string' ? `${r.component}: ` : ''
  const fields = Object.entries(r)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? (/[\s"=]/.test(v) || v === '' ? JSON.stringify(v) : v) : JSON.stringify(v)}`)
  return `${time} ${level} ${component}${String(r.msg ?? '')}${fields.length > 0 ? `  ${fields.join(' ')}` : ''}\n`
}

/** A pino destination that writes each record through formatLogLine. */
export function textDestination(write: (line: string) => void): DestinationStream {
  return { write: (line: string) => write(formatLogLine(line.trimEnd())) }
}

/** A logger that drops everything (libraries used without a node, tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}

/** Error fields worth logging: typed code first, message, no stack for expected failures. */
export function errorFields(e: unknown): { code?: string; err: string } {
  const code = (e as { code?: unknown })?.code
  const message = e instanceof Error ? e.message : String(e)
  return typeof code === 'string' ? { code, err: message } : { err: message }
}
