/**
 * The one signer of a key's statements (ARCHITECTURE.md, "One signer"). It owns the key and its
 * seq counter: it fills in `builder` (key id, the next seq, SOFTWARE) — the only place that does —
 * reserves the seq before signing, and signs rebuild attestations, delegations, equivocation
 * proofs and rebuild requests (identity/README.md has the table of who asks for which).
 *
 * The node holds one for its signing key (node/node.ts): its Publisher signs scheduler rebuilds,
 * rebuild results and delegations sent through the API, its ingest pipeline signs equivocation
 * proofs, and its network signs rebuild requests, all through it. Offline verbs (`rbq rebuild
 * --out`, `rbq rebuild --publish` with no node running, `rbq delegate --out`, a `--key` that is
 * not the node's, `rbq attest`, `rbq import` with the bridge key) build the same class over the
 * key file: the seq file and its lock are the same, so a seq is never used twice whoever signs.
 *
 * A statement is checked (size, schema, semantics: what every receiver checks) before its seq
 * is reserved or it is signed, so a statement that would be refused never burns a seq.
 */
import {
  buildDelegationStatement,
  buildRebuildStatement,
  canonicalBytes,
  checkDelegationSemantics,
  checkRebuildSemantics,
  delegationStatementChecker,
  encodeRebuildRequest,
  MAX_STATEMENT_PAYLOAD_BYTES,
  rebuildStatementChecker,
  signAttestation,
  signDelegation,
  signEquivocationProof,
  type AttestationContent,
  type AttestationFrame,
  type DelegationContent,
  type DelegationFrame,
  type DelegationStatement,
  type EquivocationFrame,
  type KeyId,
  type PublicKey,
  type RebuildStatement,
  type SigningKey,
  RbqError
} from '../protocol/index.js'
import { SOFTWARE } from '../common/version.js'
import { SeqCounter, seqFileFor } from './seq-counter.js'
import { loadKey } from './signing-key.js'

export class StatementSigner {
  readonly publicKey: PublicKey
  private readonly seq: SeqCounter

  /** `seqFile`: the key's seq state, seqFileFor(keyFile) for a key read from a file. */
  constructor(
    private readonly key: SigningKey,
    seqFile: string
  ) {
    this.publicKey = key.publicKey
    this.seq = new SeqCounter(seqFile, key.publicKey.keyid)
  }

  /** The signer of the key in `keyFile`, with its seq file beside it. */
  static async fromKeyFile(keyFile: string): Promise<StatementSigner> {
    return new StatementSigner(await loadKey(keyFile), seqFileFor(keyFile))
  }

  get keyid(): KeyId {
    return this.key.publicKey.keyid
  }

  get seqFile(): string {
    return this.seq.path
  }

  /** The highest seq ever reserved for this key (0 when none). */
  lastSeq(): Promise<number> {
    return this.seq.last()
  }

  /**
   * Moves the counter up to `seq` when it is below (a store holding higher seqs of this key than
   * the seq file, restored from a backup). Returns whether it moved.
   */
  async continueAbove(seq: number): Promise<boolean> {
    if (seq <= (await this.seq.last())) return false
    try {
      await this.seq.reserve(seq)
      return true
    } catch (e) {
      // Another signer moved it past `seq` in between: nothing to do.
      if (e instanceof RbqError && e.code === 'USAGE' && seq <= (await this.seq.last())) return false
      throw e
    }
  }

  /**
   * Throws what a receiver would refuse the attestation for (too large, schema, semantics), with
   * a clear reason, without reserving a seq.
   */
  check(content: AttestationContent): void {
    const probe = this.statement(content, Number.MAX_SAFE_INTEGER)
    const size = canonicalBytes(probe).length
    if (size > MAX_STATEMENT_PAYLOAD_BYTES) {
      throw new RbqError(
        'INPUT_TOO_LARGE',
        `${content.package}: the attestation would be ${size} bytes, over the ${MAX_STATEMENT_PAYLOAD_BYTES}-byte limit (${content.subject.length} artifacts)`
      )
    }
    checkRebuildSemantics(rebuildStatementChecker.check(probe, 'attestation'), this.keyid, 'attestation')
  }

  /**
   * Checks, reserves the next seq (or `seq`, which must be above every seq used so far),
   * persisted before signing, and signs.
   */
  async attest(content: AttestationContent, options: { seq?: number } = {}): Promise<AttestationFrame> {
    this.check(content)
    const seq = await this.seq.reserve(options.seq)
    return signAttestation(this.key, this.statement(content, seq))
  }

  /** Checks all, reserves one block of consecutive seqs (statement i gets first + i) and signs them. */
  async attestAll(contents: readonly AttestationContent[]): Promise<AttestationFrame[]> {
    if (contents.length === 0) return []
    for (const c of contents) this.check(c)
    const first = await this.seq.reserveBlock(contents.length)
    return contents.map((c, i) => signAttestation(this.key, this.statement(c, first + i)))
  }

  /**
   * The delegation from this key, checked as receivers check it (schema, semantics: e.g. not to
   * itself), and refused when it is not a revocation and has expired at `now` (every verifier
   * would ignore it). Throws without signing.
   */
  checkDelegation(content: DelegationContent, now: Date = new Date()): DelegationStatement {
    if (!content.revoked && content.expires.getTime() <= now.getTime()) {
      throw new RbqError('SCHEMA_INVALID', `expires ${content.expires.toISOString()} is in the past: every verifier would ignore this delegation`, { field: 'expires' })
    }
    const statement = buildDelegationStatement({ ...content, delegator: this.keyid })
    checkDelegationSemantics(delegationStatementChecker.check(statement, 'delegation'), this.keyid, 'delegation')
    return statement
  }

  /** Checks (checkDelegation) and signs a delegation from this key (delegations carry a version, not a seq). */
  delegate(content: DelegationContent): DelegationFrame {
    return signDelegation(this.key, this.checkDelegation(content))
  }

  /** Signs the proof that the two attestations' key equivocated (any order). */
  equivocationProof(a: AttestationFrame, b: AttestationFrame): EquivocationFrame {
    return signEquivocationProof(this.key, a, b)
  }

  /**
   * Signs a rebuild request for `purl` at `now` (SPEC.md §10): a gossip message, not a stored
   * statement; no seq, its wire bytes as protocol/rebuild-request.ts encodes them.
   */
  rebuildRequest(purl: string, now: Date): Uint8Array {
    return encodeRebuildRequest(this.key, purl, now)
  }

  /** The one place `builder` is filled in. */
  private statement(content: AttestationContent, seq: number): RebuildStatement {
    const { backend, ...rest } = content
    return buildRebuildStatement({ ...rest, builder: { id: this.keyid, seq, backend, software: SOFTWARE } })
  }
}
