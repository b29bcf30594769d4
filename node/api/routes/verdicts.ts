/** GET /v1/verdict, POST /v1/verdicts (batch, optional policy), POST /v1/trust/explain. */
import {
  API_MAX_BATCH_BODY_BYTES,
  TrustExplainRequestSchema,
  TrustExplanationSchema,
  VerdictQuerySchema,
  VerdictResultSchema,
  VerdictsRequestSchema,
  VerdictsResponseSchema,
  type TrustExplainRequest,
  type VerdictQuery,
  type VerdictsRequest
} from '../../../protocol/api.js'
import type { ApiContext, ApiRoute } from '../context.js'

export function verdictRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    {
      method: 'GET',
      url: '/v1/verdict',
      summary: 'verdict for a file (sha256), optionally named by package and artifact, under the node policy',
      schema: { querystring: VerdictQuerySchema, response: { 200: VerdictResultSchema } },
      handler: async (req) => (await ctx.verdicts.answer([req.query as VerdictQuery]))[0]
    },
    {
      method: 'POST',
      url: '/v1/verdicts',
      summary: 'verdicts for up to 10,000 files in one call, under the node policy or the policy sent',
      schema: { body: VerdictsRequestSchema, response: { 200: VerdictsResponseSchema } },
      bodyLimit: API_MAX_BATCH_BODY_BYTES,
      handler: async (req) => {
        const body = req.body as VerdictsRequest
        return { results: await ctx.verdicts.answer(body.artifacts, body.policy, (i, f) => `artifacts[${i}].${f}`) }
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
