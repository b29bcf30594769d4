import { describe, expect, it } from 'vitest'
import { unexpectedErrorText } from '../../../cli/exit.js'

describe('unexpected errors', () => {
  it('reach the user as one line, without a stack trace (issue 15)', () => {
    const e = new Error('Incorrect length\n    at Module.decode (digest.js:25:15)')
    const text = unexpectedErrorText(e, {})
    expect(text).toBe('rbq: unexpected error: Incorrect length [INTERNAL] (RBQ_DEBUG=1 shows the stack trace)\n')
    expect(unexpectedErrorText(new TypeError('x is not a function'), {})).toContain('TypeError: x is not a function [INTERNAL]')
    expect(unexpectedErrorText('a thrown string', {})).toContain('a thrown string')
  })
  it('show the stack trace with RBQ_DEBUG=1', () => {
    const text = unexpectedErrorText(new Error('boom'), { RBQ_DEBUG: '1' })
    expect(text).toMatch(/^rbq: unexpected error: Error: boom\n\s+at /)
  })
})
