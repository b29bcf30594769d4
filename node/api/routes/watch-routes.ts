/** GET /v1/watch, POST /v1/watch: the watched artifacts whose verdict changes become events. */
import { API_MAX_BATCH_BODY_BYTES, WatchRequestSchema, WatchResponseSchema, type WatchRequest } from '../../../protocol/api.js'
import type { ApiContext, ApiRoute } from '../context.js'

export function watchRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    {
      method: 'GET',
      url: '/v1/watch',
      summary: 'watched artifacts with their last verdict',
      schema: { response: { 200: WatchResponseSchema } },
      handler: async () => ({ watched: ctx.watch.list() })
    },
    {
      method: 'POST',
      url: '/v1/watch',
      summary: 'add artifacts to the watch list (or replace it, or remove from it); answers with the artifacts named',
      auth: true,
      schema: { body: WatchRequestSchema, response: { 200: WatchResponseSchema } },
      bodyLimit: API_MAX_BATCH_BODY_BYTES,
      handler: async (req) => ({ watched: await ctx.watch.change(req.body as WatchRequest) })
    }
  ]
}
