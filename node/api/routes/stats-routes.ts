/** GET /v1/stats: statistics of the network from the attestations this node holds (node/rebuild/rebuild-stats.ts). */
import { NetworkStatsSchema, StatsQuerySchema, type NetworkStats, type StatsQuery } from '../../../protocol/api.js'
import { RbqError } from '../../../protocol/index.js'
import { networkStats, type NetworkStatsInit } from '../../rebuild/rebuild-stats.js'
import type { ApiContext, ApiRoute } from '../context.js'

export function statsRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    {
      method: 'GET',
      url: '/v1/stats',
      summary: 'source packages of a distribution (and suite) rebuilt, by how many parties, reproduced, unreproducible by cause tag, failed',
      schema: { querystring: StatsQuerySchema, response: { 200: NetworkStatsSchema } },
      handler: async (req): Promise<NetworkStats> => {
        const query = req.query as StatsQuery
        const init: NetworkStatsInit = { distribution: query.distribution ?? 'debian' }
        if (query.suite !== undefined) {
          const suites = ctx.components.debianSuite
          if (suites === undefined) throw new RbqError('BUILDER_UNAVAILABLE', 'this node reads no Debian archive indexes: ask without a suite')
          init.suite = await suites(query.suite)
        }
        try {
          const graph = await ctx.verdicts.trust()
          init.buildersFor = (purl) => graph.buildersFor(purl)
        } catch (e) {
          init.policyError = (e as Error).message
        }
        return networkStats(ctx.components.store, init)
      }
    }
  ]
}
