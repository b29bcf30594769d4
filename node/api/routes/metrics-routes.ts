/** GET /metrics (Prometheus text from the node's registry) and GET /openapi.json. */
import { Type } from '@sinclair/typebox'
import type { ApiContext, ApiRoute } from '../context.js'

export function metricsRoutes(ctx: ApiContext, openapi: () => unknown): ApiRoute[] {
  return [
    {
      method: 'GET',
      url: '/metrics',
      summary: 'Prometheus metrics (rbq_* and libp2p_*)',
      schema: { response: { 200: Type.String() } },
      produces: 'text/plain; version=0.0.4',
      handler: async (_req, reply) => {
        const metrics = ctx.components.metrics
        if (metrics === undefined) return reply.type('text/plain; version=0.0.4').send('')
        return reply.type(metrics.contentType).send(await metrics.text())
      }
    },
    {
      method: 'GET',
      url: '/openapi.json',
      summary: 'this API described as OpenAPI 3.1',
      schema: { response: { 200: Type.Unknown() } },
      handler: async () => openapi()
    }
  ]
}
