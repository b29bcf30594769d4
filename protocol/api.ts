/**
 * The local HTTP API (`/v1`): request and response types, their TypeBox (JSON Schema) forms,
 * limits, and the error ↔ HTTP status mapping. Shared by the server (node/api/) and the typed
 * client (client/api-client.ts); pure, no I/O. node/api/README.md describes the routes.
 *
 * The verdict types mirror node/consensus/verdict.ts field for field: the server assigns the
 * engine's values to these types, so the compiler catches a field the engine renames, drops or
 * retypes (a field it adds is served but missing here and in /openapi.json until added).
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { parsePublicKey } from './keys.js'
import { BUILD_ENVIRONMENTS, DelegationStatementSchema, REBUILD_OUTCOMES, Sha256Hex, type AttestationContent, type DelegationContent } from './statements.js'
import { RbqError, type ErrorCode } from './errors.js'

// --- addresses and limits ------------------------------------------------------------------

export const DEFAULT_API_HOST = '127.0.0.1'
export const DEFAULT_API_PORT = 4778
export const DEFAULT_API_URL = `http://${DEFAULT_API_HOST}:${DEFAULT_API_PORT}`

/** Most artifacts in one POST /v1/verdicts or POST /v1/watch. */
export const API_MAX_BATCH = 10_000
/** Body limit of batch routes (10k queries of ~250 bytes fit with room to spare). */
export const API_MAX_BATCH_BODY_BYTES = 8 * 1024 * 1024
/** Body limit of POST /v1/attestations with one frame (`application/json`): a frame plus a final LF. */
export const API_MAX_FRAME_BODY_BYTES = 64 * 1024 + 1
/** Body limit of POST /v1/attestations with JSON lines (`application/x-ndjson`). */
export const API_MAX_FRAMES_BODY_BYTES = 8 * 1024 * 1024
/** Most frames in one JSON-lines submission. */
export const API_MAX_FRAMES_PER_SUBMIT = 4096
/** Body limit of every other JSON route. */
export const API_MAX_BODY_BYTES = 256 * 1024
/** Largest policy text accepted in a request. */
export const API_MAX_POLICY_BYTES = 128 * 1024
/** Page size of GET /v1/attestations. */
export const API_DEFAULT_PAGE = 100
export const API_MAX_PAGE = 1000

/** Media types of POST /v1/attestations. */
export const MEDIA_JSON = 'application/json'
export const MEDIA_NDJSON = 'application/x-ndjson'

// --- errors --------------------------------------------------------------------------------

const strict = { additionalProperties: false } as const

export const ApiErrorSchema = Type.Object(
  {
    error: Type.Object(
      {
        code: Type.String({ description: 'RbqError code (protocol/errors.ts): stable, safe to match on' }),
        message: Type.String(),
        field: Type.Optional(Type.String({ description: 'the offending field, e.g. `artifacts[3].sha256`' }))
      },
      strict
    )
  },
  strict
)
export type ApiErrorBody = Static<typeof ApiErrorSchema>

/** HTTP status of an error code; anything unlisted is the server's fault (500). */
const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  INPUT_TOO_LARGE: 413,
  JSON_MALFORMED: 400,
  NOT_CANONICAL: 400,
  SCHEMA_INVALID: 400,
  VERSION_UNSUPPORTED: 400,
  BASE64_INVALID: 400,
  PAYLOAD_TYPE_UNKNOWN: 400,
  PURL_INVALID: 400,
  PATTERN_INVALID: 400,
  KEY_INVALID: 400,
  KEY_SMALL_ORDER: 400,
  KEYID_MISMATCH: 400,
  SIGNATURE_INVALID: 400,
  EQUIVOCATION_INVALID: 400,
  POLICY_INVALID: 400,
  USAGE: 400,
  UNAUTHORIZED: 401,
  SIGNER_MISMATCH: 409,
  NOT_FOUND: 404,
  UNSUPPORTED_MEDIA_TYPE: 415,
  QUOTA_EXCEEDED: 429,
  QUEUE_FULL: 503,
  BUILDER_UNAVAILABLE: 503,
  API_UNAVAILABLE: 503,
  REQUEST_TIMEOUT: 408,
  HOST_NOT_ALLOWED: 421,
  ORIGIN_NOT_ALLOWED: 403,
  URI_TOO_LONG: 414,
  HEADERS_TOO_LARGE: 431,
  HTTP_MALFORMED: 400
}

export function httpStatusOf(code: ErrorCode): number {
  return STATUS_BY_CODE[code] ?? 500
}

// --- shared pieces ---------------------------------------------------------------------------

const KeyIdHex = Type.String({ pattern: '^[0-9a-f]{64}$' })
const FrameIdHex = KeyIdHex
const Count = Type.Integer({ minimum: 0 })
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()])
/** Any spelling of a purl; the server canonicalises it (PURL_INVALID otherwise). */
const PurlParam = Type.String({ minLength: 1, maxLength: 512, description: 'package URL, e.g. pkg:deb/debian/hello@2.10-3?arch=source' })
/** A file name as in attestation subjects. */
const ArtifactParam = Type.String({ minLength: 1, maxLength: 255, pattern: '^(?!\\.{1,2}$)[^/\\\\\\u0000-\\u001f\\u007f]+$', description: 'artifact file name, e.g. hello_2.10-3_amd64.deb' })
/** Upper or lower case accepted; answers use lower case. */
const Sha256Param = Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'SHA-256 of the file in hand (hex)' })
const PolicyText = Type.String({ minLength: 1, maxLength: API_MAX_POLICY_BYTES, description: 'a trust policy in TOML (node/consensus/README.md); replaces the node policy for this request' })
const FrameObject = Type.Unknown({ description: 'a frame `{ v, publicKey, envelope }` (its JCS bytes are the stored bytes)' })

export const STATEMENT_KINDS = ['attestation', 'delegation', 'equivocation'] as const
const KindSchema = Type.Union(STATEMENT_KINDS.map((k) => Type.Literal(k)))

// --- verdicts (mirror node/consensus/verdict.ts) --------------------------------------------

export const API_VERDICT_STATUSES = ['reproduced', 'unreproducible', 'mismatch', 'conflict', 'insufficient', 'failed', 'unknown'] as const
export type ApiVerdictStatus = (typeof API_VERDICT_STATUSES)[number]
export const VerdictStatusSchema = Type.Union(API_VERDICT_STATUSES.map((s) => Type.Literal(s)))
/** How a trusted claim stands towards the file's digest (node/consensus/README.md). */
export const API_CLAIM_STANCES = ['supports', 'contradicts', 'drift'] as const

const PartyKeySchema = Type.Object({ party: Type.String(), keyid: KeyIdHex }, strict)
const KeyClaimSchema = Type.Object(
  {
    keyid: KeyIdHex,
    party: Type.String(),
    parties: Type.Array(Type.String()),
    sha256: Nullable(Sha256Hex),
    upstream: Nullable(Sha256Hex),
    outcome: Type.Union(REBUILD_OUTCOMES.map((o) => Type.Literal(o))),
    environment: Type.Union(BUILD_ENVIRONMENTS.map((e) => Type.Literal(e))),
    stance: Nullable(Type.Union(API_CLAIM_STANCES.map((c) => Type.Literal(c)), { description: 'towards the file\'s digest; null for a key that only reports failures' })),
    tags: Type.Array(Type.String()),
    summary: Nullable(Type.String()),
    seq: Type.Integer({ minimum: 1 }),
    inputs: Sha256Hex,
    frame: FrameIdHex
  },
  strict
)
const DigestSupportSchema = Type.Object({ sha256: Sha256Hex, have: Count, support: Type.Array(PartyKeySchema) }, strict)
const ClaimAtSchema = Type.Object({ sha256: Nullable(Sha256Hex), seq: Type.Integer({ minimum: 1 }), inputs: Sha256Hex, frame: FrameIdHex }, strict)
const FlipSchema = Type.Object({ keyid: KeyIdHex, party: Type.String(), from: ClaimAtSchema, to: ClaimAtSchema, sameInputs: Type.Boolean() }, strict)

export const VerdictEvidenceSchema = Type.Object(
  {
    package: Type.String(),
    artifact: Type.String(),
    sha256: Sha256Hex,
    count: Type.Union([Type.Literal('party'), Type.Literal('key')]),
    need: Count,
    have: Count,
    dissenting: Count,
    drifted: Count,
    maxDissent: Count,
    support: Type.Array(PartyKeySchema),
    dissent: Type.Array(DigestSupportSchema),
    failed: Type.Array(PartyKeySchema),
    inputs: Type.Array(Sha256Hex),
    tags: Type.Array(Type.String()),
    flips: Type.Array(FlipSchema),
    equivocators: Type.Array(KeyIdHex),
    claims: Type.Array(KeyClaimSchema),
    frames: Type.Array(FrameIdHex),
    truncated: Type.Boolean()
  },
  strict
)

/** The verdict for one (package, artifact, sha256), with its evidence. */
export const ArtifactVerdictSchema = Type.Object(
  {
    status: VerdictStatusSchema,
    reason: Type.String({ description: 'one line for humans' }),
    evidence: VerdictEvidenceSchema,
    evidenceHash: Sha256Hex
  },
  strict
)
export type ArtifactVerdict = Static<typeof ArtifactVerdictSchema>

/**
 * One verdict question. `sha256` is required. With `package` and `artifact` the verdict is for
 * that artifact (other trusted parties agreeing on another digest → `mismatch`). With one or
 * neither, the (package, artifact) pairs attested with this digest are looked up (filtered by
 * the one given); none → `unknown`.
 */
/** A question about one file: this sha256, as this artifact (a .deb's file name) of this package (purl). */
export interface ArtifactQuery {
  readonly package: string
  readonly artifact: string
  readonly sha256: string
}

export const VerdictQuerySchema = Type.Object(
  { sha256: Sha256Param, package: Type.Optional(PurlParam), artifact: Type.Optional(ArtifactParam) },
  strict
)
export type VerdictQuery = Static<typeof VerdictQuerySchema>

/**
 * How much of each verdict an answer carries. `full` (the default, for single verdicts and
 * batches alike, so an answer's shape never changes under an existing client): status, reason,
 * evidence and evidenceHash. `brief`: status, reason, evidenceHash and the (package, artifact)
 * judged — what an install gate needs; the evidence behind a hash is asked again with `full`
 * (the same question gives the same hash while nothing changed).
 */
export const VERDICT_EVIDENCE_MODES = ['full', 'brief'] as const
export type VerdictEvidenceMode = (typeof VERDICT_EVIDENCE_MODES)[number]
const EvidenceModeSchema = Type.Union(VERDICT_EVIDENCE_MODES.map((m) => Type.Literal(m)), {
  description: 'full (default): each verdict with its evidence; brief: status, reason and evidenceHash only'
})

/** GET /v1/verdict: the question and how much to answer. */
export const VerdictGetQuerySchema = Type.Object({ ...VerdictQuerySchema.properties, evidence: Type.Optional(EvidenceModeSchema) }, strict)
export type VerdictGetQuery = Static<typeof VerdictGetQuerySchema>

/**
 * Answer to one question: the worst status of `verdicts` (severity order: node/consensus/README.md) and its
 * reason; `verdicts` holds one entry per (package, artifact) considered, sorted.
 */
export const VerdictResultSchema = Type.Object(
  {
    query: Type.Object({ sha256: Sha256Hex, package: Type.Optional(Type.String()), artifact: Type.Optional(Type.String()) }, strict),
    status: VerdictStatusSchema,
    reason: Type.String(),
    verdicts: Type.Array(ArtifactVerdictSchema)
  },
  strict
)
export type VerdictResult = Static<typeof VerdictResultSchema>

/** A verdict without its evidence (`evidence: "brief"`): the same status, reason and evidenceHash as the full one. */
export const BriefVerdictSchema = Type.Object(
  { package: Type.String(), artifact: Type.String(), status: VerdictStatusSchema, reason: Type.String(), evidenceHash: Sha256Hex },
  strict
)

export const BriefVerdictResultSchema = Type.Object(
  { query: VerdictResultSchema.properties.query, status: VerdictStatusSchema, reason: Type.String(), verdicts: Type.Array(BriefVerdictSchema) },
  strict
)
export type BriefVerdictResult = Static<typeof BriefVerdictResultSchema>

export const VerdictsRequestSchema = Type.Object(
  {
    artifacts: Type.Array(VerdictQuerySchema, { minItems: 1, maxItems: API_MAX_BATCH }),
    policy: Type.Optional(PolicyText),
    evidence: Type.Optional(EvidenceModeSchema)
  },
  strict
)
export type VerdictsRequest = Static<typeof VerdictsRequestSchema>

export const VerdictsResponseSchema = Type.Object(
  { results: Type.Array(Type.Union([VerdictResultSchema, BriefVerdictResultSchema]), { description: 'in request order; brief results with `evidence: "brief"`' }) },
  strict
)
export type VerdictsResponse = Static<typeof VerdictsResponseSchema>

// --- status and peers ------------------------------------------------------------------------

export const SYNC_STATES = ['off', 'idle', 'catching-up'] as const

export const StatusResponseSchema = Type.Object(
  {
    version: Type.String(),
    software: Type.String({ description: 'builder.software of this node, e.g. rebuild-quorum/0.1.0' }),
    keyid: Nullable(KeyIdHex),
    publicKey: Nullable(Type.String()),
    peerId: Nullable(Type.String()),
    listen: Type.Array(Type.String(), { description: 'p2p multiaddrs' }),
    api: Type.String({ description: 'base URL of this API' }),
    dataDir: Type.String(),
    startedAt: Type.String(),
    uptimeSeconds: Count,
    frames: Type.Object({ attestation: Count, delegation: Count, equivocation: Count }, strict),
    peers: Count,
    sync: Type.Object(
      {
        state: Type.Union(SYNC_STATES.map((s) => Type.Literal(s))),
        detail: Type.Optional(Type.String()),
        progress: Type.Optional(Type.Object({ done: Count, total: Count }, strict))
      },
      strict
    ),
    scheduler: Nullable(
      Type.Object(
        {
          queued: Count,
          running: Count,
          detail: Type.Optional(Type.String()),
          jobs: Type.Optional(
            Type.Array(
              Type.Object(
                {
                  purl: Type.String(),
                  phase: Type.String({ description: 'builder phase: fetch, verify, buildroot, build, compare, diff, done (starting before the first)' }),
                  message: Type.Optional(Type.String({ description: 'what the builder last said' })),
                  elapsedSeconds: Count,
                  attempt: Type.Integer({ minimum: 1 })
                },
                strict
              ),
              { description: 'the running jobs' }
            )
          ),
          feeds: Type.Optional(
            Type.Array(
              Type.Object({ feed: Type.String(), entries: Count, sampled: Count, polledAt: Type.String() }, strict),
              { description: 'each feed at its last poll: entries listed, and the sampled share this node rebuilds' }
            )
          ),
          done: Type.Optional(
            Type.Object(
              { reproduced: Count, mismatch: Count, failed: Count, built: Count, error: Count },
              { ...strict, description: 'purls with a final result, by attested outcome (failed: the build failed, attested); error: given up without an attestation' }
            )
          ),
          etaSeconds: Type.Optional(Nullable(Type.Integer({ minimum: 0, description: 'until the queue is empty at the recent pace; null until a rebuild of this process ended' }))),
          recentSeconds: Type.Optional(Nullable(Type.Integer({ minimum: 0, description: 'mean duration of the recent rebuild attempts' })))
        },
        { ...strict, description: 'null when this node does not rebuild' }
      )
    ),
    policy: Type.Object(
      {
        file: Type.String(),
        loaded: Type.Boolean(),
        error: Type.Optional(Type.String()),
        threshold: Type.Optional(Count),
        count: Type.Optional(Type.String()),
        roots: Type.Optional(Type.Array(Type.Object({ name: Type.String(), keyid: KeyIdHex }, strict)))
      },
      strict
    ),
    watched: Count
  },
  strict
)
export type StatusResponse = Static<typeof StatusResponseSchema>

export const PeerInfoSchema = Type.Object(
  {
    peerId: Type.String(),
    addrs: Type.Array(Type.String()),
    direction: Type.Union([Type.Literal('inbound'), Type.Literal('outbound')]),
    openedAt: Nullable(Type.String()),
    streams: Count
  },
  strict
)
export type PeerInfo = Static<typeof PeerInfoSchema>
export const PeersResponseSchema = Type.Object({ peers: Type.Array(PeerInfoSchema) }, strict)
export type PeersResponse = Static<typeof PeersResponseSchema>

// --- attestations (frames) -------------------------------------------------------------------

/**
 * Exactly one of package, sha256, builder (attestations) or delegate (delegations naming that
 * key); `cursor` is the `next` of the previous page.
 */
export const AttestationsQuerySchema = Type.Object(
  {
    package: Type.Optional(PurlParam),
    sha256: Type.Optional(Sha256Param),
    builder: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'builder key id (hex)' })),
    delegate: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'delegate key id (hex): the delegations to this key' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: API_MAX_PAGE, default: API_DEFAULT_PAGE })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9_-]+$' }))
  },
  strict
)
export type AttestationsQuery = Static<typeof AttestationsQuerySchema>

export const StoredFrameSchema = Type.Object(
  { id: FrameIdHex, kind: KindSchema, signer: KeyIdHex, frame: FrameObject },
  strict
)
export type StoredFrame = Static<typeof StoredFrameSchema>

export const AttestationsPageSchema = Type.Object(
  { items: Type.Array(StoredFrameSchema), next: Nullable(Type.String({ description: 'cursor of the next page; null on the last page' })) },
  strict
)
export type AttestationsPage = Static<typeof AttestationsPageSchema>

export const FrameIdParamsSchema = Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{64}$' }) }, strict)

export const SUBMIT_STATUSES = ['stored', 'duplicate', 'rejected'] as const

/** Result of one submitted frame; `error` when rejected. */
export const SubmitResultSchema = Type.Object(
  {
    id: Type.Optional(FrameIdHex),
    kind: Type.Optional(KindSchema),
    status: Type.Union(SUBMIT_STATUSES.map((s) => Type.Literal(s))),
    error: Type.Optional(ApiErrorSchema.properties.error)
  },
  strict
)
export type SubmitResult = Static<typeof SubmitResultSchema>
export const SubmitManyResponseSchema = Type.Object({ results: Type.Array(SubmitResultSchema, { description: 'one per line, in order' }) }, strict)
export type SubmitManyResponse = Static<typeof SubmitManyResponseSchema>

// --- statements the node signs --------------------------------------------------------------

/** RFC 3339 in UTC, as statements carry them (seconds are kept; a fraction is dropped when signed). */
const UtcTimestamp = Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?Z$', description: 'RFC 3339 in UTC, e.g. 2025-01-31T12:00:00Z' })
const LowerSha256 = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256 (lower-case hex)' })
const NamedDigest = Type.Object({ name: ArtifactParam, sha256: LowerSha256 }, strict)

/**
 * POST /v1/rebuild-results: a rebuild result for the node to sign with its key and publish
 * (`rbq rebuild --publish`). The statement's content without `builder`: the node adds its key id,
 * its next seq and its software version (protocol/statements.ts AttestationContent).
 */
export const RebuildResultRequestSchema = Type.Object(
  {
    package: PurlParam,
    outcome: Type.Union(REBUILD_OUTCOMES.map((o) => Type.Literal(o))),
    environment: Type.Optional(Type.Union(BUILD_ENVIRONMENTS.map((e) => Type.Literal(e)))),
    subject: Type.Array(NamedDigest, { minItems: 1, maxItems: 64, description: 'what was built (for `failed`: the source)' }),
    upstream: Type.Array(NamedDigest, { maxItems: 64, description: 'what it was compared with' }),
    inputs: Type.Object(
      { sha256: LowerSha256, materials: Type.Array(Type.Object({ uri: Type.String({ minLength: 1, maxLength: 1024 }), sha256: LowerSha256 }, strict), { maxItems: 64 }) },
      strict
    ),
    backend: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,31}$', description: 'the builder, e.g. debian or recipe' }),
    signer: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$', description: 'the key id the client means to sign with: refused with 409 SIGNER_MISMATCH when it is not the node\'s key' })),
    startedOn: UtcTimestamp,
    finishedOn: UtcTimestamp,
    log: Type.Optional(Type.Object({ sha256: LowerSha256, size: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }) }, strict)),
    diff: Type.Optional(
      Type.Object({ tags: Type.Array(Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,31}$' }), { maxItems: 16 }), summary: Type.String({ maxLength: 2048 }) }, strict)
    )
  },
  strict
)
export type RebuildResultRequest = Static<typeof RebuildResultRequestSchema>

/**
 * A statement the node signed and stored (POST /v1/rebuild-results, POST /v1/delegations): the
 * frame as stored, and the seq it used (attestations). `duplicate`: the identical frame was stored
 * already (a delegation signed again with the same content).
 */
export const SignedStatementSchema = Type.Object(
  {
    status: Type.Union([Type.Literal('stored'), Type.Literal('duplicate')]),
    id: FrameIdHex,
    kind: KindSchema,
    signer: KeyIdHex,
    seq: Type.Optional(Type.Integer({ minimum: 1, description: 'builder.seq of an attestation' })),
    frame: FrameObject
  },
  strict
)
export type SignedStatement = Static<typeof SignedStatementSchema>

/** The request body of an attestation's content (dates as RFC 3339). */
export function rebuildResultRequestOf(content: AttestationContent): RebuildResultRequest {
  const body: RebuildResultRequest = {
    package: content.package,
    outcome: content.outcome,
    subject: content.subject.map((a) => ({ name: a.name, sha256: a.sha256 })),
    upstream: content.upstream.map((a) => ({ name: a.name, sha256: a.sha256 })),
    inputs: { sha256: content.inputs.sha256, materials: content.inputs.materials.map((m) => ({ uri: m.uri, sha256: m.sha256 })) },
    backend: content.backend,
    startedOn: content.startedOn.toISOString(),
    finishedOn: content.finishedOn.toISOString()
  }
  if (content.environment !== undefined) body.environment = content.environment
  if (content.log !== undefined) body.log = { sha256: content.log.sha256, size: content.log.size }
  if (content.diff !== undefined) body.diff = { tags: [...content.diff.tags], summary: content.diff.summary }
  return body
}

/** An attestation's content from a request body the schema accepted; SCHEMA_INVALID for a date that does not exist. */
export function contentOfRebuildResultRequest(body: RebuildResultRequest): AttestationContent {
  const date = (field: 'startedOn' | 'finishedOn'): Date => {
    const d = new Date(body[field])
    if (Number.isNaN(d.getTime())) throw new RbqError('SCHEMA_INVALID', `${field}: not a real date`, { field })
    return d
  }
  const content: AttestationContent = {
    package: body.package,
    outcome: body.outcome,
    subject: body.subject.map((a) => ({ name: a.name, sha256: a.sha256 })),
    upstream: body.upstream.map((a) => ({ name: a.name, sha256: a.sha256 })),
    inputs: { sha256: body.inputs.sha256, materials: body.inputs.materials.map((m) => ({ uri: m.uri, sha256: m.sha256 })) },
    backend: body.backend,
    startedOn: date('startedOn'),
    finishedOn: date('finishedOn')
  }
  if (body.environment !== undefined) content.environment = body.environment
  if (body.log !== undefined) content.log = { sha256: body.log.sha256, size: body.log.size }
  if (body.diff !== undefined) content.diff = { tags: [...body.diff.tags], summary: body.diff.summary }
  return content
}

/**
 * POST /v1/delegations: a delegation (or revocation) for the node to sign with its key and
 * publish (`rbq delegate`, `rbq revoke`). The statement without `delegator`, which is the node's
 * key, and with the delegate as its public key (the node derives the key id). No seq: the version
 * orders delegations from one key to one delegate (the newest wins).
 */
export const DelegationRequestSchema = Type.Object(
  {
    delegate: Type.String({ minLength: 1, maxLength: 64, description: "the delegate's public key, ed25519:…" }),
    name: DelegationStatementSchema.properties.name,
    scope: DelegationStatementSchema.properties.scope,
    maxDepth: DelegationStatementSchema.properties.maxDepth,
    version: DelegationStatementSchema.properties.version,
    expires: UtcTimestamp,
    revoked: Type.Boolean(),
    signer: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$', description: 'the key id the client means to sign with: refused with 409 SIGNER_MISMATCH when it is not the node\'s key' }))
  },
  strict
)
export type DelegationRequest = Static<typeof DelegationRequestSchema>

/** The request body of a delegation's content (expiry as RFC 3339). */
export function delegationRequestOf(content: DelegationContent): DelegationRequest {
  return {
    delegate: content.delegate.publicKey,
    name: content.name,
    scope: [...content.scope],
    maxDepth: content.maxDepth,
    version: content.version,
    expires: content.expires.toISOString(),
    revoked: content.revoked
  }
}

/** A delegation's content from a request body the schema accepted; KEY_INVALID for a bad public key, SCHEMA_INVALID for a date that does not exist. */
export function contentOfDelegationRequest(body: DelegationRequest): DelegationContent {
  const delegate = parsePublicKey(body.delegate, 'delegate')
  const expires = new Date(body.expires)
  if (Number.isNaN(expires.getTime())) throw new RbqError('SCHEMA_INVALID', 'expires: not a real date', { field: 'expires' })
  return {
    delegate: { keyid: delegate.keyid, publicKey: delegate.text },
    name: body.name,
    scope: [...body.scope],
    maxDepth: body.maxDepth,
    version: body.version,
    expires,
    revoked: body.revoked
  }
}

// --- rebuilds, watch, trust ------------------------------------------------------------------

export const RebuildRequestSchema = Type.Object(
  {
    purl: PurlParam,
    scope: Type.Optional(
      Type.Union([Type.Literal('node'), Type.Literal('network')], {
        description: 'node (default): this node rebuilds it now; network: ask every node by a signed request on gossip (SPEC.md §10), which this node also honours by its [rebuild] demand rule'
      })
    )
  },
  strict
)
export type RebuildRequest = Static<typeof RebuildRequestSchema>
export const RebuildResponseSchema = Type.Object(
  { purl: Type.String(), status: Type.String({ description: 'what the scheduler did, e.g. queued' }), detail: Type.Optional(Type.String()) },
  strict
)
export type RebuildResponse = Static<typeof RebuildResponseSchema>

export const WatchItemSchema = Type.Object({ package: PurlParam, artifact: ArtifactParam, sha256: Sha256Param }, strict)
export type WatchItem = Static<typeof WatchItemSchema>
export const WatchRequestSchema = Type.Object(
  {
    artifacts: Type.Array(WatchItemSchema, { maxItems: API_MAX_BATCH }),
    replace: Type.Optional(Type.Boolean({ description: 'true: the list becomes exactly `artifacts` (e.g. the installed packages)' })),
    remove: Type.Optional(Type.Boolean({ description: 'true: remove `artifacts` from the list instead' }))
  },
  strict
)
export type WatchRequest = Static<typeof WatchRequestSchema>

export const WatchedArtifactSchema = Type.Object(
  {
    package: Type.String(),
    artifact: Type.String(),
    sha256: Sha256Hex,
    status: Nullable(VerdictStatusSchema),
    reason: Nullable(Type.String()),
    evidenceHash: Nullable(Sha256Hex),
    since: Type.String({ description: 'when the artifact was added' })
  },
  strict
)
export type WatchedArtifact = Static<typeof WatchedArtifactSchema>
export const WatchResponseSchema = Type.Object({ watched: Type.Array(WatchedArtifactSchema) }, strict)
export type WatchResponse = Static<typeof WatchResponseSchema>

const DelegationEdgeSchema = Type.Object(
  {
    frameId: FrameIdHex,
    delegator: KeyIdHex,
    delegate: KeyIdHex,
    name: Type.String(),
    scope: Type.Array(Type.String()),
    maxDepth: Count,
    version: Count,
    expires: Type.String(),
    state: Type.Union([Type.Literal('active'), Type.Literal('expired'), Type.Literal('revoked'), Type.Literal('conflicting')]),
    superseded: Count
  },
  strict
)

export const TrustExplainRequestSchema = Type.Object(
  {
    key: Type.String({ minLength: 1, maxLength: 128, description: 'key id (hex) or public key (ed25519:…)' }),
    package: Type.Optional(PurlParam),
    policy: Type.Optional(PolicyText)
  },
  strict
)
export type TrustExplainRequest = Static<typeof TrustExplainRequestSchema>

export const TrustExplanationSchema = Type.Object(
  {
    keyid: KeyIdHex,
    trusted: Type.Boolean(),
    package: Type.Optional(Type.String()),
    excluded: Type.Boolean(),
    root: Type.Optional(Type.Object({ name: Type.String(), scope: Type.Array(Type.String()) }, strict)),
    builder: Type.Optional(
      Type.Object(
        {
          keyid: KeyIdHex,
          name: Type.String(),
          party: Type.String(),
          parties: Type.Array(Type.String()),
          rootIndexes: Type.Array(Count),
          chain: Type.Array(DelegationEdgeSchema)
        },
        strict
      )
    ),
    incoming: Type.Array(DelegationEdgeSchema),
    reason: Type.String()
  },
  strict
)
export type TrustExplanation = Static<typeof TrustExplanationSchema>

// --- statistics (GET /v1/stats) --------------------------------------------------------------

export const StatsQuerySchema = Type.Object(
  {
    distribution: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9.+-]*$', default: 'debian', description: 'purl namespace of pkg:deb purls (default debian)' })),
    suite: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9.+-]*$', description: 'only versions the suite (and its -updates/-security) lists, e.g. bookworm' }))
  },
  strict
)
export type StatsQuery = Static<typeof StatsQuerySchema>

const PartiesHistogram = Type.Array(Type.Object({ parties: Count, packages: Count }, strict), { description: 'packages by number of parties, ascending' })

/** Counts over source packages (node/rebuild/rebuild-stats.ts defines each number). No severity score. */
export const NetworkStatsSchema = Type.Object(
  {
    distribution: Type.String(),
    suite: Nullable(Type.String()),
    scope: Type.String({ description: 'what was counted, in words' }),
    packages: Type.Object(
      { rebuilt: Count, reproduced: Count, unreproducible: Count, disputed: Count, failed: Count, built: Count },
      { ...strict, description: 'source packages (newest attested version in scope) by state; states add up to rebuilt' }
    ),
    versionsSkipped: Count,
    parties: Type.Object({ keys: Count, byCount: PartiesHistogram }, { ...strict, description: 'distinct signer keys' }),
    trustedParties: Nullable(Type.Object({ byCount: PartiesHistogram }, { ...strict, description: 'parties under the node policy (null: no usable policy)' })),
    policyError: Type.Optional(Type.String()),
    claims: Type.Object({ reproduced: Count, mismatch: Count, failed: Count, built: Count }, { ...strict, description: 'latest statement per (package, key), by outcome' }),
    unreproducible: Type.Object(
      {
        faithful: Count,
        current: Count,
        untagged: Count,
        causes: Type.Array(Type.Object({ tag: Type.String(), packages: Count }, strict), { description: 'diff tags of the mismatch statements, by packages' })
      },
      { ...strict, description: 'unreproducible and disputed packages: environment of their mismatches, cause tags' }
    ),
    attestations: Count
  },
  strict
)
export type NetworkStats = Static<typeof NetworkStatsSchema>

// --- events (GET /v1/events, text/event-stream) ----------------------------------------------

export const EVENT_TYPES = ['attestation', 'delegation', 'equivocation', 'verdict'] as const
export type ApiEventType = (typeof EVENT_TYPES)[number]

/** `attestation`, `delegation`, `equivocation`: a frame newly stored by this node. */
export const FrameEventSchema = Type.Object(
  {
    id: FrameIdHex,
    kind: KindSchema,
    signer: KeyIdHex,
    package: Type.Optional(Type.String()),
    outcome: Type.Optional(Type.String()),
    subject: Type.Optional(Type.Array(Type.Object({ name: Type.String(), sha256: Sha256Hex }, strict)))
  },
  strict
)
export type FrameEvent = Static<typeof FrameEventSchema>

/** `verdict`: a watched artifact's verdict changed (`from` is null the first time). */
export const VerdictEventSchema = Type.Object(
  {
    package: Type.String(),
    artifact: Type.String(),
    sha256: Sha256Hex,
    from: Nullable(VerdictStatusSchema),
    to: VerdictStatusSchema,
    reason: Type.String(),
    evidenceHash: Sha256Hex,
    previousEvidenceHash: Nullable(Sha256Hex)
  },
  strict
)
export type VerdictEvent = Static<typeof VerdictEventSchema>

export type ApiEvent =
  | { type: 'attestation' | 'delegation' | 'equivocation'; id: string; data: FrameEvent }
  | { type: 'verdict'; id: string; data: VerdictEvent }
