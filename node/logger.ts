/**
 * Structured logs (pino, JSON lines) on stderr; stdout stays free for command output.
 * Components log through children: `logger.child({ component: 'p2p' })`.
 */
import { pino, type DestinationStream, type Logger } from 'pino'

export type { Logger }

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export interface LoggerInit {
  level?: LogLevel
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
    init.destination ?? pino.destination({ dest: 2, sync: true })
  )
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
