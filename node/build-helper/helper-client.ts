/**
 * The node's side of the build helper (protocol.ts): a TargetBuilder that sends one request
 * over the helper's Unix socket, relays its progress, writes the streamed build log into the
 * job's own directory and checks it against the digest the result states, so the attestation
 * names a log this node holds. Aborting the job closes the connection, which aborts the build.
 */
import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import { once } from 'node:events'
import { RbqError } from '../../protocol/index.js'
import type { RebuildResult } from '../rebuild/rebuild-types.js'
import type { TargetBuilder } from './local-builder.js'
import { encodeRequest, LineSplitter, MAX_RESPONSE_LINE_BYTES, MAX_TIMEOUT_SECONDS, parseHelperMessage, type WireResult } from './helper-protocol.js'

export function helperBuilder(socketPath: string): TargetBuilder {
  return async (target, run) => {
    await mkdir(run.outDir, { recursive: true })
    const logPath = join(run.outDir, 'build.log')
    const log = createWriteStream(logPath, { mode: 0o644 })
    const hash = createHash('sha256')
    let logSize = 0
    const socket = connect(socketPath)
    const onAbort = (): void => {
      socket.destroy()
    }
    run.signal.addEventListener('abort', onAbort, { once: true })
    try {
      const wire = await new Promise<WireResult>((resolve, reject) => {
        const splitter = new LineSplitter(MAX_RESPONSE_LINE_BYTES)
        let settled = false
        const fail = (e: Error): void => {
          if (settled) return
          settled = true
          socket.destroy()
          reject(e)
        }
        socket.on('connect', () => socket.write(encodeRequest(target, Math.min(MAX_TIMEOUT_SECONDS, Math.max(1, Math.ceil(run.timeoutMs / 1000))))))
        socket.on('error', (e: NodeJS.ErrnoException) =>
          fail(new RbqError('BUILDER_UNAVAILABLE', `build helper at ${socketPath}: ${e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? 'not running' : e.code === 'EACCES' ? 'permission denied (is this user in group rbq?)' : e.message}`, { cause: e }))
        )
        socket.on('close', () => fail(run.signal.aborted ? (run.signal.reason as Error) : new RbqError('BUILDER_UNAVAILABLE', `build helper at ${socketPath} closed the connection without a result`)))
        socket.on('data', (chunk: Buffer) => {
          try {
            for (const line of splitter.push(chunk)) {
              const m = parseHelperMessage(line.toString('utf8'))
              if (m.type === 'progress') run.onProgress({ phase: m.phase, message: m.message })
              else if (m.type === 'log') {
                const bytes = Buffer.from(m.data, 'base64')
                hash.update(bytes)
                logSize += bytes.length
                log.write(bytes)
              } else if (m.type === 'error') return fail(new RbqError(m.code, m.message))
              else if (m.type === 'result') {
                settled = true
                socket.end()
                return resolve(m.result)
              }
            }
          } catch (e) {
            fail(e as Error)
          }
        })
      })
      log.end()
      await once(log, 'close')
      const sha256 = hash.digest('hex')
      if (wire.log?.sha256 !== sha256 || wire.log.size !== logSize) {
        throw new RbqError('BUILDER_UNAVAILABLE', `build helper's log does not match the digest it stated (${logSize} bytes received)`)
      }
      return fromWire(wire, run.outDir, logPath)
    } finally {
      run.signal.removeEventListener('abort', onAbort)
      if (!log.closed) log.destroy()
    }
  }
}

function fromWire(w: WireResult, outDir: string, logPath: string): RebuildResult {
  const startedOn = new Date(w.startedOn)
  const finishedOn = new Date(w.finishedOn)
  if (Number.isNaN(startedOn.getTime()) || Number.isNaN(finishedOn.getTime()) || !Array.isArray(w.artifacts)) {
    throw new RbqError('BUILDER_UNAVAILABLE', 'build helper sent a malformed result')
  }
  return {
    ...w,
    startedOn,
    finishedOn,
    // The artifacts stay on the helper's side (it removes them): the attestation needs their digests only.
    artifacts: w.artifacts.map((a) => ({ name: a.name, sha256: a.sha256, size: a.size, path: join(outDir, 'out', a.name) })),
    log: { path: logPath, sha256: w.log.sha256, size: w.log.size }
  }
}
