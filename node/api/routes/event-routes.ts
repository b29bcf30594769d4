/** GET /v1/events: server-sent events (events.ts). */
import { Type } from '@sinclair/typebox'
import { EVENT_TYPES, type ApiEventType } from '../../../protocol/api.js'
import { RbqError } from '../../../protocol/index.js'
import type { ApiContext, ApiRoute } from '../context.js'

const EventsQuerySchema = Type.Object(
  {
    types: Type.Optional(
      Type.String({ pattern: `^(${EVENT_TYPES.join('|')})(,(${EVENT_TYPES.join('|')}))*$`, description: `comma-separated subset of ${EVENT_TYPES.join(', ')}` })
    )
  },
  { additionalProperties: false }
)

export function eventRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    {
      method: 'GET',
      url: '/v1/events',
      summary: 'server-sent events: attestation/delegation/equivocation (new frames), verdict (watched artifacts); `: heartbeat` comments',
      schema: { querystring: EventsQuerySchema },
      produces: 'text/event-stream',
      handler: async (req, reply) => {
        const { types } = req.query as { types?: string }
        const set = types === undefined ? undefined : new Set(types.split(',') as ApiEventType[])
        const last = req.headers['last-event-id']
        if (Array.isArray(last)) throw new RbqError('SCHEMA_INVALID', 'last-event-id: give one', { field: 'last-event-id' })
        ctx.events.checkCapacity()
        reply.hijack()
        ctx.events.attach(reply.raw, set, last)
      }
    }
  ]
}
