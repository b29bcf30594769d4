/**
 * The unit of work of the decode pool: protocol's full `decodeFrame` (parse → signature →
 * open), the one function both the worker threads and the inline fallback run, so a verdict
 * never depends on where a frame was decoded. Errors cross the thread boundary as plain data.
 */
import { ERROR_CODES, RbqError, asRbqError, decodeFrame, type ErrorCode, type VerifiedFrame } from '../../protocol/index.js'

export type DecodeOutcome = { ok: true; frame: VerifiedFrame } | { ok: false; error: RbqError }

/**
 * A DecodeOutcome after structured cloning (RbqError does not survive postMessage as a class).
 * A decoded frame travels back without its bytes: the pool still holds them.
 */
export type WireOutcome =
  | { ok: true; frame: Omit<VerifiedFrame, 'bytes'> }
  | { ok: false; code: ErrorCode; message: string; field: string | undefined }

/**
 * A batch of frames packed into one buffer that is transferred, not copied, to the worker:
 * frame i is `buffer[ends[i - 1] ?? 0, ends[i])`.
 */
export interface DecodeRequest {
  id: number
  buffer: ArrayBuffer
  ends: Uint32Array
}

export function packFrames(frames: readonly Uint8Array[]): { buffer: ArrayBuffer; ends: Uint32Array } {
  let total = 0
  for (const f of frames) total += f.byteLength
  const packed = new Uint8Array(total)
  const ends = new Uint32Array(frames.length)
  let at = 0
  frames.forEach((f, i) => {
    packed.set(f, at)
    at += f.byteLength
    ends[i] = at
  })
  return { buffer: packed.buffer, ends }
}

export function unpackFrames(request: Pick<DecodeRequest, 'buffer' | 'ends'>): Uint8Array[] {
  const frames: Uint8Array[] = []
  let start = 0
  for (const end of request.ends) {
    frames.push(new Uint8Array(request.buffer, start, end - start))
    start = end
  }
  return frames
}

export type WorkerMessage = { type: 'ready' } | { type: 'decoded'; id: number; outcomes: WireOutcome[] }

export function decodeOne(bytes: Uint8Array): DecodeOutcome {
  try {
    return { ok: true, frame: decodeFrame(bytes) }
  } catch (e) {
    return { ok: false, error: asRbqError(e) }
  }
}

export function toWire(outcome: DecodeOutcome): WireOutcome {
  if (outcome.ok) {
    const { bytes: _bytes, ...frame } = outcome.frame
    return { ok: true, frame }
  }
  return { ok: false, code: outcome.error.code, message: outcome.error.message, field: outcome.error.field }
}

/** `bytes`: the frame the outcome is about, as the pool was given it. */
export function fromWire(outcome: WireOutcome, bytes: Uint8Array): DecodeOutcome {
  if (outcome.ok) return { ok: true, frame: { ...outcome.frame, bytes } as VerifiedFrame }
  const code = (ERROR_CODES as readonly string[]).includes(outcome.code) ? outcome.code : 'INTERNAL'
  return { ok: false, error: new RbqError(code, outcome.message, outcome.field === undefined ? {} : { field: outcome.field }) }
}
