/**
 * POST /v1/rebuild-results: the node signs a rebuild result with its own key and publishes it
 * (`rbq rebuild --publish` while the node runs). The body is the statement's content without
 * `builder`; the node's StatementSigner fills it in (key id, next seq, software) through the
 * Publisher, so the CLI never reserves a seq of the node's key while the node runs
 * (ARCHITECTURE.md, "One signer").
 */
import {
  contentOfRebuildResultRequest,
  RebuildResultRequestSchema,
  SignedStatementSchema,
  type RebuildResultRequest,
  type SignedStatement
} from '../../../protocol/api.js'
import { frameText, RbqError, type AttestationFrame } from '../../../protocol/index.js'
import type { ApiContext, ApiRoute } from '../context.js'

export function signedStatement(frame: AttestationFrame): SignedStatement {
  return {
    status: 'stored',
    id: frame.id,
    kind: frame.kind,
    signer: frame.signer.keyid,
    seq: frame.statement.predicate.builder.seq,
    frame: JSON.parse(frameText(frame.bytes)) as unknown
  }
}

export function statementRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    {
      method: 'POST',
      url: '/v1/rebuild-results',
      summary: "sign a rebuild result with this node's key (its next seq) and publish it: stored here and gossiped",
      auth: true,
      schema: { body: RebuildResultRequestSchema, response: { 201: SignedStatementSchema } },
      handler: async (req, reply) => {
        const publisher = ctx.components.publisher
        if (publisher === undefined) throw new RbqError('API_UNAVAILABLE', 'this node has no publisher running: it cannot sign')
        const body = req.body as RebuildResultRequest
        if (body.signer !== undefined && body.signer !== publisher.keyid) {
          throw new RbqError('SIGNER_MISMATCH', `this node signs with key ${publisher.keyid}, not ${body.signer}`, { field: 'signer' })
        }
        // Checked (size, schema, semantics) before a seq is reserved: bad input burns no seq.
        const frame = await publisher.attest(contentOfRebuildResultRequest(body))
        const seq = frame.statement.predicate.builder.seq
        ctx.components.logger?.info({ id: frame.id, seq, package: frame.statement.predicate.package }, 'signed and published a rebuild result sent through the API')
        return reply.code(201).send(signedStatement(frame))
      }
    }
  ]
}
