/**
 * Rebuild requests on gossip (SPEC.md §10, topic /rbq/1/rebuild-requests): a verifier whose
 * verdict is `insufficient` asks the network, not just its own node, to rebuild a package. The
 * requesting node signs the request with its key, through its StatementSigner
 * (identity/statement-signer.ts); every node validates it here and, when valid,
 * forwards it and hands it to its rebuild pipeline, which honours it or not by its own rule
 * (`[rebuild] demand`, node/rebuild/README.md).
 *
 * Validation, in order ([REJECT] and [IGNORE] as in gossip-decision.ts):
 *   [REJECT] the message decodes: ≤ 2 KiB, canonical JSON, frame shape, public key, key id,
 *            rebuild-request payload type (TOPIC_MISMATCH), signature, statement schema,
 *            canonical purl (decodeRebuildRequest: INPUT_TOO_LARGE, JSON_MALFORMED, NOT_CANONICAL,
 *            SCHEMA_INVALID, KEY_*, KEYID_MISMATCH, SIGNATURE_INVALID, PURL_INVALID)
 *   [IGNORE] signed within ±10 min of this node's clock (REQUEST_STALE): old requests are not
 *            replayed, and clock skew is not malice
 *   [IGNORE] not the same purl from the same key within those 10 min (DUPLICATE)
 *   [IGNORE] the requesting key is within its rate, 60 per hour (QUOTA_EXCEEDED)
 *   [ACCEPT] forwarded, and handed to the local handler
 * The rate state is in memory and bounded (least recently seen keys are forgotten first).
 */
import type { PeerId } from '@libp2p/interface'
import {
  asRbqError,
  decodeRebuildRequest,
  RbqError,
  TOPIC_REBUILD_REQUESTS,
  type RebuildRequestMessage
} from '../../protocol/index.js'
import type { StatementSigner } from '../../identity/statement-signer.js'
import { errorFields, type Logger } from '../../common/logger.js'
import type { GossipVerdict } from './gossip-decision.js'

export interface RebuildRequestsInit {
  /** Requests accepted per requesting key per hour (default 60). */
  perKeyPerHour?: number
  /** How far a request's time may be from ours (default 10 min); also the duplicate window. */
  freshnessMs?: number
  /** Requesting keys remembered at most (default 10 000). */
  maxKeys?: number
  now?: () => number
}

export type RebuildRequestHandler = (request: RebuildRequestMessage) => void

/** What signs this node's requests: the node's StatementSigner. */
export type RebuildRequestSigner = Pick<StatementSigner, 'rebuildRequest'>

const HOUR_MS = 3_600_000

export class RebuildRequests {
  readonly topic = TOPIC_REBUILD_REQUESTS
  private readonly perKeyPerHour: number
  private readonly freshnessMs: number
  private readonly maxKeys: number
  private readonly now: () => number
  /** key id → accept times (ms) within the last hour; Map order = least recently used first. */
  private readonly accepted = new Map<string, number[]>()
  /** `keyid purl` → when it was accepted. */
  private readonly recent = new Map<string, number>()
  private handler: RebuildRequestHandler | undefined

  constructor(
    private readonly components: { signer: RebuildRequestSigner; logger: Logger },
    init: RebuildRequestsInit = {}
  ) {
    this.perKeyPerHour = init.perKeyPerHour ?? 60
    this.freshnessMs = init.freshnessMs ?? 600_000
    this.maxKeys = init.maxKeys ?? 10_000
    this.now = init.now ?? Date.now
  }

  /** Where accepted requests go (the rebuild pipeline); one handler. */
  onRequest(handler: RebuildRequestHandler | undefined): void {
    this.handler = handler
  }

  /** The gossip validator of the topic (the checks in the header comment). */
  readonly validate = async (data: Uint8Array, from: PeerId): Promise<GossipVerdict> => {
    let request: RebuildRequestMessage
    try {
      request = decodeRebuildRequest(data)
    } catch (e) {
      return { result: 'reject', error: asRbqError(e) }
    }
    const refused = this.admit(request)
    if (refused !== undefined) return { result: 'ignore', error: refused }
    this.components.logger.info({ purl: request.purl, requester: request.requester, peer: from.toString() }, 'rebuild request received')
    const handler = this.handler
    if (handler !== undefined) {
      setImmediate(() => {
        try {
          handler(request)
        } catch (e) {
          this.components.logger.warn({ purl: request.purl, ...errorFields(e) }, 'rebuild request handler failed')
        }
      })
    }
    return { result: 'accept' }
  }

  /**
   * Signs a request for `purl` with this node's key (its signer), counting it against this node's own rate
   * (peers would ignore more): QUOTA_EXCEEDED / DUPLICATE are thrown, not published.
   */
  encode(purl: string): RebuildRequestMessage {
    const request = decodeRebuildRequest(this.components.signer.rebuildRequest(purl, new Date(this.now())))
    const refused = this.admit(request)
    if (refused !== undefined) throw refused
    return request
  }

  /** Freshness, duplicate and rate checks; records the request when it passes. */
  private admit(request: RebuildRequestMessage): RbqError | undefined {
    const now = this.now()
    if (Math.abs(now - request.requestedAt) > this.freshnessMs) {
      return new RbqError('REQUEST_STALE', `rebuild request for ${request.purl} was signed at ${new Date(request.requestedAt).toISOString()}, more than ${this.freshnessMs / 1000} s from now`)
    }
    for (const [k, t] of this.recent) {
      if (now - t <= this.freshnessMs) break // insertion order = time order
      this.recent.delete(k)
    }
    const recentKey = `${request.requester} ${request.purl}`
    if (this.recent.has(recentKey)) return new RbqError('DUPLICATE', `${request.purl} was already requested by ${request.requester} in the last ${this.freshnessMs / 1000} s`)
    const times = (this.accepted.get(request.requester) ?? []).filter((t) => now - t < HOUR_MS)
    if (times.length >= this.perKeyPerHour) {
      this.accepted.set(request.requester, times)
      return new RbqError('QUOTA_EXCEEDED', `requester ${request.requester} sent more than ${this.perKeyPerHour} rebuild requests in the last hour`)
    }
    times.push(now)
    this.accepted.delete(request.requester)
    this.accepted.set(request.requester, times)
    while (this.accepted.size > this.maxKeys) this.accepted.delete(this.accepted.keys().next().value as string)
    this.recent.set(recentKey, now)
    while (this.recent.size > this.maxKeys * 10) this.recent.delete(this.recent.keys().next().value as string)
    return undefined
  }
}
