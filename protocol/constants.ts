/**
 * Protocol v1 constants. Every value here is part of the wire format: see protocol/SPEC.md.
 */

export const PROTOCOL_VERSION = 1

/** Maximum size of one frame in its canonical bytes (SPEC.md §Limits). */
export const MAX_FRAME_BYTES = 64 * 1024
/**
 * Maximum size of an attestation or delegation payload. Kept well below MAX_FRAME_BYTES so
 * that an equivocation proof, which embeds two frames (base64 inflates by 4/3, twice), still
 * fits in one frame.
 */
export const MAX_STATEMENT_PAYLOAD_BYTES = 16 * 1024
/** Maximum JSON nesting depth anywhere (frame or payload). */
export const MAX_JSON_DEPTH = 16

export const PAYLOAD_TYPE_IN_TOTO = 'application/vnd.in-toto+json'
export const PAYLOAD_TYPE_DELEGATION = 'application/vnd.rebuild-quorum.delegation+json'
export const PAYLOAD_TYPE_EQUIVOCATION = 'application/vnd.rebuild-quorum.equivocation+json'

export const STATEMENT_TYPE_IN_TOTO = 'https://in-toto.io/Statement/v1'
export const PREDICATE_TYPE_REBUILD = 'https://rebuild-quorum.dev/rebuild/v1'
export const STATEMENT_TYPE_DELEGATION = 'https://rebuild-quorum.dev/delegation/v1'
export const STATEMENT_TYPE_EQUIVOCATION = 'https://rebuild-quorum.dev/equivocation/v1'
/** Rebuild requests (SPEC.md §10): not statements; never stored, never synced. */
export const PAYLOAD_TYPE_REBUILD_REQUEST = 'application/vnd.rebuild-quorum.rebuild-request+json'
export const STATEMENT_TYPE_REBUILD_REQUEST = 'https://rebuild-quorum.dev/rebuild-request/v1'

export const PUBLIC_KEY_PREFIX = 'ed25519:'

/** Gossipsub topics (SPEC.md §Gossip). */
export const TOPIC_ATTESTATIONS = '/rbq/1/attestations'
export const TOPIC_DELEGATIONS = '/rbq/1/delegations'
export const TOPIC_PROOFS = '/rbq/1/proofs'
export const TOPICS = [TOPIC_ATTESTATIONS, TOPIC_DELEGATIONS, TOPIC_PROOFS] as const
export type Topic = (typeof TOPICS)[number]
/** Rebuild requests (SPEC.md §10); not a statement topic, so not in TOPICS. */
export const TOPIC_REBUILD_REQUESTS = '/rbq/1/rebuild-requests'

/** libp2p request/response protocol for catch-up (SPEC.md §Sync). */
export const SYNC_PROTOCOL = '/rbq/sync/1.0.0'
