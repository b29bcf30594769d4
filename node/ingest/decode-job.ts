/**
 * The unit of work of the decode pool: protocol's full `decodeFrame` (parse → signature →
 * open), the one function both the worker threads and the inline fallback run, so a verdict
 * never depends on where a frame was decoded. Errors cross the thread boundary as plain data.
 */
import { ERROR_CODES, RbqError, decodeFrame, type ErrorCode, type VerifiedFrame } from '../../protocol/index.js'
import { asRbqError } from './results.js'

export type DecodeOutcome = { ok: true; frame: VerifiedFrame } | { ok: false; error: RbqError }

/** A DecodeOutcome after structured cloning (RbqError does not survive postMessage as a class). */
export type WireOutcome = { ok: true; frame: VerifiedFrame } | { ok: false; code: ErrorCode; message: string; field: string | undefined }

export interface DecodeRequest {
  id: number
  frames: Uint8Array[]
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
  return outcome.ok ? outcome : { ok: false, code: outcome.error.code, message: outcome.error.message, field: outcome.error.field }
}

export function fromWire(outcome: WireOutcome): DecodeOutcome {
  if (outcome.ok) return outcome
  const code = (ERROR_CODES as readonly string[]).includes(outcome.code) ? outcome.code : 'INTERNAL'
  return { ok: false, error: new RbqError(code, outcome.message, outcome.field === undefined ? {} : { field: outcome.field }) }
}
