/** GET /v1/verdict, POST /v1/verdicts (batch, optional policy), POST /v1/trust/explain. */
import { Readable } from 'node:stream'
import { Type } from '@sinclair/typebox'
import { performance } from 'node:perf_hooks'
import {
  API_MAX_BATCH_BODY_BYTES,
  TrustExplainRequestSchema,
  TrustExplanationSchema,
  BriefVerdictResultSchema,
  VerdictGetQuerySchema,
  VerdictResultSchema,
  VerdictsRequestSchema,
  VerdictsResponseSchema,
  type TrustExplainRequest,
  type VerdictGetQuery,
  type VerdictQuery,
  type VerdictsRequest
} from '../../../protocol/api.js'
import { canonicalPurl } from '../../../protocol/index.js'
import type { ApiContext, ApiRoute } from '../context.js'
import type { BatchGate } from '../limits.js'
import { resultJson } from '../../consensus/verdict-service.js'

/** Items of the first slice of a batch; later slices are sized to take about SLICE_TARGET_MS. */
const FIRST_SLICE = 16
const MAX_SLICE = 1000
const SLICE_TARGET_MS = 8
/** Longest a batch slice waits for single verdicts in flight to finish (so batches never starve). */
const GIVE_WAY_MAX_MS = 50

/**
 * Single verdicts in flight, which batch slices give way to: a single verdict (the apt gate asks
 * one per file) makes several trips through the event loop (policy stat, index reads), and each
 * trip would otherwise wait behind a slice of every running batch.
 */
class SingleVerdicts {
  private inFlight = 0
  private readonly waiters: (() => void)[] = []

  async run<T>(answer: () => Promise<T>): Promise<T> {
    this.inFlight++
    try {
      return await answer()
    } finally {
      if (--this.inFlight === 0) for (const wake of this.waiters.splice(0)) wake()
    }
  }

  /** Resolves once no single verdict is in flight, or after `maxMs`. */
  quiet(maxMs: number): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(done, maxMs)
      function done(): void {
        clearTimeout(timer)
        resolve()
      }
      this.waiters.push(done)
    })
  }
}

const MEDIA_JSON_UTF8 = 'application/json; charset=utf-8'

const fieldOfItem = (offset: number) => (i: number, f: string) => `artifacts[${offset + i}].${f}`

export function verdictRoutes(ctx: ApiContext, batches: BatchGate): ApiRoute[] {
  const singles = new SingleVerdicts()
  return [
    {
      method: 'GET',
      url: '/v1/verdict',
      summary: 'verdict for a file (sha256), optionally named by package and artifact, under the node policy; evidence=brief leaves the evidence out',
      schema: { querystring: VerdictGetQuerySchema, response: { 200: Type.Union([VerdictResultSchema, BriefVerdictResultSchema]) } },
      handler: async (req, reply) => {
        const { evidence, ...query } = req.query as VerdictGetQuery
        const [result] = await singles.run(() => ctx.verdicts.answer([query]))
        // Pre-serialised: the evidence text is the one the engine wrote for the hash.
        return reply.type(MEDIA_JSON_UTF8).send(resultJson(result!, evidence ?? 'full'))
      }
    },
    {
      method: 'POST',
      url: '/v1/verdicts',
      summary: 'verdicts for up to 10,000 files in one call, under the node policy or the policy sent',
      schema: { body: VerdictsRequestSchema, response: { 200: VerdictsResponseSchema } },
      bodyLimit: API_MAX_BATCH_BODY_BYTES,
      handler: async (req, reply) => {
        const body = req.body as VerdictsRequest
        // A few batches at a time (503 + Retry-After beyond the queue): memory and latency stay bounded.
        const release = await batches.enter()
        try {
          // What can fail the whole request fails it before the answer starts: the policy, every purl.
          await ctx.verdicts.trust(body.policy)
          await checkPurls(body.artifacts)
        } catch (e) {
          release()
          throw e
        }
        const stream = Readable.from(answerInSlices(ctx, body, singles), { objectMode: true, highWaterMark: 1 })
        stream.once('close', release)
        reply.raw.once('close', () => stream.destroy())
        return reply.type(MEDIA_JSON_UTF8).send(stream)
      }
    },
    {
      method: 'POST',
      url: '/v1/trust/explain',
      summary: 'how a key is (or is not) trusted: its delegation chain from a root of the policy',
      schema: { body: TrustExplainRequestSchema, response: { 200: TrustExplanationSchema } },
      handler: async (req) => {
        const body = req.body as TrustExplainRequest
        return ctx.verdicts.explain(body.key, body.package, body.policy)
      }
    }
  ]
}

/** Every package purl parses (PURL_INVALID naming the first bad item); each distinct one checked once, yielding now and then. */
async function checkPurls(items: readonly VerdictQuery[]): Promise<void> {
  const seen = new Set<string>()
  for (const [i, q] of items.entries()) {
    if (q.package === undefined || seen.has(q.package)) continue
    seen.add(q.package)
    canonicalPurl(q.package, `artifacts[${i}].package`)
    if (seen.size % 256 === 0) await new Promise<void>((resolve) => setImmediate(resolve))
  }
}

/**
 * `{ "results": [...] }` written slice by slice: each slice is answered, serialised and handed to
 * the socket, then the event loop turns (setImmediate) so single verdicts and other requests are
 * answered between slices; slices are sized to take a few milliseconds, and wait while single
 * verdicts are in flight (at most GIVE_WAY_MAX_MS). The stream is read only as fast as the
 * client reads, so a slow reader holds one slice, not the whole answer.
 */
async function* answerInSlices(ctx: ApiContext, body: VerdictsRequest, singles: SingleVerdicts): AsyncGenerator<string> {
  const items = body.artifacts
  const mode = body.evidence ?? 'full'
  let size = FIRST_SLICE
  yield '{"results":['
  for (let at = 0; at < items.length; ) {
    await singles.quiet(GIVE_WAY_MAX_MS)
    const slice = items.slice(at, at + size)
    const started = performance.now()
    const results = await ctx.verdicts.answer(slice, body.policy, fieldOfItem(at))
    const took = performance.now() - started
    yield (at === 0 ? '' : ',') + results.map((r) => resultJson(r, mode)).join(',')
    at += slice.length
    size = Math.max(1, Math.min(MAX_SLICE, Math.round(took <= 0 ? size * 2 : (size * SLICE_TARGET_MS) / took), size * 2))
    await new Promise<void>((resolve) => setImmediate(resolve))
  }
  yield ']}'
}
