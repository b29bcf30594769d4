/**
 * Publishes this node's own statements.
 *
 * Attestations: the builder seq is reserved through SeqCounter, which persists it (write,
 * fsync, rename) BEFORE the statement is signed, so a crash or a failed store write can skip
 * a seq but never reuse one (reuse with another statement is an equivocation). A restart
 * continues above the last persisted seq, and `start()` also moves the counter above the
 * highest seq of this key in the store, in case the seq file was lost or restored from backup.
 *
 * Every frame goes through the ingest pipeline with source 'local' (same checks as a peer's
 * frame; stored before anyone else sees it). Once stored, 'published' fires: the network
 * gossips exactly the frames of this event (plus the pipeline's 'equivocation' proofs).
 */
import { EventEmitter } from 'node:events'
import {
  buildDelegationStatement,
  buildRebuildStatement,
  signAttestation,
  signDelegation,
  type AttestationFrame,
  type DelegationFrame,
  type DelegationInit,
  type RebuildStatementInit,
  type SigningKey,
  type VerifiedFrame
} from '../../protocol/index.js'
import type { Store } from '../db/store.js'
import { SeqCounter } from '../../identity/seq-counter.js'
import { errorFields, silentLogger, type Logger } from '../../common/logger.js'
import { SOFTWARE } from '../../common/version.js'
import type { IngestPipeline } from './ingest-pipeline.js'

export interface PublisherInit {
  key: SigningKey
  /** The key's seq state file: seqFileFor(keyFile) (identity/seq-counter.ts). */
  seqFile: string
}

export interface PublisherComponents {
  pipeline: IngestPipeline
  store: Store
  logger?: Logger
}

export interface PublisherEvents {
  /** A statement of this node was signed and stored: gossip it. */
  published: [frame: VerifiedFrame]
}

/** An attestation's content; the publisher fills in `builder` (its key id, the next seq, SOFTWARE). */
export type AttestationInit = Omit<RebuildStatementInit, 'builder'> & { backend: string }

export type DelegationPublishInit = Omit<DelegationInit, 'delegator'>

export class Publisher extends EventEmitter<PublisherEvents> {
  private readonly pipeline: IngestPipeline
  private readonly store: Store
  private readonly logger: Logger
  private readonly key: SigningKey
  private readonly seq: SeqCounter

  constructor(components: PublisherComponents, init: PublisherInit) {
    super()
    this.pipeline = components.pipeline
    this.store = components.store
    this.logger = components.logger ?? silentLogger()
    this.key = init.key
    this.seq = new SeqCounter(init.seqFile, init.key.publicKey.keyid)
  }

  get keyid(): string {
    return this.key.publicKey.keyid
  }

  async start(): Promise<void> {
    const stored = (await this.store.keyStats(this.keyid)).maxSeq
    const last = await this.seq.last()
    if (stored > last) {
      this.logger.warn({ stored, persisted: last, seqFile: this.seq.path }, 'store holds a higher seq of this key than its seq file; continuing above it')
      await this.seq.reserve(stored)
    }
  }

  async stop(): Promise<void> {}

  /** The highest seq ever reserved for this key (0 when none). */
  lastSeq(): Promise<number> {
    return this.seq.last()
  }

  /** Signs and publishes a rebuild attestation with the next seq. */
  async attest(init: AttestationInit): Promise<AttestationFrame> {
    const { backend, ...content } = init
    const seq = await this.seq.reserve() // persisted before signing
    const statement = buildRebuildStatement({ ...content, builder: { id: this.keyid, seq, backend, software: SOFTWARE } })
    return this.publish(signAttestation(this.key, statement))
  }

  /** Signs and publishes a delegation from this node's key. */
  async delegate(init: DelegationPublishInit): Promise<DelegationFrame> {
    return this.publish(signDelegation(this.key, buildDelegationStatement({ ...init, delegator: this.keyid })))
  }

  /** Stores through the pipeline, then announces. Throws the pipeline's error (e.g. STORE_ERROR). */
  private async publish<F extends VerifiedFrame>(frame: F): Promise<F> {
    const result = await this.pipeline.submit(frame.bytes, 'local')
    if (result.status === 'duplicate') return frame // identical frame already stored (a re-signed delegation)
    if (result.status !== 'stored') throw result.error
    try {
      this.emit('published', frame)
    } catch (e) {
      this.logger.error({ id: frame.id, ...errorFields(e) }, "a 'published' listener threw; the frame is stored")
    }
    return frame
  }
}
