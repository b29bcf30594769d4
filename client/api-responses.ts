/**
 * Reading the node's answers on the client side: an error body (`{ error: { code, message } }`,
 * node/api/api-errors.ts writes it) as a typed RbqError, and the server-sent event stream
 * (node/api/node-events.ts writes it) as typed events.
 */
import type { ApiEvent } from '../protocol/api.js'
import { RbqError, type ErrorCode } from '../protocol/errors.js'

/** A typed error from an error body (or a generic API_ERROR). */
export function errorFromBody(status: number, body: unknown): RbqError {
  const err = (body as { error?: { code?: unknown; message?: unknown; field?: unknown } } | undefined)?.error
  if (err !== undefined && typeof err.code === 'string' && typeof err.message === 'string') {
    const field = typeof err.field === 'string' ? err.field : undefined
    return new RbqError(err.code as ErrorCode, err.message, field === undefined ? {} : { field })
  }
  return new RbqError('API_ERROR', `the node answered HTTP ${status} without an error body`)
}

/** Parses an SSE byte stream into events. Comments and unknown fields are skipped. */
export async function* parseEventStream(body: AsyncIterable<Uint8Array>): AsyncGenerator<ApiEvent> {
  const decoder = new TextDecoder()
  let buffer = ''
  let id = ''
  let type = ''
  let data: string[] = []
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true })
    let nl: number
    while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, nl)
      buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1))
      if (line === '') {
        if (data.length > 0 && type !== '') {
          let parsed: unknown
          try {
            parsed = JSON.parse(data.join('\n'))
          } catch {
            throw new RbqError('API_ERROR', `event stream: event ${id || '?'} carries malformed JSON`)
          }
          yield { type, id, data: parsed } as ApiEvent
        }
        type = ''
        data = []
        continue
      }
      if (line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const field = colon < 0 ? line : line.slice(0, colon)
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
      if (field === 'event') type = value
      else if (field === 'data') data.push(value)
      else if (field === 'id') id = value
    }
  }
}
