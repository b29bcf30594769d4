/**
 * The store's key layout: one LevelDB, one sublevel per bucket (prefix `!<2-digit number>!`),
 * keys built from fixed components joined by NUL.
 *
 * NUL never occurs inside a component: ids and digests are hex, wire purls are canonical
 * (control characters percent-encoded), artifact names exclude control characters by schema,
 * seqs are zero-padded decimals. So `prefix + SEP` bounds a prefix scan exactly, and
 * lexicographic key order is (component 1, component 2, …) order, with seqs in numeric order.
 */
import { RbqError } from '../../protocol/index.js'

/**
 * One entry per bucket; the number is the on-disk prefix, so a number is never reused:
 * retire a bucket by commenting it out and leaving its number taken.
 */
export enum Bucket {
  schema = 0, // 'version' -> store layout version (json number)
  frame = 1, // frame id -> canonical frame bytes
  framesBySha256 = 2, // subject sha256 \0 signer keyid \0 frame id -> package purl  (attestations, every subject)
  framesByArtifact = 3, // package purl \0 artifact name \0 frame id -> ''  (attestations, every subject and upstream name)
  attestationBySeq = 4, // builder keyid \0 seq (16 digits) \0 frame id -> payload digest (hex)
  delegationByDelegate = 5, // delegate keyid \0 frame id -> ''
  proofByKey = 6, // equivocating keyid -> frame id of the first accepted proof
  keyStats = 7, // signer keyid -> KeyStats (json): stored frames/bytes, highest and highest contiguous seq
  frameCount = 8, // statement kind -> number of stored frames of that kind (json number)
  jobs = 9, // rebuild scheduler: job key -> job (json; layout owned by node/rebuild)
  watched = 10, // watched artifacts: key -> record (json; layout owned by the verdict engine / API)
  meta = 11, // node meta: name -> value (json; e.g. first-start time, settings that must survive restarts)
  framesByUpstreamSha256 = 12, // upstream sha256 \0 signer keyid \0 frame id -> package purl  (attestations, every upstream entry)
  framesByPackageKey = 13, // package purl \0 signer keyid \0 frame id -> ''  (attestations: a verdict reads only the keys its policy trusts)
  frameByArrival = 14 // arrival (16 digits) \0 frame id -> signer keyid \0 canonical bytes  (every frame but proofs: eviction order)
}

/**
 * Store layout version written in Bucket.schema; bump with a migration when keys change.
 *   1  first layout
 *   2  upstream digests and names indexed (framesByUpstreamSha256; framesByArtifact also under
 *      upstream names); a version-1 store is reindexed when opened (store.ts)
 *   3  (package, signer) index (framesByPackageKey), the signer in the digest index keys and
 *      the package as their value, arrival order (frameByArrival); a version-1 or -2 store is
 *      reindexed when opened
 */
export const STORE_LAYOUT_VERSION = 3

/** Sublevel name of a bucket. */
export function bucketName(bucket: Bucket): string {
  return String(bucket).padStart(2, '0')
}

export const SEP = '\x00'
/** Upper bound of a prefix scan: every key starting with `p + SEP` sorts below `p + AFTER_SEP`. */
const AFTER_SEP = '\x01'

/** Digits of Number.MAX_SAFE_INTEGER: every valid seq fits, so string order = numeric order. */
const SEQ_DIGITS = 16

export interface KeyRange {
  gte: string
  lt: string
}

function join(parts: readonly string[]): string {
  for (const part of parts) {
    if (part.includes(SEP)) throw new RbqError('STORE_ERROR', 'store key component contains NUL')
  }
  return parts.join(SEP)
}

/** All keys whose leading components equal `parts`. */
export function prefixRange(...parts: string[]): KeyRange {
  const prefix = join(parts)
  return { gte: prefix + SEP, lt: prefix + AFTER_SEP }
}

/** The last component of a key (the frame id in every index bucket). */
export function lastPart(key: string): string {
  return key.slice(key.lastIndexOf(SEP) + 1)
}

export function seqPart(seq: number): string {
  return String(seq).padStart(SEQ_DIGITS, '0')
}

export const keys = {
  bySha256: (sha256: string, keyid: string, id: string) => join([sha256, keyid, id]),
  byUpstreamSha256: (sha256: string, keyid: string, id: string) => join([sha256, keyid, id]),
  byArtifact: (pkg: string, artifact: string, id: string) => join([pkg, artifact, id]),
  attestationBySeq: (keyid: string, seq: number, id: string) => join([keyid, seqPart(seq), id]),
  delegationByDelegate: (delegate: string, id: string) => join([delegate, id]),
  byPackageKey: (pkg: string, keyid: string, id: string) => join([pkg, keyid, id]),
  arrival: (arrival: number, id: string) => join([seqPart(arrival), id])
}


/** Value of an arrival entry: the frame's signer and size, so eviction needs no frame read to choose. */
export const arrivalValue = (keyid: string, bytes: number) => join([keyid, String(bytes)])

export function parseArrival(key: string, value: string): { arrival: number; id: string; keyid: string; bytes: number } {
  const [arrival = '', id = ''] = key.split(SEP)
  const [keyid = '', bytes = ''] = value.split(SEP)
  return { arrival: Number(arrival), id, keyid, bytes: Number(bytes) }
}

/** Keys of Bucket.attestationBySeq for `keyid` with fromSeq <= seq <= toSeq. */
export function seqRange(keyid: string, fromSeq: number, toSeq: number): KeyRange {
  const from = seqPart(Math.max(0, Math.trunc(fromSeq)))
  const to = seqPart(Math.min(Number.MAX_SAFE_INTEGER, Math.trunc(toSeq)))
  return { gte: join([keyid, from]) + SEP, lt: join([keyid, to]) + AFTER_SEP }
}

export function parseAttestationBySeq(key: string): { keyid: string; seq: number; id: string } {
  const [keyid = '', seq = '', id = ''] = key.split(SEP)
  return { keyid, seq: Number(seq), id }
}
