/**
 * From a builder's RebuildResult to a signed rebuild attestation (protocol/SPEC.md). One mapping,
 * `attestationInitFor`, serves both the node (through the ingest Publisher, which reserves
 * the seq, signs, stores and gossips) and `rbq rebuild --out/--publish` (signRebuildResult with
 * the node's key and seq file). Both reserve the seq in the key's seq file before signing.
 *
 *   subject   = the artifacts (for `failed`: the source descriptor the builder returned)
 *   upstream  = what the builder compared with; inputs = digest + materials
 *   log       = digest and size of the build log; diff = tags + summary, cut to the wire limits
 *   environment = the builder's `faithful` / `current` (absent when the builder states none)
 *   builder   = { id: signer, seq, backend, software: SOFTWARE }
 */
import {
  buildRebuildStatement,
  checkRebuildSemantics,
  rebuildStatementChecker,
  MAX_STATEMENT_PAYLOAD_BYTES,
  canonicalBytes,
  RbqError,
  signAttestation,
  type AttestationFrame,
  type RebuildStatementInit,
  type SigningKey
} from '../../protocol/index.js'
import type { AttestationInit } from '../ingest/publisher.js'
import type { SeqCounter } from '../../identity/seq-counter.js'
import { SOFTWARE } from '../../common/version.js'
import type { RebuildResult } from './rebuild-types.js'

/** Wire limits of the rebuild predicate (protocol/statements.ts). */
const MAX_DIFF_SUMMARY = 2048
const MAX_DIFF_TAGS = 16
const TAG_RE = /^[a-z0-9][a-z0-9-]{0,31}$/

/** Anything that signs and publishes an attestation with the next seq (node: ingest Publisher). */
export interface AttestationPublisher {
  attest(init: AttestationInit): Promise<AttestationFrame>
}

/** The statement content of a result; the signer adds `builder` (key id, seq, software). */
export function attestationInitFor(result: RebuildResult): AttestationInit {
  const init: AttestationInit = {
    package: result.package,
    subject: result.artifacts.map((a) => ({ name: a.name, sha256: a.sha256 })),
    outcome: result.outcome,
    upstream: result.upstream.map((u) => ({ name: u.name, sha256: u.sha256 })),
    inputs: { sha256: result.inputs.sha256, materials: result.inputs.materials.map((m) => ({ uri: m.uri, sha256: m.sha256 })) },
    backend: result.backend,
    startedOn: result.startedOn,
    finishedOn: result.finishedOn,
    log: { sha256: result.log.sha256, size: result.log.size }
  }
  if (result.environment !== undefined) init.environment = result.environment
  if (result.diff !== undefined) {
    init.diff = {
      tags: [...new Set(result.diff.tags.filter((t) => TAG_RE.test(t)))].slice(0, MAX_DIFF_TAGS),
      summary: truncate(result.diff.summary, MAX_DIFF_SUMMARY)
    }
  }
  return init
}

/** Publishes a result through the node's Publisher. */
export function publishRebuild(result: RebuildResult, publisher: AttestationPublisher): Promise<AttestationFrame> {
  return publisher.attest(checkedInit(result))
}

/**
 * Signs a result with `key`, reserving the seq in `seq` (persisted before signing). The
 * statement is checked with a placeholder seq first, so an invalid one never burns a seq.
 */
export async function signRebuildResult(result: RebuildResult, key: SigningKey, seq: SeqCounter): Promise<AttestationFrame> {
  const init = checkedInit(result, key)
  return signAttestation(key, statementOf(init, key, await seq.reserve()))
}

function statementOf(init: AttestationInit, key: SigningKey, seq: number) {
  const { backend, ...content } = init
  const full: RebuildStatementInit = { ...content, builder: { id: key.publicKey.keyid, seq, backend, software: SOFTWARE } }
  return buildRebuildStatement(full)
}

/**
 * The init, after checking what the protocol would reject anyway, with a clear reason: a
 * statement too large for one frame (too many artifacts) or one that contradicts itself.
 */
function checkedInit(result: RebuildResult, key?: SigningKey): AttestationInit {
  const init = attestationInitFor(result)
  if (init.subject.length === 0) throw new RbqError('SCHEMA_INVALID', `${result.package}: a ${result.outcome} result with no artifact cannot be attested`)
  if (init.subject.length > 64 || init.upstream.length > 64) {
    throw new RbqError('INPUT_TOO_LARGE', `${result.package}: ${init.subject.length} artifacts / ${init.upstream.length} upstream files exceed one attestation (64 each)`)
  }
  const probeKeyId = key?.publicKey.keyid ?? '0'.repeat(64)
  const { backend, ...content } = init
  const probe = buildRebuildStatement({ ...content, builder: { id: probeKeyId, seq: Number.MAX_SAFE_INTEGER, backend, software: SOFTWARE } })
  const size = canonicalBytes(probe).length
  if (size > MAX_STATEMENT_PAYLOAD_BYTES) {
    throw new RbqError('INPUT_TOO_LARGE', `${result.package}: the attestation would be ${size} bytes, over the ${MAX_STATEMENT_PAYLOAD_BYTES}-byte limit (${init.subject.length} artifacts)`)
  }
  // The receiver's schema and semantic checks, before any seq is reserved.
  checkRebuildSemantics(rebuildStatementChecker.check(probe, 'attestation'), probeKeyId, 'attestation')
  return init
}

/** Cuts by code points (the schema's unit), never inside a surrogate pair. */
function truncate(text: string, max: number): string {
  const chars = Array.from(text)
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`
}
