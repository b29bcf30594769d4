/**
 * Statements the node signs with its own key for the CLI (ARCHITECTURE.md, "One signer"), through
 * its Publisher and so its StatementSigner; the CLI never signs with the node's key, nor reserves
 * one of its seqs, while the node runs:
 * - POST /v1/rebuild-results (`rbq rebuild --publish`): the statement's content without
 *   `builder`; the signer fills it in (key id, next seq, software).
 * - POST /v1/delegations (`rbq delegate`, `rbq revoke`): the delegation without `delegator`.
 * Both check the content as receivers would before anything is signed, stored or a seq reserved,
 * and refuse a `signer` other than the node's key (409 SIGNER_MISMATCH: the CLI then signs
 * with that key itself).
 */
import {
  contentOfDelegationRequest,
  contentOfRebuildResultRequest,
  DelegationRequestSchema,
  RebuildResultRequestSchema,
  SignedStatementSchema,
  type DelegationRequest,
  type RebuildResultRequest,
  type SignedStatement
} from '../../../protocol/api.js'
import { frameText, RbqError, type VerifiedFrame } from '../../../protocol/index.js'
import type { ApiContext, ApiPublisher, ApiRoute } from '../context.js'

export function signedStatement(frame: VerifiedFrame, status: SignedStatement['status'] = 'stored'): SignedStatement {
  return {
    status,
    id: frame.id,
    kind: frame.kind,
    signer: frame.signer.keyid,
    ...(frame.kind === 'attestation' ? { seq: frame.statement.predicate.builder.seq } : {}),
    frame: JSON.parse(frameText(frame.bytes)) as unknown
  }
}

/** The node's publisher, when the request may use it: running, and `signer` (if given) is the node's key. */
function publisherFor(ctx: ApiContext, signer: string | undefined): ApiPublisher {
  const publisher = ctx.components.publisher
  if (publisher === undefined) throw new RbqError('API_UNAVAILABLE', 'this node has no publisher running: it cannot sign')
  if (signer !== undefined && signer !== publisher.keyid) {
    throw new RbqError('SIGNER_MISMATCH', `this node signs with key ${publisher.keyid}, not ${signer}`, { field: 'signer' })
  }
  return publisher
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
        const body = req.body as RebuildResultRequest
        const publisher = publisherFor(ctx, body.signer)
        // Checked (size, schema, semantics) before a seq is reserved: bad input burns no seq.
        const frame = await publisher.attest(contentOfRebuildResultRequest(body))
        const seq = frame.statement.predicate.builder.seq
        ctx.components.logger?.info({ id: frame.id, seq, package: frame.statement.predicate.package }, 'signed and published a rebuild result sent through the API')
        return reply.code(201).send(signedStatement(frame))
      }
    },
    {
      method: 'POST',
      url: '/v1/delegations',
      summary: "sign a delegation (or revocation) from this node's key and publish it: stored here and gossiped",
      auth: true,
      schema: { body: DelegationRequestSchema, response: { 200: SignedStatementSchema, 201: SignedStatementSchema } },
      handler: async (req, reply) => {
        const body = req.body as DelegationRequest
        const publisher = publisherFor(ctx, body.signer)
        // Checked (schema, semantics, expiry) before it is signed: bad input stores nothing.
        const { frame, status } = await publisher.delegate(contentOfDelegationRequest(body))
        const s = frame.statement
        ctx.components.logger?.info({ id: frame.id, status, delegate: s.delegate.keyid, version: s.version, revoked: s.revoked }, 'signed and published a delegation sent through the API')
        return reply.code(status === 'stored' ? 201 : 200).send(signedStatement(frame, status))
      }
    }
  ]
}
