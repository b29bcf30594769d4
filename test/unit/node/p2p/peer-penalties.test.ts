import { describe, expect, it } from 'vitest'
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
})
