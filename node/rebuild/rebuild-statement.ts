/**
 * From a builder's RebuildResult to a signed rebuild attestation (protocol/SPEC.md). One mapping,
 * `attestationContentFor`, serves the node's scheduler (publishRebuild, through the Publisher),
 * `rbq rebuild --publish` with a node running (the content is sent to POST /v1/rebuild-results
 * and the node's Publisher signs it) and `rbq rebuild --out`, or `--publish` with no node running
 * (signRebuildResult with a StatementSigner over the key file). Whichever signs, it is a
 * StatementSigner (identity/statement-signer.ts): it fills in `builder` and reserves the seq in
 * the key's seq file before signing.
 *
 *   subject   = the artifacts (for `failed`: the source descriptor the builder returned)
 *   upstream  = what the builder compared with; inputs = digest + materials
 *   log       = digest and size of the build log; diff = tags + summary, cut to the wire limits
 *   environment = the builder's `faithful` / `current` (absent when the builder states none)
 *   builder   = { id: signer, seq, backend, software: SOFTWARE } (added by the signer)
 */
import { RbqError, type AttestationContent, type AttestationFrame } from '../../protocol/index.js'
import type { StatementSigner } from '../../identity/statement-signer.js'
import type { RebuildResult } from './rebuild-types.js'

/** Wire limits of the rebuild predicate (protocol/statements.ts). */
const MAX_DIFF_SUMMARY = 2048
const MAX_DIFF_TAGS = 16
const TAG_RE = /^[a-z0-9][a-z0-9-]{0,31}$/

/** Anything that signs and publishes an attestation with the next seq (node: ingest Publisher). */
export interface AttestationPublisher {
  attest(content: AttestationContent): Promise<AttestationFrame>
}

/** The statement content of a result; the signer adds `builder` (key id, seq, software). */
export function attestationContentFor(result: RebuildResult): AttestationContent {
  const content: AttestationContent = {
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
  if (result.environment !== undefined) content.environment = result.environment
  if (result.diff !== undefined) {
    content.diff = {
      tags: [...new Set(result.diff.tags.filter((t) => TAG_RE.test(t)))].slice(0, MAX_DIFF_TAGS),
      summary: truncate(result.diff.summary, MAX_DIFF_SUMMARY)
    }
  }
  return content
}

/** Publishes a result through the node's Publisher. */
export async function publishRebuild(result: RebuildResult, publisher: AttestationPublisher): Promise<AttestationFrame> {
  return publisher.attest(checkedContent(result))
}

/**
 * Signs a result offline with `signer` (the seq is reserved in its seq file, persisted before
 * signing). The signer checks the statement first, so an invalid one never burns a seq.
 */
export async function signRebuildResult(result: RebuildResult, signer: StatementSigner): Promise<AttestationFrame> {
  return signer.attest(checkedContent(result))
}

/**
 * The content, after refusing with a result-specific reason what no attestation can carry: a
 * result with no artifact, or more artifacts than one statement holds. The signer checks the
 * rest (size, schema, semantics) before it reserves a seq.
 */
export function checkedContent(result: RebuildResult): AttestationContent {
  const content = attestationContentFor(result)
  if (content.subject.length === 0) throw new RbqError('SCHEMA_INVALID', `${result.package}: a ${result.outcome} result with no artifact cannot be attested`)
  if (content.subject.length > 64 || content.upstream.length > 64) {
    throw new RbqError('INPUT_TOO_LARGE', `${result.package}: ${content.subject.length} artifacts / ${content.upstream.length} upstream files exceed one attestation (64 each)`)
  }
  return content
}

/** Cuts by code points (the schema's unit), never inside a surrogate pair. */
function truncate(text: string, max: number): string {
  const chars = Array.from(text)
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`
}
