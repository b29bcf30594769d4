/**
 * One error class for the whole project, with a closed union of stable codes.
 * Codes are safe metric labels and wire strings: never rename one, only add.
 */
export const ERROR_CODES = [
  // decoding and schema (protocol/)
  'INPUT_TOO_LARGE', // byte length over a documented limit
  'JSON_MALFORMED', // not parseable JSON, or nested too deep
  'NOT_CANONICAL', // bytes are valid JSON but not the JCS (RFC 8785) encoding
  'SCHEMA_INVALID', // wrong type, missing field, unknown field, bad format
  'VERSION_UNSUPPORTED', // frame `v` other than 1
  'BASE64_INVALID', // not strict standard/url base64 as the field requires
  'PAYLOAD_TYPE_UNKNOWN', // DSSE payloadType we do not speak
  'PURL_INVALID', // not a package URL packageurl-js accepts
  'PATTERN_INVALID', // purl scope pattern malformed
  // keys and signatures (protocol/)
  'KEY_INVALID', // public/private key text or bytes malformed
  'KEY_SMALL_ORDER', // public key of small order (or not a valid point)
  'KEYID_MISMATCH', // envelope keyid != sha256(publicKey)
  'SIGNATURE_INVALID', // Ed25519 verification failed
  'EQUIVOCATION_INVALID', // a proof that does not prove a conflict
  // files (keys, state, frames) (protocol/ types, node/ + cli/ I/O)
  'FILE_NOT_FOUND',
  'FILE_UNREADABLE',
  'FILE_PERMISSIONS', // key/token file readable by group or others
  'FILE_EXISTS', // refusing to overwrite
  'SEQ_STATE_INVALID', // per-key seq counter file corrupt
  // trust (node/consensus)
  'POLICY_INVALID',
  // node and network
  'CONFIG_INVALID',
  'STORE_ERROR',
  'QUOTA_EXCEEDED',
  'QUEUE_FULL',
  'DUPLICATE',
  'SYNC_PROTOCOL',
  // rebuilds
  'FEED_ERROR', // archive index fetch/verify failed
  'CHECKSUM_MISMATCH', // a downloaded file's digest differs from the signed index
  'DOWNLOAD_FAILED', // network/HTTP failure (transient)
  'BUILD_FAILED', // deterministic build failure
  'BUILD_TIMEOUT',
  'BUILDER_UNAVAILABLE', // missing tools / privileges
  'RECIPE_INVALID',
  // client surface
  'API_UNAVAILABLE', // node not running / not reachable
  'API_ERROR',
  'UNAUTHORIZED',
  'NOT_FOUND',
  'USAGE', // bad command-line usage
  'INTERNAL', // a bug or an unexpected runtime failure, not the input's fault (e.g. ingest: IGNORE, never REJECT)
  'UNSUPPORTED_MEDIA_TYPE', // HTTP API: a request body in a content type the route does not take
  'TOPIC_MISMATCH', // gossip: a frame whose kind does not belong to the topic it arrived on (REJECT)
  'REQUEST_STALE', // gossip: a rebuild request signed too long ago or in the future (IGNORE)
  // HTTP API transport (node/api/api-server.ts)
  'REQUEST_TIMEOUT', // headers or body not received in time, or the body arrived too slowly
  'HOST_NOT_ALLOWED', // Host header not a loopback name with the API port, nor a configured name
  'ORIGIN_NOT_ALLOWED', // a browser request from another origin (Origin header)
  'URI_TOO_LONG', // request target over the limit
  'HEADERS_TOO_LARGE', // request headers over the limit
  'HTTP_MALFORMED', // not parseable as HTTP/1.1
  'HOOK_INPUT_INVALID', // apt hook: stdin not in the Pre-Install-Pkgs protocol announced
  'HELPER_REQUEST_INVALID', // build helper socket: a request outside its strict protocol (node/build-helper)
  'SIGNER_MISMATCH' // HTTP API: asked to sign with a key other than the node's own (POST /v1/rebuild-results)
] as const

export type ErrorCode = (typeof ERROR_CODES)[number]

export class RbqError extends Error {
  readonly code: ErrorCode
  /** Optional dotted path of the offending field, e.g. `envelope.signatures[0].sig`. */
  readonly field: string | undefined

  constructor(code: ErrorCode, message: string, options: { field?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'RbqError'
    this.code = code
    this.field = options.field
  }

  toJSON(): { code: ErrorCode; message: string; field?: string } {
    return this.field === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, field: this.field }
  }
}

export function isRbqError(e: unknown, code?: ErrorCode): e is RbqError {
  return e instanceof RbqError && (code === undefined || e.code === code)
}

/** Any thrown value as a typed error; anything untyped is a bug (INTERNAL), never the sender's fault. */
export function asRbqError(e: unknown): RbqError {
  if (e instanceof RbqError) return e
  return new RbqError('INTERNAL', `unexpected error: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
}
