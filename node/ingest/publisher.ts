/**
 * Publishes this node's own statements: signs them through the node's StatementSigner
 * (identity/statement-signer.ts: fills in `builder`, reserves the seq, persisted before signing,
 * so a crash or a failed store write can skip a seq but never reuse one), then stores them.
 * `start()` moves the counter above the highest seq of this key in the store, in case the seq
 * file was lost or restored from backup.
 *
 * Callers: the rebuild scheduler (node/rebuild/rebuild-pipeline.ts), and the API routes that
 * sign for the CLI (node/api/routes/statement-routes.ts: `rbq rebuild --publish`, `rbq delegate`).
 *
 * Every frame goes through the ingest pipeline with source 'local' (same checks as a peer's
 * frame; stored before anyone else sees it). Once stored, 'published' fires, and the network
 * gossips the frame (node/p2p/gossip-decision.ts).
 */
import { EventEmitter } from 'node:events'
import type { AttestationContent, AttestationFrame, DelegationContent, DelegationFrame, VerifiedFrame } from '../../protocol/index.js'
import type { Store } from '../db/store.js'
import type { StatementSigner } from '../../identity/statement-signer.js'
import { errorFields, silentLogger, type Logger } from '../../common/logger.js'
import type { IngestPipeline } from './ingest-pipeline.js'

export interface PublisherComponents {
  pipeline: IngestPipeline
  store: Store
  /** The node's signer (its signing key and seq file). */
  signer: StatementSigner
  logger?: Logger
}

/** A statement signed and published; `duplicate`: the identical frame was stored already. */
export interface Published<F extends VerifiedFrame> {
  frame: F
  status: 'stored' | 'duplicate'
}

export interface PublisherEvents {
  /** A statement of this node was signed and stored: gossip it. */
  published: [frame: VerifiedFrame]
}

export class Publisher extends EventEmitter<PublisherEvents> {
  private readonly pipeline: IngestPipeline
  private readonly store: Store
  private readonly logger: Logger
  private readonly signer: StatementSigner

  constructor(components: PublisherComponents) {
    super()
    this.pipeline = components.pipeline
    this.store = components.store
    this.logger = components.logger ?? silentLogger()
    this.signer = components.signer
  }

  get keyid(): string {
    return this.signer.keyid
  }

  async start(): Promise<void> {
    const stored = (await this.store.keyStats(this.keyid)).maxSeq
    const last = await this.signer.lastSeq()
    if (stored > last) {
      this.logger.warn({ stored, persisted: last, seqFile: this.signer.seqFile }, 'store holds a higher seq of this key than its seq file; continuing above it')
      await this.signer.continueAbove(stored)
    }
  }

  async stop(): Promise<void> {}

  /** The highest seq ever reserved for this key (0 when none). */
  lastSeq(): Promise<number> {
    return this.signer.lastSeq()
  }

  /** Signs (with the next seq) and publishes a rebuild attestation. */
  async attest(content: AttestationContent): Promise<AttestationFrame> {
    return (await this.publish(await this.signer.attest(content))).frame
  }

  /**
   * Signs (refused before signing when receivers would refuse it, or it expired: StatementSigner
   * checkDelegation) and publishes a delegation from this node's key.
   */
  async delegate(content: DelegationContent): Promise<Published<DelegationFrame>> {
    return this.publish(this.signer.delegate(content))
  }

  /** Stores through the pipeline, then announces. Throws the pipeline's error (e.g. STORE_ERROR). */
  private async publish<F extends VerifiedFrame>(frame: F): Promise<Published<F>> {
    const result = await this.pipeline.submit(frame.bytes, 'local')
    if (result.status === 'duplicate') return { frame, status: 'duplicate' } // identical frame already stored (a re-signed delegation)
    if (result.status !== 'stored') throw result.error
    try {
      this.emit('published', frame)
    } catch (e) {
      this.logger.error({ id: frame.id, ...errorFields(e) }, "a 'published' listener threw; the frame is stored")
    }
    return { frame, status: 'stored' }
  }
}
