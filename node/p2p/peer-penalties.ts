/**
 * Sync misbehaviour bookkeeping. Gossip has gossipsub's peer score; sync streams are ours, so
 * a peer that breaks the sync protocol (garbage, oversize, more than the batch it was asked for,
 * a cursor that does not move) gets a strike. At `maxStrikes` within `strikeWindowMs` it is
 * disconnected and banned for `banMs`: the connection gater refuses it both ways meanwhile.
 *
 * A peer id is free to make, so a banned peer could come straight back under a new one. Bans
 * therefore also reach the address, on evidence: once `addressBanAfter` distinct peer ids from
 * one IP were banned within `banMs`, that IP is banned for `banMs` too (every connection from it
 * closed and refused, dials to it refused). One banned id is not enough, because honest nodes
 * share addresses (a NAT, one host, the loopback demo) and must not pay for one bad neighbour.
 * Addresses in `addressBanExempt` (default loopback) are never banned by address: there every
 * local node shares one IP, and a local attacker has easier ways to hurt the node.
 * Both tables are bounded: expired entries are dropped first, then the oldest.
 */
import type { ConnectionGater, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/** Peer ids are free to make: bound what strangers can make us remember. */
const MAX_TRACKED_PEERS = 10_000
/** Addresses with banned peer ids or an address ban. */
const MAX_TRACKED_ADDRESSES = 10_000

export const DEFAULT_ADDRESS_BAN_EXEMPT: readonly string[] = ['127.0.0.1', '::1']

export interface PeerPenaltiesInit {
  maxStrikes?: number
  strikeWindowMs?: number
  banMs?: number
  /** Distinct banned peer ids from one IP that ban the IP (0 = never ban addresses; default 2). */
  addressBanAfter?: number
  /** IPs never banned by address (default loopback). */
  addressBanExempt?: readonly string[]
  now?: () => number
}

/** The IP of a multiaddr (/ip4 or /ip6 component), undefined for other transports. */
export function ipOf(addr: Multiaddr): string | undefined {
  return addr.getComponents().find((c) => c.name === 'ip4' || c.name === 'ip6')?.value
}

/** Drops the oldest entries (Map insertion order) beyond `max`. */
function trimOldest<K, V>(map: Map<K, V>, max: number): void {
  for (const key of map.keys()) {
    if (map.size <= max) return
    map.delete(key)
  }
}

export class PeerPenalties {
  private readonly strikes = new Map<string, number[]>()
  private readonly bannedUntil = new Map<string, number>()
  /** IP → banned peer ids seen on it → until when that id's ban counts. */
  private readonly bannedIdsByAddress = new Map<string, Map<string, number>>()
  private readonly addressBannedUntil = new Map<string, number>()
  private readonly maxStrikes: number
  private readonly strikeWindowMs: number
  private readonly banMs: number
  private readonly addressBanAfter: number
  private readonly addressBanExempt: ReadonlySet<string>
  private readonly now: () => number

  constructor(init: PeerPenaltiesInit = {}) {
    this.maxStrikes = init.maxStrikes ?? 3
    this.strikeWindowMs = init.strikeWindowMs ?? 10 * 60_000
    this.banMs = init.banMs ?? 30 * 60_000
    this.addressBanAfter = init.addressBanAfter ?? 2
    this.addressBanExempt = new Set(init.addressBanExempt ?? DEFAULT_ADDRESS_BAN_EXEMPT)
    this.now = init.now ?? Date.now
  }

  /**
   * Records a strike against `peer`, seen at `addresses` (IPs); true when the peer has now earned
   * a ban. The addresses it was banned on count towards their own ban (isAddressBanned).
   */
  strike(peer: PeerId | string, addresses: readonly string[] = []): boolean {
    const id = peer.toString()
    const now = this.now()
    const recent = (this.strikes.get(id) ?? []).filter((t) => now - t < this.strikeWindowMs)
    recent.push(now)
    if (this.strikes.size > MAX_TRACKED_PEERS) this.forgetStale(now)
    if (recent.length >= this.maxStrikes) {
      this.strikes.delete(id)
      this.bannedUntil.delete(id)
      this.bannedUntil.set(id, now + this.banMs)
      trimOldest(this.bannedUntil, MAX_TRACKED_PEERS)
      for (const ip of new Set(addresses)) this.banOnAddress(id, ip, now)
      return true
    }
    this.strikes.set(id, recent)
    trimOldest(this.strikes, MAX_TRACKED_PEERS)
    return false
  }

  private banOnAddress(id: string, ip: string, now: number): void {
    if (this.addressBanAfter === 0 || this.addressBanExempt.has(ip)) return
    const ids = this.bannedIdsByAddress.get(ip) ?? new Map<string, number>()
    for (const [other, until] of ids) if (until <= now) ids.delete(other)
    ids.set(id, now + this.banMs)
    // Re-insert so the map's order stays "least recently banned first" for trimming.
    this.bannedIdsByAddress.delete(ip)
    this.bannedIdsByAddress.set(ip, ids)
    if (this.bannedIdsByAddress.size > MAX_TRACKED_ADDRESSES) this.forgetStale(now)
    trimOldest(this.bannedIdsByAddress, MAX_TRACKED_ADDRESSES)
    if (ids.size >= this.addressBanAfter) {
      this.addressBannedUntil.delete(ip)
      this.addressBannedUntil.set(ip, now + this.banMs)
      trimOldest(this.addressBannedUntil, MAX_TRACKED_ADDRESSES)
    }
  }

  private forgetStale(now: number): void {
    for (const [id, times] of this.strikes) if (times.every((t) => now - t >= this.strikeWindowMs)) this.strikes.delete(id)
    for (const [id, until] of this.bannedUntil) if (until <= now) this.bannedUntil.delete(id)
    for (const [ip, ids] of this.bannedIdsByAddress) {
      for (const [id, until] of ids) if (until <= now) ids.delete(id)
      if (ids.size === 0) this.bannedIdsByAddress.delete(ip)
    }
    for (const [ip, until] of this.addressBannedUntil) if (until <= now) this.addressBannedUntil.delete(ip)
  }

  isBanned(peer: PeerId | string): boolean {
    return this.active(this.bannedUntil, peer.toString())
  }

  /** True while `ip` (a string, or the IP of a multiaddr) is banned. */
  isAddressBanned(address: string | Multiaddr | undefined): boolean {
    const ip = typeof address === 'string' || address === undefined ? address : ipOf(address)
    return ip !== undefined && this.active(this.addressBannedUntil, ip)
  }

  /** Addresses banned now (for logs and the API). */
  bannedAddresses(): string[] {
    return [...this.addressBannedUntil.keys()].filter((ip) => this.isAddressBanned(ip))
  }

  private active(table: Map<string, number>, key: string): boolean {
    const until = table.get(key)
    if (until === undefined) return false
    if (until > this.now()) return true
    table.delete(key)
    return false
  }

  /**
   * Refuses banned peers on dial and once a connection is encrypted (the peer id is known), and
   * banned addresses before anything else happens: inbound connections from them, dials to them.
   */
  readonly gater: ConnectionGater = {
    denyDialPeer: (peerId) => this.isBanned(peerId),
    denyDialMultiaddr: (addr) => this.isAddressBanned(addr),
    denyInboundConnection: (maConn) => this.isAddressBanned(maConn?.remoteAddr),
    denyInboundEncryptedConnection: (peerId, maConn) => this.isBanned(peerId) || this.isAddressBanned(maConn?.remoteAddr),
    denyOutboundEncryptedConnection: (peerId, maConn) => this.isBanned(peerId) || this.isAddressBanned(maConn?.remoteAddr)
  }
}
