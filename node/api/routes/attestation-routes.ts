/**
 * GET /v1/attestations (paged by package, sha256 or builder), GET /v1/attestations/:id, and
 * POST /v1/attestations: submit frames of any kind (attestations, delegations, proofs) through
 * the ingest pipeline, as one frame (`application/json`, its canonical bytes) or JSON lines
 * (`application/x-ndjson`, one canonical frame per line).
 */
import { Type } from '@sinclair/typebox'
import {
  API_DEFAULT_PAGE,
  API_MAX_FRAME_BODY_BYTES,
  API_MAX_FRAMES_BODY_BYTES,
  API_MAX_FRAMES_PER_SUBMIT,
  AttestationsPageSchema,
  AttestationsQuerySchema,
  FrameIdParamsSchema,
  MEDIA_JSON,
  MEDIA_NDJSON,
  StoredFrameSchema,
  SubmitManyResponseSchema,
  SubmitResultSchema,
  type AttestationsPage,
  type AttestationsQuery,
  type StoredFrame,
  type SubmitResult
} from '../../../protocol/api.js'
import { canonicalPurl, frameText, RbqError, type VerifiedFrame } from '../../../protocol/index.js'
import { stripFinalNewline } from '../../../common/files.js'
import type { IngestResult } from '../../ingest/ingest-types.js'
import { errorReply } from '../api-errors.js'
import type { ApiContext, ApiRoute } from '../context.js'

interface Cursor {
  /** Last frame id returned. */
  a: string
  /** Its seq (builder pages, which are ordered by seq then id). */
  s?: number
}

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url')
}

function decodeCursor(text: string | undefined): Cursor | undefined {
  if (text === undefined) return undefined
  const bad = () => new RbqError('SCHEMA_INVALID', 'cursor: not a cursor this node issued (use `next` from the previous page)', { field: 'cursor' })
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'))
  } catch {
    throw bad()
  }
  const c = value as Partial<Cursor>
  if (typeof c !== 'object' || c === null || typeof c.a !== 'string' || !/^[0-9a-f]{64}$/.test(c.a)) throw bad()
  if (c.s !== undefined && !(Number.isSafeInteger(c.s) && c.s >= 1)) throw bad()
  return c as Cursor
}

export function storedFrame(f: VerifiedFrame): StoredFrame {
  return { id: f.id, kind: f.kind, signer: f.signer.keyid, frame: JSON.parse(frameText(f.bytes)) as unknown }
}

/** One submission's outcome as the API reports it. */
function submitResult(r: IngestResult): SubmitResult {
  const out: SubmitResult = { status: r.status === 'stored' || r.status === 'duplicate' ? r.status : 'rejected' }
  if (r.id !== undefined) out.id = r.id
  if (r.frame !== undefined) out.kind = r.frame.kind
  if (r.status !== 'stored' && r.status !== 'duplicate' && r.error !== undefined) out.error = r.error.toJSON()
  return out
}

export function attestationRoutes(ctx: ApiContext): ApiRoute[] {
  const { store } = ctx.components
  return [
    {
      method: 'GET',
      url: '/v1/attestations',
      summary: 'stored attestations of a package (exact purl), with a subject digest, or by a builder key; or the delegations to a key; paged',
      schema: { querystring: AttestationsQuerySchema, response: { 200: AttestationsPageSchema } },
      handler: async (req): Promise<AttestationsPage> => {
        const q = req.query as AttestationsQuery
        const given = (['package', 'sha256', 'builder', 'delegate'] as const).filter((k) => q[k] !== undefined)
        if (given.length !== 1) {
          throw new RbqError('SCHEMA_INVALID', `give exactly one of package, sha256, builder, delegate (got ${given.length === 0 ? 'none' : given.join(', ')})`, {
            field: given[1] ?? 'package'
          })
        }
        const limit = q.limit ?? API_DEFAULT_PAGE
        const cursor = decodeCursor(q.cursor)
        let page: VerifiedFrame[]
        let more: boolean
        if (q.builder !== undefined) {
          ;({ page, more } = await builderPage(ctx, q.builder.toLowerCase(), cursor, limit))
        } else {
          const all =
            q.sha256 !== undefined
              ? await store.frameIdsBySha256(q.sha256.toLowerCase())
              : q.delegate !== undefined
                ? await store.delegationIdsByDelegate(q.delegate.toLowerCase())
                : await store.frameIdsByPackage(canonicalPurl(q.package!, 'package'))
          let ids = [...new Set(all)].sort()
          if (cursor !== undefined) ids = ids.filter((id) => id > cursor.a)
          more = ids.length > limit
          page = await ctx.verdicts.frames(ids.slice(0, limit))
        }
        const last = page[page.length - 1]
        let next: string | null = null
        if (more && last !== undefined) next = encodeCursor(last.kind === 'attestation' && q.builder !== undefined ? { a: last.id, s: seqOf(last) } : { a: last.id })
        return { items: page.map(storedFrame), next }
      }
    },
    {
      method: 'GET',
      url: '/v1/attestations/:id',
      summary: 'one stored frame (any kind) by frame id',
      schema: { params: FrameIdParamsSchema, response: { 200: StoredFrameSchema } },
      handler: async (req) => {
        const { id } = req.params as { id: string }
        const [frame] = await ctx.verdicts.frames([id])
        if (frame === undefined) throw new RbqError('NOT_FOUND', `no frame ${id} is stored here`, { field: 'id' })
        return storedFrame(frame)
      }
    },
    {
      method: 'POST',
      url: '/v1/attestations',
      summary: 'submit frames (attestations, delegations, equivocation proofs): one canonical frame as application/json, or one per line as application/x-ndjson',
      auth: true,
      raw: { [MEDIA_JSON]: API_MAX_FRAME_BODY_BYTES, [MEDIA_NDJSON]: API_MAX_FRAMES_BODY_BYTES },
      schema: {
        body: Type.Unknown({ description: 'a frame in its canonical (JCS) bytes, or JSON lines of them' }),
        response: { 200: Type.Union([SubmitResultSchema, SubmitManyResponseSchema]), 201: SubmitResultSchema }
      },
      handler: async (req, reply) => {
        const ingest = ctx.components.ingest
        if (ingest === undefined) throw new RbqError('QUEUE_FULL', 'this node has no ingest pipeline running')
        const body = req.body as Buffer
        const bytes = new Uint8Array(body.buffer, body.byteOffset, body.byteLength)
        const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
        if (type === MEDIA_NDJSON) {
          const lines = splitLines(bytes)
          if (lines.length > API_MAX_FRAMES_PER_SUBMIT) {
            throw new RbqError('INPUT_TOO_LARGE', `body: ${lines.length} frames; at most ${API_MAX_FRAMES_PER_SUBMIT} per request`, { field: 'body' })
          }
          return { results: (await ingest.submitMany(lines, 'api')).map(submitResult) }
        }
        const result = await ingest.submit(stripFinalNewline(bytes), 'api')
        if (result.status === 'stored') return reply.code(201).send(submitResult(result))
        if (result.status === 'duplicate') return submitResult(result)
        const error = result.error ?? new RbqError('INTERNAL', 'frame not stored')
        const e = errorReply(error)
        return reply.code(e.status).send(e.body)
      }
    }
  ]
}

const seqOf = (f: VerifiedFrame) => (f.kind === 'attestation' ? f.statement.predicate.builder.seq : 0)

/**
 * A page of a builder's attestations after the cursor, in (seq, frame id) order: the index
 * is read in windows from the cursor's seq, skipping what the cursor already covered.
 */
async function builderPage(ctx: ApiContext, keyid: string, cursor: Cursor | undefined, limit: number): Promise<{ page: VerifiedFrame[]; more: boolean }> {
  const page: VerifiedFrame[] = []
  let after = cursor === undefined ? undefined : { seq: cursor.s ?? 1, id: cursor.a }
  let window = limit + 1
  for (;;) {
    const ids = await ctx.components.store.frameIdsByBuilder(keyid, after?.seq ?? 1, window)
    const frames = await ctx.verdicts.frames(ids)
    let progressed = false
    for (const f of frames) {
      const seq = seqOf(f)
      if (after !== undefined && (seq < after.seq || (seq === after.seq && f.id <= after.id))) continue
      if (page.length === limit) return { page, more: true }
      page.push(f)
      after = { seq, id: f.id }
      progressed = true
    }
    if (ids.length < window) return { page, more: false }
    // A window of frames all at or before the cursor (many frames at one seq): widen it.
    if (!progressed) window *= 2
  }
}

/** Non-empty lines of a JSON-lines body (LF or CRLF). */
function splitLines(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = []
  let start = 0
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x0a) {
      let end = i
      if (end > start && bytes[end - 1] === 0x0d) end--
      if (end > start) out.push(bytes.subarray(start, end))
      start = i + 1
    }
  }
  return out
}
