/**
 * Sync misbehaviour bookkeeping. Gossip has gossipsub's peer score; sync streams are ours, so
 * a peer that breaks the sync protocol (garbage, oversize, more than the batch it was asked for,
 * a cursor that does not move) gets a strike. At `maxStrikes` within `strikeWindowMs` it is
 * disconnected and banned for `banMs`: the connection gater refuses it both ways meanwhile.
 */
import type { ConnectionGater, PeerId } from '@libp2p/interface'

/** Peer ids are free to make: bound what strangers can make us remember. */
const MAX_TRACKED_PEERS = 10_000

export interface PeerPenaltiesInit {
  maxStrikes?: number
  strikeWindowMs?: number
  banMs?: number
  now?: () => number
}

export class PeerPenalties {
  private readonly strikes = new Map<string, number[]>()
  private readonly bannedUntil = new Map<string, number>()
  private readonly maxStrikes: number
  private readonly strikeWindowMs: number
  private readonly banMs: number
  private readonly now: () => number

  constructor(init: PeerPenaltiesInit = {}) {
    this.maxStrikes = init.maxStrikes ?? 3
    this.strikeWindowMs = init.strikeWindowMs ?? 10 * 60_000
    this.banMs = init.banMs ?? 30 * 60_000
    this.now = init.now ?? Date.now
  }

  /** Records a strike; true when the peer has now earned a ban. */
  strike(peer: PeerId | string): boolean {
    const id = peer.toString()
    const now = this.now()
    const recent = (this.strikes.get(id) ?? []).filter((t) => now - t < this.strikeWindowMs)
    recent.push(now)
    if (this.strikes.size > MAX_TRACKED_PEERS) this.forgetStale(now)
    if (recent.length >= this.maxStrikes) {
      this.strikes.delete(id)
      this.bannedUntil.set(id, now + this.banMs)
      return true
    }
    this.strikes.set(id, recent)
    return false
  }

  private forgetStale(now: number): void {
    for (const [id, times] of this.strikes) if (times.every((t) => now - t >= this.strikeWindowMs)) this.strikes.delete(id)
    for (const [id, until] of this.bannedUntil) if (until <= now) this.bannedUntil.delete(id)
  }

  isBanned(peer: PeerId | string): boolean {
    const id = peer.toString()
    const until = this.bannedUntil.get(id)
    if (until === undefined) return false
    if (until > this.now()) return true
    this.bannedUntil.delete(id)
    return false
  }

  /** Refuses banned peers on dial and on inbound connections. */
  readonly gater: ConnectionGater = {
    denyDialPeer: (peerId) => this.isBanned(peerId),
    denyInboundEncryptedConnection: (peerId) => this.isBanned(peerId),
    denyOutboundEncryptedConnection: (peerId) => this.isBanned(peerId)
  }
}
