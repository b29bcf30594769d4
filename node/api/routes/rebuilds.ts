/** POST /v1/rebuilds: ask this node's scheduler to rebuild a package. */
import { RebuildRequestSchema, RebuildResponseSchema, type RebuildRequest, type RebuildResponse } from '../../../protocol/api.js'
import { canonicalPurl, RbqError } from '../../../protocol/index.js'
import type { ApiContext, ApiRoute } from '../context.js'

export function rebuildRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    {
      method: 'POST',
      url: '/v1/rebuilds',
      summary: 'queue a rebuild of a package (purl) on this node',
      auth: true,
      schema: { body: RebuildRequestSchema, response: { 202: RebuildResponseSchema } },
      handler: async (req, reply) => {
        const purl = canonicalPurl((req.body as RebuildRequest).purl, 'purl')
        const rebuilds = ctx.components.rebuilds
        if (rebuilds === undefined) throw new RbqError('BUILDER_UNAVAILABLE', 'this node does not rebuild (no scheduler is running)')
        // A version-less Debian purl answers with the version it resolved to.
        const { purl: queued = purl, status, detail } = await rebuilds.requestRebuild(purl)
        const body: RebuildResponse = detail === undefined ? { purl: queued, status } : { purl: queued, status, detail }
        return reply.code(202).send(body)
      }
    }
  ]
}
