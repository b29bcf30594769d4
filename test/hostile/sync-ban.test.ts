/**
 * A banned sync peer coming back under a new peer id (issue 14 item 1). A hostile peer answers
 * every sync request with garbage: three violations ban its peer id. It comes back from the
 * same IP with fresh ids; once two of its ids were banned the IP is banned too and a third id is
 * refused at the door — both ways. With the default config loopback is exempt from address bans
 * (every local node shares 127.0.0.1), which the second case shows.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'
import { afterEach, describe, expect, it } from 'vitest'
import { SYNC_PROTOCOL, utf8 } from '../../protocol/index.js'
import { createHost, type Host } from '../../node/p2p/host.js'
import type { RbqNode } from '../../node/node.js'
import { counterValue, startTestNode, waitFor } from '../utils/network.js'

describe('a banned sync peer returning with a new peer id', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })

  /** A fresh identity on 127.0.0.1 whose sync responder sends garbage. */
  async function liar(): Promise<Host> {
    const host = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
    await host.start()
    cleanups.push(async () => {
      await host.stop()
    })
    await host.handle(SYNC_PROTOCOL, async (stream) => {
      stream.send(lp.encode.single(utf8('this is not json')))
      await stream.close().catch(() => stream.abort(new Error('done')))
    })
    return host
  }

  /** The liar connects to `node` and is struck until banned (three sessions). */
  async function getBanned(node: RbqNode, host: Host): Promise<void> {
    const bans = await counterValue(node, 'rbq_sync_bans_total', {})
    await host.dial(multiaddr(node.addresses[0] as string))
    await waitFor(() => node.libp2p.getConnections(host.peerId).length > 0, { what: 'connection' })
    while ((await counterValue(node, 'rbq_sync_bans_total', {})) === bans) await node.network.sync.syncWith(host.peerId)
    await waitFor(() => host.getConnections(node.peerId).length === 0, { what: 'the banned peer to be dropped' })
  }

  /** Whether a connection between `node` and `host` comes up and stays, dialled from either side. */
  async function canConnect(node: RbqNode, host: Host): Promise<{ inbound: boolean; outbound: boolean }> {
    await host.dial(multiaddr(node.addresses[0] as string)).catch(() => undefined)
    // A refused connection may complete its handshake on the dialler's side before the gater
    // closes it: wait until both sides agree.
    await waitFor(() => host.getConnections(node.peerId).length === node.libp2p.getConnections(host.peerId).length, { what: 'both sides to agree' })
    const inbound = node.libp2p.getConnections(host.peerId).length > 0
    await node.libp2p.hangUp(host.peerId).catch(() => undefined)
    const outbound = await node.libp2p
      .dial(host.getMultiaddrs()[0] as ReturnType<typeof multiaddr>)
      .then(() => true)
      .catch(() => false)
    return { inbound, outbound }
  }

  it('address bans on: the second banned id bans the IP, a third id is refused both ways', async () => {
    const victim = await startTestNode({ toml: { p2p: { address_ban_exempt: [] } } })
    cleanups.push(victim.cleanup)
    const node = victim.node
    await getBanned(node, await liar())
    // One banned id is not evidence against the address: a new id still gets in (and is banned).
    const second = await liar()
    await getBanned(node, second)
    expect(await counterValue(node, 'rbq_sync_address_bans_total', {})).toBe(1)
    expect(node.network.penalties.bannedAddresses()).toEqual(['127.0.0.1'])

    const third = await liar()
    expect(await canConnect(node, third)).toEqual({ inbound: false, outbound: false })
    expect((await node.network.sync.syncWith(third.peerId)).outcome).not.toBe('complete')
    expect(await counterValue(node, 'rbq_sync_bans_total', {})).toBe(2)
  })

  it('default config: loopback is exempt, so a new id from 127.0.0.1 still connects', async () => {
    const victim = await startTestNode()
    cleanups.push(victim.cleanup)
    const node = victim.node
    await getBanned(node, await liar())
    await getBanned(node, await liar())
    expect(node.network.penalties.bannedAddresses()).toEqual([])
    expect(await canConnect(node, await liar())).toEqual({ inbound: true, outbound: true })
  })
})
