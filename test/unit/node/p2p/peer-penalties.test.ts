import { describe, expect, it } from 'vitest'
import { multiaddr } from '@multiformats/multiaddr'
import { PeerPenalties } from '../../../../node/p2p/peer-penalties.js'

describe('PeerPenalties', () => {
  it('bans at the third strike within the window, and lifts the ban after banMs', () => {
    let now = 0
    const p = new PeerPenalties({ maxStrikes: 3, strikeWindowMs: 1000, banMs: 5000, now: () => now })
    expect(p.strike('peer')).toBe(false)
    now = 500
    expect(p.strike('peer')).toBe(false)
    expect(p.isBanned('peer')).toBe(false)
    now = 900
    expect(p.strike('peer')).toBe(true)
    expect(p.isBanned('peer')).toBe(true)
    expect(p.isBanned('other')).toBe(false)
    now = 5899
    expect(p.isBanned('peer')).toBe(true)
    now = 5900
    expect(p.isBanned('peer')).toBe(false)
  })

  it('forgets strikes older than the window', () => {
    let now = 0
    const p = new PeerPenalties({ maxStrikes: 2, strikeWindowMs: 1000, now: () => now })
    p.strike('peer')
    now = 1500
    expect(p.strike('peer')).toBe(false)
  })

  it('its connection gater refuses banned peers only', async () => {
    const p = new PeerPenalties({ maxStrikes: 1 })
    p.strike('bad')
    const asPeer = (id: string) => ({ toString: () => id }) as never
    expect(await p.gater.denyDialPeer?.(asPeer('bad'))).toBe(true)
    expect(await p.gater.denyDialPeer?.(asPeer('good'))).toBe(false)
    expect(await p.gater.denyInboundEncryptedConnection?.(asPeer('bad'), undefined as never)).toBe(true)
  })

  it('bans an address once two distinct peer ids from it were banned, until banMs', () => {
    let now = 0
    const p = new PeerPenalties({ maxStrikes: 1, banMs: 1000, now: () => now })
    expect(p.strike('a', ['192.0.2.7'])).toBe(true)
    expect(p.isAddressBanned('192.0.2.7')).toBe(false)
    // The same id banned again is not a second identity.
    now = 100
    p.strike('a', ['192.0.2.7'])
    expect(p.isAddressBanned('192.0.2.7')).toBe(false)
    p.strike('b', ['192.0.2.7', '198.51.100.1'])
    expect(p.isAddressBanned('192.0.2.7')).toBe(true)
    expect(p.isAddressBanned(multiaddr('/ip4/192.0.2.7/tcp/4777'))).toBe(true)
    expect(p.isAddressBanned('198.51.100.1')).toBe(false)
    expect(p.bannedAddresses()).toEqual(['192.0.2.7'])
    now = 1100
    expect(p.isAddressBanned('192.0.2.7')).toBe(false)
    // Old bans no longer count: one fresh ban is again not enough.
    p.strike('c', ['192.0.2.7'])
    expect(p.isAddressBanned('192.0.2.7')).toBe(false)
  })

  it('never bans exempt addresses (loopback by default), nor any address with addressBanAfter 0', () => {
    const loopback = new PeerPenalties({ maxStrikes: 1 })
    for (const id of ['a', 'b', 'c']) loopback.strike(id, ['127.0.0.1', '::1'])
    expect(loopback.isAddressBanned('127.0.0.1')).toBe(false)
    expect(loopback.isAddressBanned('::1')).toBe(false)
    const off = new PeerPenalties({ maxStrikes: 1, addressBanAfter: 0 })
    for (const id of ['a', 'b', 'c']) off.strike(id, ['192.0.2.7'])
    expect(off.isAddressBanned('192.0.2.7')).toBe(false)
    const strict = new PeerPenalties({ maxStrikes: 1, addressBanExempt: [] })
    for (const id of ['a', 'b']) strict.strike(id, ['127.0.0.1'])
    expect(strict.isAddressBanned('127.0.0.1')).toBe(true)
  })

  it('keeps its address table bounded', () => {
    const p = new PeerPenalties({ maxStrikes: 1, addressBanAfter: 1, addressBanExempt: [] })
    for (let i = 0; i < 10_050; i++) p.strike(`peer-${i}`, [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`])
    expect(p.bannedAddresses().length).toBeLessThanOrEqual(10_000)
    // The newest is kept, the oldest dropped.
    expect(p.isAddressBanned('10.0.39.65')).toBe(true)
    expect(p.isAddressBanned('10.0.0.0')).toBe(false)
  })

  it("its gater refuses a banned address's inbound connections and dials, whatever the peer id", async () => {
    const p = new PeerPenalties({ maxStrikes: 1, addressBanExempt: [] })
    p.strike('a', ['127.0.0.1'])
    p.strike('b', ['127.0.0.1'])
    const asPeer = (id: string) => ({ toString: () => id }) as never
    const conn = (addr: string) => ({ remoteAddr: multiaddr(addr) }) as never
    expect(await p.gater.denyInboundConnection?.(conn('/ip4/127.0.0.1/tcp/5000'))).toBe(true)
    expect(await p.gater.denyInboundConnection?.(conn('/ip4/127.0.0.2/tcp/5000'))).toBe(false)
    expect(await p.gater.denyInboundEncryptedConnection?.(asPeer('fresh'), conn('/ip4/127.0.0.1/tcp/5000'))).toBe(true)
    expect(await p.gater.denyDialMultiaddr?.(multiaddr('/ip4/127.0.0.1/tcp/4777'))).toBe(true)
    expect(await p.gater.denyDialMultiaddr?.(multiaddr('/dns4/example.org/tcp/4777'))).toBe(false)
  })
})
