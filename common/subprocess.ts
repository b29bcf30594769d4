/**
 * Runs an external tool in its own process group so that a timeout or an abort kills it and
 * everything it started (build systems fork a lot). Output can be captured, appended to a build
 * log, and streamed line by line to a progress callback.
 */
import { spawn } from 'node:child_process'
import type { WriteStream } from 'node:fs'
import { StringDecoder } from 'node:string_decoder'

export interface RunOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** Aborting kills the whole process group. */
  signal?: AbortSignal
  timeoutMs?: number
  /** Keep stdout in `RunResult.stdout` (default true); stderr's tail is always kept. */
  captureStdout?: boolean
  /** Append stdout and stderr to this log. */
  log?: WriteStream
  onLine?: (line: string) => void
  input?: string | Buffer
}

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: Buffer
  stderr: string // last 64 KiB
  timedOut: boolean
  aborted: boolean
}

const STDERR_TAIL = 64 * 1024

export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted === true) {
      resolve({ code: null, signal: null, stdout: Buffer.alloc(0), stderr: '', timedOut: false, aborted: true })
      return
    }
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      detached: true, // own process group: kill(-pid) reaches the grandchildren
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe']
    })
    const stdout: Buffer[] = []
    let stderr = ''
    let timedOut = false
    let aborted = false
    const killGroup = (): void => {
      if (child.pid === undefined) return
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true
            killGroup()
          }, Math.max(0, opts.timeoutMs))
    const onAbort = (): void => {
      aborted = true
      killGroup()
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true })

    const outLines = lineSplitter(opts.onLine)
    const errLines = lineSplitter(opts.onLine)
    child.stdout?.on('data', (chunk: Buffer) => {
      if (opts.captureStdout !== false) stdout.push(chunk)
      opts.log?.write(chunk)
      outLines.push(chunk)
    })
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_TAIL)
      opts.log?.write(chunk)
      errLines.push(chunk)
    })
    if (opts.input !== undefined) child.stdin?.end(opts.input)

    child.on('error', (err) => {
      if (timer !== undefined) clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
      reject(err)
    })
    child.on('close', (code, signal) => {
      if (timer !== undefined) clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
      outLines.flush()
      errLines.flush()
      resolve({ code, signal, stdout: Buffer.concat(stdout), stderr, timedOut, aborted })
    })
  })
}

/** Cuts one stream's chunks into lines (each stream keeps its own unfinished line). */
function lineSplitter(onLine: ((line: string) => void) | undefined): { push: (chunk: Buffer) => void; flush: () => void } {
  let partial = ''
  const decoder = new StringDecoder('utf8') // a UTF-8 character may straddle two chunks
  return {
    push(chunk) {
      if (onLine === undefined) return
      const lines = (partial + decoder.write(chunk)).split('\n')
      partial = lines.pop() ?? ''
      for (const l of lines) onLine(l)
    },
    flush() {
      if (partial !== '') onLine?.(partial)
      partial = ''
    }
  }
}

/** Whether `cmd` is found on PATH (like `command -v`). */
export async function hasCommand(cmd: string): Promise<boolean> {
  try {
    const r = await run('sh', ['-c', 'command -v "$1"', 'sh', cmd], { timeoutMs: 5_000 })
    return r.code === 0
  } catch {
    return false
  }
}
