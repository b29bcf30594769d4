/**
 * One error shape for every route: `{ error: { code, message, field? } }` with the RbqError code
 * and the HTTP status protocol/api.ts assigns to it. Fastify's own errors (body too large,
 * unsupported media type, bad content length) are translated here, so clients only ever see
 * our codes; anything unexpected is a 500 INTERNAL whose details stay in the log.
 */
import { httpStatusOf, type ApiErrorBody } from '../../protocol/api.js'
import { RbqError, type ErrorCode } from '../../protocol/index.js'

/** A schema violation found by the route validator (server.ts), carrying the typed error. */
export class SchemaViolation extends Error {
  constructor(readonly rbq: RbqError) {
    super(rbq.message)
  }
}

const FASTIFY_CODES: Record<string, { code: ErrorCode; message: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'INPUT_TOO_LARGE', message: 'request body is over the size limit of this route' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'unsupported content type for this route' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'SCHEMA_INVALID', message: 'content-length does not match the body' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'JSON_MALFORMED', message: 'body: empty' },
  FST_ERR_CTP_INVALID_TYPE: { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'content-type header is malformed' },
  FST_ERR_CTP_EMPTY_TYPE: { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'content-type header is empty' },
  FST_ERR_BAD_URL: { code: 'SCHEMA_INVALID', message: 'malformed URL (bad percent-encoding)' },
  FST_ERR_MAX_PARAM_LENGTH: { code: 'URI_TOO_LONG', message: 'a path parameter is over the length limit' },
  FST_ERR_ASYNC_CONSTRAINT: { code: 'SCHEMA_INVALID', message: 'malformed request' }
}

export interface ApiErrorReply {
  status: number
  body: ApiErrorBody
  /** The server's fault: log it. */
  internal: boolean
}

export function errorReply(e: unknown): ApiErrorReply {
  const rbq = e instanceof SchemaViolation ? e.rbq : e instanceof RbqError ? e : undefined
  if (rbq !== undefined) {
    const status = httpStatusOf(rbq.code)
    return { status, body: { error: rbq.toJSON() }, internal: status >= 500 }
  }
  const code = (e as { code?: unknown })?.code
  const known = typeof code === 'string' ? FASTIFY_CODES[code] : undefined
  if (known !== undefined) return { status: httpStatusOf(known.code), body: { error: { code: known.code, message: known.message } }, internal: false }
  const statusCode = (e as { statusCode?: unknown })?.statusCode
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    // Another client error fastify detected (e.g. a malformed header): say what it said.
    return { status: 400, body: { error: { code: 'SCHEMA_INVALID', message: String((e as Error).message ?? 'bad request') } }, internal: false }
  }
  return { status: 500, body: { error: { code: 'INTERNAL', message: 'internal error (see the node log)' } }, internal: true }
}
