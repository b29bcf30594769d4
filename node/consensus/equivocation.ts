/**
 * Equivocation: one key, one seq, two different statements (protocol/SPEC.md §7). Detection is a pure
 * comparison of two attestations (protocol `isEquivocation`); the self-contained proof is signed
 * by the reporter's key when one is given (protocol `signEquivocationProof`). A newer seq with a
 * different output is NOT equivocation: verdict.ts shows it as a flip.
 */
import {
  isEquivocation,
  signEquivocationProof,
  type AttestationFrame,
  type EquivocationFrame,
  type KeyId,
  type SigningKey
} from '../../protocol/index.js'

export interface Equivocation {
  readonly keyid: KeyId
  readonly seq: number
  /** The two conflicting attestations, `a` before `b` by frame id. */
  readonly a: AttestationFrame
  readonly b: AttestationFrame
  /** Signed proof, when a reporter key was given. */
  readonly proof: EquivocationFrame | undefined
}

/** The equivocation between two attestations, if they are one (any order). */
export function equivocationBetween(x: AttestationFrame, y: AttestationFrame, reporterKey?: SigningKey): Equivocation | undefined {
  if (!isEquivocation(x, y)) return undefined
  const [a, b] = x.id < y.id ? [x, y] : [y, x]
  return {
    keyid: a.signer.keyid,
    seq: a.statement.predicate.builder.seq,
    a,
    b,
    proof: reporterKey === undefined ? undefined : signEquivocationProof(reporterKey, a, b)
  }
}

/** Keys convicted by proofs (first proof per key is enough; duplicates change nothing). */
export function equivocatorsOf(proofs: readonly EquivocationFrame[]): Set<KeyId> {
  return new Set(proofs.map((p) => p.proof.keyid))
}

/**
 * Every equivocating key among a set of attestations, with one deterministic witness pair each
 * (lowest seq, then the two lowest frame ids). Proofs are not signed here.
 */
export function findEquivocations(attestations: readonly AttestationFrame[]): Equivocation[] {
  const byKeySeq = new Map<string, AttestationFrame[]>()
  for (const f of attestations) {
    const slot = `${f.signer.keyid}|${f.statement.predicate.builder.seq}`
    const list = byKeySeq.get(slot)
    if (list === undefined) byKeySeq.set(slot, [f])
    else if (!list.some((o) => o.payloadDigest === f.payloadDigest)) list.push(f)
  }
  const witness = new Map<KeyId, Equivocation>()
  for (const list of byKeySeq.values()) {
    if (list.length < 2) continue
    const [a, b] = [...list].sort((x, y) => (x.id < y.id ? -1 : 1))
    const e = equivocationBetween(a!, b!)!
    const prior = witness.get(e.keyid)
    if (prior === undefined || e.seq < prior.seq || (e.seq === prior.seq && e.a.id < prior.a.id)) witness.set(e.keyid, e)
  }
  return [...witness.values()].sort((x, y) => (x.keyid < y.keyid ? -1 : 1))
}

/**
 * Incremental detector over arriving attestations, indexed by (keyid, seq). The first
 * equivocation per key is reported (with a proof when a reporter key is set); later ones for
 * a convicted key change nothing and are not reported again.
 */
export class EquivocationDetector {
  private readonly bySlot = new Map<string, AttestationFrame>()
  private readonly convicted = new Set<KeyId>()

  constructor(private readonly reporterKey?: SigningKey) {}

  observe(frame: AttestationFrame): Equivocation | undefined {
    const slot = `${frame.signer.keyid}|${frame.statement.predicate.builder.seq}`
    const prior = this.bySlot.get(slot)
    if (prior === undefined) {
      this.bySlot.set(slot, frame)
      return undefined
    }
    if (this.convicted.has(frame.signer.keyid)) return undefined
    const e = equivocationBetween(prior, frame, this.reporterKey)
    if (e !== undefined) this.convicted.add(e.keyid)
    return e
  }

  /** Records a key convicted elsewhere (a proof arrived), so no second proof is made. */
  convict(keyid: KeyId): void {
    this.convicted.add(keyid)
  }

  has(keyid: KeyId): boolean {
    return this.convicted.has(keyid)
  }

  keys(): KeyId[] {
    return [...this.convicted].sort()
  }
}
