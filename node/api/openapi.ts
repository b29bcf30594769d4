/**
 * /openapi.json: an OpenAPI 3.1 document generated from the routes' own TypeBox schemas (the
 * ones the server validates with), so the description cannot drift from the behaviour.
 * TypeBox schemas are JSON Schema 2020-12, which OpenAPI 3.1 uses as is.
 */
import type { TSchema } from '@sinclair/typebox'
import { ApiErrorSchema, MEDIA_JSON } from '../../protocol/api.js'
import type { ApiRoute } from './context.js'

/** Plain JSON Schema (drops TypeBox's symbol-keyed metadata). */
const plain = (s: TSchema): Record<string, unknown> => JSON.parse(JSON.stringify(s)) as Record<string, unknown>

function parameters(schema: TSchema | undefined, where: 'query' | 'path'): unknown[] {
  if (schema === undefined) return []
  const s = plain(schema) as { properties?: Record<string, Record<string, unknown>>; required?: string[] }
  return Object.entries(s.properties ?? {}).map(([name, prop]) => {
    const { description, ...rest } = prop
    return { name, in: where, required: where === 'path' || (s.required ?? []).includes(name), ...(description === undefined ? {} : { description }), schema: rest }
  })
}

const ERROR_STATUSES: Record<string, string> = {
  '400': 'bad input; `error.field` names the offending field',
  '401': 'write route without the bearer token',
  '404': 'unknown route or object',
  '413': 'body over the route\'s size limit',
  '415': 'unsupported content type',
  '500': 'internal error'
}

export function openApiDocument(routes: readonly ApiRoute[], info: { version: string; url: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  const errorContent = { [MEDIA_JSON]: { schema: { $ref: '#/components/schemas/Error' } } }
  for (const r of routes) {
    const path = r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
    const responses: Record<string, unknown> = {}
    for (const [status, schema] of Object.entries(r.schema.response ?? {})) {
      responses[status] = { description: 'success', content: { [r.produces ?? MEDIA_JSON]: { schema: plain(schema) } } }
    }
    if (Object.keys(responses).length === 0) responses['200'] = { description: 'success', content: { [r.produces ?? MEDIA_JSON]: {} } }
    for (const [status, description] of Object.entries(ERROR_STATUSES)) {
      if (status === '401' && r.auth !== true) continue
      if ((status === '413' || status === '415') && r.schema.body === undefined) continue
      responses[status] = { description, content: errorContent }
    }
    const op: Record<string, unknown> = {
      summary: r.summary,
      operationId: `${r.method.toLowerCase()}${path.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
      parameters: [...parameters(r.schema.params, 'path'), ...parameters(r.schema.querystring, 'query')],
      responses
    }
    if (r.schema.body !== undefined) {
      const content: Record<string, unknown> = {}
      for (const media of r.raw === undefined ? [MEDIA_JSON] : Object.keys(r.raw)) content[media] = { schema: plain(r.schema.body) }
      op.requestBody = { required: true, content }
    }
    // Every operation says what it needs: the token, or explicitly nothing (`[]`), so linters
    // and generated clients do not guess.
    op.security = r.auth === true ? [{ bearer: [] }] : []
    ;(paths[path] ??= {})[r.method.toLowerCase()] = op
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'rebuild-quorum node API',
      version: info.version,
      description: 'Local API of an rbq node (127.0.0.1 by default). Write routes need `Authorization: Bearer <token>`, the token being in `<data dir>/api.token`.'
    },
    servers: [{ url: info.url }],
    paths,
    components: {
      schemas: { Error: plain(ApiErrorSchema) },
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: '64 hex characters from <data dir>/api.token' } }
    }
  }
}
