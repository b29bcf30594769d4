import { isRbqError } from '../../protocol/index.js'

/** The RbqError code `f` throws, `no error`, or `not ours: …` for a foreign exception. */
export function errorCode(f: () => unknown): string {
  try {
    f()
  } catch (e) {
    return isRbqError(e) ? e.code : `not ours: ${String(e)}`
  }
  return 'no error'
}
