/**
 * A build log file shared by the builders. A write error (a full disk) must never crash the
 * node: it is held and reported when the log is closed, as a rejected close().
 */
import { createWriteStream, type WriteStream } from 'node:fs'
import { finished } from 'node:stream/promises'
import { sha256File } from '../../common/files.js'

export interface BuildLog {
  readonly path: string
  readonly stream: WriteStream
  /** Ends the file; resolves with its digest, or rejects with the first write error. */
  close(): Promise<{ path: string; sha256: string; size: number }>
}

export function openBuildLog(path: string): BuildLog {
  const stream = createWriteStream(path)
  stream.on('error', () => {}) // held by the stream; finished() below rethrows it
  let closing: Promise<{ path: string; sha256: string; size: number }> | undefined
  return {
    path,
    stream,
    close() {
      closing ??= (async () => {
        if (!stream.writableEnded) stream.end()
        await finished(stream)
        return { path, ...(await sha256File(path)) }
      })()
      return closing
    }
  }
}
