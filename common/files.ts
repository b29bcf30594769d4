/**
 * Bounded file reads with typed errors: hostile or mistaken paths never make us read a huge
 * file into memory, and every failure names the path.
 */
import { createHash } from 'node:crypto'
import { createReadStream, promises as fs } from 'node:fs'
import { MAX_FRAME_BYTES, RbqError } from '../protocol/index.js'

export async function readFileBounded(path: string, maxBytes: number, what = 'file'): Promise<Uint8Array> {
  let handle
  try {
    handle = await fs.open(path, 'r')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new RbqError('FILE_NOT_FOUND', `${what} ${path} does not exist`, { cause: e })
    throw new RbqError('FILE_UNREADABLE', `${what} ${path}: ${(e as Error).message}`, { cause: e })
  }
  try {
    const st = await handle.stat()
    if (!st.isFile()) throw new RbqError('FILE_UNREADABLE', `${what} ${path} is not a regular file`)
    if (st.size > maxBytes) {
      throw new RbqError('INPUT_TOO_LARGE', `${what} ${path} is ${st.size} bytes, over the ${maxBytes}-byte limit`)
    }
    // Sized by the file, plus one byte to notice a file that grew past the limit meanwhile.
    const want = Math.min(st.size, maxBytes) + 1
    const buf = Buffer.alloc(want)
    const { bytesRead } = await handle.read(buf, 0, want, 0)
    if (bytesRead > maxBytes) throw new RbqError('INPUT_TOO_LARGE', `${what} ${path} is over the ${maxBytes}-byte limit`)
    return new Uint8Array(buf.subarray(0, bytesRead))
  } catch (e) {
    if (e instanceof RbqError) throw e
    throw new RbqError('FILE_UNREADABLE', `${what} ${path}: ${(e as Error).message}`, { cause: e })
  } finally {
    await handle.close()
  }
}

/**
 * A frame file holds the canonical frame bytes, optionally followed by one LF (text-file
 * convention). Anything else is left for the decoder to reject.
 */
export async function readFrameFile(path: string): Promise<Uint8Array> {
  const bytes = await readFileBounded(path, MAX_FRAME_BYTES + 1, 'frame file')
  return stripFinalNewline(bytes)
}

export function stripFinalNewline(bytes: Uint8Array): Uint8Array {
  return bytes.length > 0 && bytes[bytes.length - 1] === 0x0a ? bytes.subarray(0, bytes.length - 1) : bytes
}

/** Writes a frame file (canonical bytes + LF) atomically, never half-written. */
export async function writeFrameFile(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`
  await fs.writeFile(tmp, Buffer.concat([bytes, Buffer.from('\n')]))
  await fs.rename(tmp, path)
}

/** SHA-256 of a file of any size, streamed. */
export async function sha256File(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256')
  let size = 0
  try {
    // 1 MiB reads: hashing large artifacts is a visible share of a rebuild's own overhead.
    for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
      hash.update(chunk as Buffer)
      size += (chunk as Buffer).length
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new RbqError('FILE_NOT_FOUND', `${path} does not exist`, { cause: e })
    throw new RbqError('FILE_UNREADABLE', `${path}: ${(e as Error).message}`, { cause: e })
  }
  return { sha256: hash.digest('hex'), size }
}
