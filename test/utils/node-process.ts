/**
 * A long-running `rbq node start` child process as a user starts it (any command line), with
 * its stderr kept raw and as parsed JSON log lines, for tests that check what the node says.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { waitFor } from './network.js'

export interface NodeProcess {
  child: ChildProcess
  /** Every stderr line, in order. */
  lines: string[]
  /** The stderr lines that are JSON log records (the node logs nothing else). */
  logs: Record<string, unknown>[]
  stdout: () => string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Resolves with the first log record whose `msg` is `msg`; throws if the process exits first. */
  waitForLog: (msg: string, timeoutMs?: number) => Promise<Record<string, unknown>>
  /** SIGTERM, then the exit (SIGKILL after `timeoutMs`). */
  stop: (timeoutMs?: number) => Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

export function spawnNodeProcess(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): NodeProcess {
  const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  const logs: Record<string, unknown>[] = []
  let stdout = ''
  let pending = ''
  let exitState: { code: number | null; signal: NodeJS.Signals | null } | undefined
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr?.on('data', (d: Buffer) => {
    pending += d.toString()
    const parts = pending.split('\n')
    pending = parts.pop() ?? ''
    for (const line of parts) {
      lines.push(line)
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>)
      } catch {
        // not a log record: kept in `lines` for the caller to judge
      }
    }
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      if (pending !== '') lines.push(pending)
      exitState = { code, signal }
      resolve(exitState)
    })
  )
  const waitForLog = (msg: string, timeoutMs = 60_000): Promise<Record<string, unknown>> =>
    waitFor(
      () => {
        const found = logs.find((l) => l.msg === msg)
        if (found !== undefined) return found
        if (exitState !== undefined) throw new Error(`node exited (${exitState.code ?? exitState.signal}) before "${msg}":\n${lines.join('\n')}`)
        return undefined
      },
      { timeoutMs, what: `"${msg}" from ${command} ${args.join(' ')}` }
    )
  const stop = async (timeoutMs = 30_000) => {
    if (exitState !== undefined) return exitState
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    try {
      return await exited
    } finally {
      clearTimeout(timer)
    }
  }
  return { child, lines, logs, stdout: () => stdout, exited, waitForLog, stop }
}

/** A JavaScript stack frame line, or the CLI's last-resort error: what a user must never see. */
export const STACK_TRACE = /^\s+at .+(:\d+:\d+\)?|\(native\))$|unexpected error/m

/** The environment of a user's shell: no npm_* variables leaking from an `npm test` parent, no rbq ones. */
export function userEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && !/^RBQ_/.test(k)) env[k] = v
  return { ...env, ...extra }
}

/** A process's resident set in bytes (VmRSS), or another `/proc/<pid>/status` size (RssAnon, RssFile). */
export async function residentBytes(pid: number, field: 'VmRSS' | 'RssAnon' | 'RssFile' = 'VmRSS'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1]
  if (kb === undefined) throw new Error(`no ${field} in /proc/${pid}/status`)
  return Number(kb) * 1024
}

/**
 * config.toml of a node process for tests: logs at info, loopback and free ports only, periodic
 * sync off (an hour), no rebuilds; `ingest` and `api` add their lines (TOML) to those sections.
 */
export function nodeProcessConfig(extra: { ingest?: readonly string[]; api?: readonly string[] } = {}): string {
  return [
    '[log]',
    'level = "info"',
    '[p2p]',
    'listen = ["/ip4/127.0.0.1/tcp/0"]',
    '[sync]',
    'interval_seconds = 3600',
    '[ingest]',
    ...(extra.ingest ?? []),
    '[api]',
    'port = 0',
    ...(extra.api ?? []),
    '[rebuild]',
    'enabled = false',
    ''
  ].join('\n')
}
