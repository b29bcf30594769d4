/**
 * The three statement kinds carried in DSSE payloads, their schemas, semantic checks, and
 * constructors. SPEC.md §Statements is the normative text.
 */
import { Type, type Static } from '@sinclair/typebox'
import {
  PREDICATE_TYPE_REBUILD,
  STATEMENT_TYPE_DELEGATION,
  STATEMENT_TYPE_EQUIVOCATION,
  STATEMENT_TYPE_IN_TOTO
} from './constants.js'
import { RbqError } from './errors.js'
import type { KeyId } from './keys.js'
import { parsePublicKey } from './keys.js'
import { checkPattern, checkWirePurl } from './purl.js'
import { compileSchema } from './schema.js'

const strict = { additionalProperties: false } as const

export const Sha256Hex = Type.String({ pattern: '^[0-9a-f]{64}$' })
const DigestSet = Type.Object({ sha256: Sha256Hex }, strict)
/** RFC 3339, UTC ("Z"), optional fraction. */
const Timestamp = Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?Z$' })
const PurlText = Type.String({ minLength: 1, maxLength: 512 })
/** A file name: no path separators or control characters, not "." or "..". */
const ArtifactName = Type.String({ minLength: 1, maxLength: 255, pattern: '^(?!\\.{1,2}$)[^/\\\\\\u0000-\\u001f\\u007f]+$' })
const Uint = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })
const ResourceDescriptor = Type.Object({ name: ArtifactName, digest: DigestSet }, strict)
const Tag = Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,31}$' })

export const REBUILD_OUTCOMES = ['reproduced', 'mismatch', 'failed', 'built'] as const
export type Outcome = (typeof REBUILD_OUTCOMES)[number]

/**
 * The build environment a rebuild ran in (SPEC.md §5): `faithful` = the exact environment the
 * official build recorded (its .buildinfo: every installed build dependency at its exact version,
 * build path, environment variables, architecture); `current` = whatever the builder's archive
 * offers today. Absent means `current`: a statement never claims faithful by default.
 */
export const BUILD_ENVIRONMENTS = ['faithful', 'current'] as const
export type BuildEnvironment = (typeof BUILD_ENVIRONMENTS)[number]

export const RebuildPredicateSchema = Type.Object(
  {
    package: PurlText,
    inputs: Type.Object(
      {
        digest: DigestSet,
        materials: Type.Array(Type.Object({ uri: Type.String({ minLength: 1, maxLength: 1024 }), digest: DigestSet }, strict), { maxItems: 64 })
      },
      strict
    ),
    outcome: Type.Union(REBUILD_OUTCOMES.map((o) => Type.Literal(o))),
    environment: Type.Optional(Type.Union(BUILD_ENVIRONMENTS.map((e) => Type.Literal(e)))),
    upstream: Type.Array(ResourceDescriptor, { maxItems: 64 }),
    builder: Type.Object(
      {
        id: Sha256Hex,
        seq: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
        backend: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,31}$' }),
        software: Type.String({ minLength: 1, maxLength: 128 })
      },
      strict
    ),
    startedOn: Timestamp,
    finishedOn: Timestamp,
    log: Type.Optional(Type.Object({ digest: DigestSet, size: Uint }, strict)),
    diff: Type.Optional(Type.Object({ tags: Type.Array(Tag, { maxItems: 16 }), summary: Type.String({ maxLength: 2048 }) }, strict))
  },
  strict
)

export const RebuildStatementSchema = Type.Object(
  {
    _type: Type.Literal(STATEMENT_TYPE_IN_TOTO),
    subject: Type.Array(ResourceDescriptor, { minItems: 1, maxItems: 64 }),
    predicateType: Type.Literal(PREDICATE_TYPE_REBUILD),
    predicate: RebuildPredicateSchema
  },
  strict
)
export type RebuildStatement = Static<typeof RebuildStatementSchema>

export const DelegationStatementSchema = Type.Object(
  {
    _type: Type.Literal(STATEMENT_TYPE_DELEGATION),
    delegator: Sha256Hex,
    delegate: Type.Object({ keyid: Sha256Hex, publicKey: Type.String({ maxLength: 64 }) }, strict),
    name: Type.String({ minLength: 1, maxLength: 128 }),
    scope: Type.Array(Type.String({ maxLength: 256 }), { minItems: 1, maxItems: 16 }),
    maxDepth: Type.Integer({ minimum: 0, maximum: 8 }),
    version: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    expires: Timestamp,
    revoked: Type.Boolean()
  },
  strict
)
export type DelegationStatement = Static<typeof DelegationStatementSchema>

/** Frame schema lives here (not in frame.ts) because proofs embed frames. */
export const FrameSchema = Type.Object(
  {
    v: Type.Literal(1),
    publicKey: Type.String({ maxLength: 64 }),
    envelope: Type.Object(
      {
        payloadType: Type.String({ minLength: 1, maxLength: 128 }),
        payload: Type.String({ maxLength: 96 * 1024 }),
        signatures: Type.Array(Type.Object({ keyid: Type.String({ maxLength: 64 }), sig: Type.String({ maxLength: 128 }) }, strict), {
          minItems: 1,
          maxItems: 1
        })
      },
      strict
    )
  },
  strict
)
export type Frame = Static<typeof FrameSchema>
export type Envelope = Frame['envelope']

export const EquivocationStatementSchema = Type.Object(
  { _type: Type.Literal(STATEMENT_TYPE_EQUIVOCATION), a: FrameSchema, b: FrameSchema },
  strict
)
export type EquivocationStatement = Static<typeof EquivocationStatementSchema>

export const rebuildStatementChecker = compileSchema(RebuildStatementSchema)
export const delegationStatementChecker = compileSchema(DelegationStatementSchema)
export const equivocationStatementChecker = compileSchema(EquivocationStatementSchema)
export const frameChecker = compileSchema(FrameSchema)

function isValidInstant(ts: string): boolean {
  return Number.isFinite(Date.parse(ts))
}

/**
 * Checks beyond the schema: canonical purl, the builder is the signer, timestamps are real,
 * and the outcome agrees with subject vs upstream (so a statement cannot contradict itself).
 */
export function checkRebuildSemantics(s: RebuildStatement, signer: KeyId, root = 'payload'): void {
  const p = s.predicate
  checkWirePurl(p.package, `${root}.predicate.package`)
  if (p.builder.id !== signer) {
    throw new RbqError('SCHEMA_INVALID', `${root}.predicate.builder.id: must equal the signing key id`, { field: `${root}.predicate.builder.id` })
  }
  for (const f of ['startedOn', 'finishedOn'] as const) {
    if (!isValidInstant(p[f])) throw new RbqError('SCHEMA_INVALID', `${root}.predicate.${f}: not a real date`, { field: `${root}.predicate.${f}` })
  }
  if (Date.parse(p.finishedOn) < Date.parse(p.startedOn)) {
    throw new RbqError('SCHEMA_INVALID', `${root}.predicate.finishedOn: before startedOn`, { field: `${root}.predicate.finishedOn` })
  }
  for (const [list, where] of [[s.subject, `${root}.subject`], [p.upstream, `${root}.predicate.upstream`]] as const) {
    const names = new Set<string>()
    for (const [i, item] of list.entries()) {
      if (names.has(item.name)) throw new RbqError('SCHEMA_INVALID', `${where}[${i}].name: duplicate "${item.name}"`, { field: `${where}[${i}].name` })
      names.add(item.name)
    }
  }
  if (p.outcome !== 'failed') {
    const implied = comparisonOutcome(
      s.subject.map((x) => ({ name: x.name, sha256: x.digest.sha256 })),
      p.upstream.map((x) => ({ name: x.name, sha256: x.digest.sha256 }))
    )
    if (implied !== p.outcome) {
      const field = `${root}.predicate.outcome`
      throw new RbqError('SCHEMA_INVALID', `${field}: "${p.outcome}" contradicts subject vs upstream, which say "${implied}"`, { field })
    }
  }
}

/**
 * The outcome a comparison implies (SPEC.md §5): `built` when there is no upstream;
 * `reproduced` when subject and upstream pair up one to one by name with equal digests;
 * otherwise `mismatch` (a differing digest, or an artifact on one side only).
 */
export function comparisonOutcome(subject: readonly ArtifactDigest[], upstream: readonly ArtifactDigest[]): 'reproduced' | 'mismatch' | 'built' {
  if (upstream.length === 0) return 'built'
  const ours = new Map(subject.map((a) => [a.name, a.sha256]))
  const theirs = new Map(upstream.map((a) => [a.name, a.sha256]))
  const paired = ours.size === theirs.size && [...ours].every(([name, sha256]) => theirs.get(name) === sha256)
  return paired ? 'reproduced' : 'mismatch'
}

export function checkDelegationSemantics(s: DelegationStatement, signer: KeyId, root = 'payload'): void {
  if (s.delegator !== signer) {
    throw new RbqError('SCHEMA_INVALID', `${root}.delegator: must equal the signing key id`, { field: `${root}.delegator` })
  }
  const delegate = parsePublicKey(s.delegate.publicKey, `${root}.delegate.publicKey`)
  if (delegate.keyid !== s.delegate.keyid) {
    throw new RbqError('KEYID_MISMATCH', `${root}.delegate.keyid: is not the SHA-256 of delegate.publicKey`, { field: `${root}.delegate.keyid` })
  }
  if (s.delegate.keyid === s.delegator) {
    throw new RbqError('SCHEMA_INVALID', `${root}.delegate: a key cannot delegate to itself`, { field: `${root}.delegate` })
  }
  s.scope.forEach((pattern, i) => checkPattern(pattern, `${root}.scope[${i}]`))
  if (!isValidInstant(s.expires)) throw new RbqError('SCHEMA_INVALID', `${root}.expires: not a real date`, { field: `${root}.expires` })
}

// --- constructors ------------------------------------------------------------------------

export interface ArtifactDigest {
  name: string
  sha256: string
}

export interface RebuildStatementInit {
  package: string
  subject: ArtifactDigest[]
  outcome: Outcome
  /** Omitted from the wire when absent (= `current`). */
  environment?: BuildEnvironment
  upstream: ArtifactDigest[]
  inputs: { sha256: string; materials: { uri: string; sha256: string }[] }
  builder: { id: KeyId; seq: number; backend: string; software: string }
  startedOn: Date
  finishedOn: Date
  log?: { sha256: string; size: number }
  diff?: { tags: string[]; summary: string }
}

/** What a rebuild attestation says before it is signed: everything but `builder`, plus the backend. The signer adds the rest of `builder` (its key id, the next seq, the software). */
export type AttestationContent = Omit<RebuildStatementInit, 'builder'> & { backend: string }

const descriptor = (a: ArtifactDigest) => ({ name: a.name, digest: { sha256: a.sha256 } })

/** Seconds precision keeps statements short and avoids leaking sub-second scheduling noise. */
export function wireTimestamp(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

export function buildRebuildStatement(init: RebuildStatementInit): RebuildStatement {
  const predicate: RebuildStatement['predicate'] = {
    package: init.package,
    inputs: {
      digest: { sha256: init.inputs.sha256 },
      materials: init.inputs.materials.map((m) => ({ uri: m.uri, digest: { sha256: m.sha256 } }))
    },
    outcome: init.outcome,
    ...(init.environment !== undefined ? { environment: init.environment } : {}),
    upstream: init.upstream.map(descriptor),
    builder: { ...init.builder },
    startedOn: wireTimestamp(init.startedOn),
    finishedOn: wireTimestamp(init.finishedOn)
  }
  if (init.log) predicate.log = { digest: { sha256: init.log.sha256 }, size: init.log.size }
  if (init.diff) predicate.diff = { tags: [...init.diff.tags], summary: init.diff.summary }
  return {
    _type: STATEMENT_TYPE_IN_TOTO,
    subject: init.subject.map(descriptor),
    predicateType: PREDICATE_TYPE_REBUILD,
    predicate
  }
}

export interface DelegationInit {
  delegator: KeyId
  delegate: { keyid: KeyId; publicKey: string }
  name: string
  scope: string[]
  maxDepth: number
  version: number
  expires: Date
  revoked: boolean
}

/** A delegation before it is signed: everything but the delegator, which is the signer. */
export type DelegationContent = Omit<DelegationInit, 'delegator'>

export function buildDelegationStatement(init: DelegationInit): DelegationStatement {
  return {
    _type: STATEMENT_TYPE_DELEGATION,
    delegator: init.delegator,
    delegate: { keyid: init.delegate.keyid, publicKey: init.delegate.publicKey },
    name: init.name,
    scope: [...init.scope],
    maxDepth: init.maxDepth,
    version: init.version,
    expires: wireTimestamp(init.expires),
    revoked: init.revoked
  }
}
