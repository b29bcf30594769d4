/** POST /v1/rebuilds: ask this node's scheduler to rebuild a package. */
import { RebuildRequestSchema, RebuildResponseSchema, type RebuildRequest, type RebuildResponse } from '../../../protocol/api.js'
import { canonicalPurl, RbqError } from '../../../protocol/index.js'
import type { ApiContext, ApiRoute } from '../context.js'

export function rebuildRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    {
      method: 'POST',
      url: '/v1/rebuilds',
      summary: 'queue a rebuild of a package (purl) on this node, or ask the network (scope: network)',
      auth: true,
      schema: { body: RebuildRequestSchema, response: { 202: RebuildResponseSchema } },
      handler: async (req, reply) => {
        const asked = req.body as RebuildRequest
        const purl = canonicalPurl(asked.purl, 'purl')
        if (asked.scope === 'network') {
          const askNetwork = ctx.components.askNetwork
          if (askNetwork === undefined) throw new RbqError('API_UNAVAILABLE', 'this node has no network to ask')
          const { recipients, local } = await askNetwork(purl)
          const here = local === undefined ? 'this node does not rebuild' : `this node: ${local.status} (${local.detail})`
          const sent: RebuildResponse = { purl, status: 'requested', detail: `sent to ${recipients} ${recipients === 1 ? 'peer' : 'peers'}; ${here}` }
          return reply.code(202).send(sent)
        }
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
