/** GET /v1/status and GET /v1/peers. */
import type { Connection } from '@libp2p/interface'
import { PeersResponseSchema, StatusResponseSchema, type PeerInfo, type PeersResponse, type StatusResponse } from '../../../protocol/api.js'
import { SOFTWARE, VERSION } from '../../../common/version.js'
import type { ApiContext, ApiRoute } from '../context.js'

function peerInfo(conns: readonly Connection[]): PeerInfo[] {
  const byPeer = new Map<string, PeerInfo>()
  for (const c of conns) {
    const peerId = c.remotePeer.toString()
    const known = byPeer.get(peerId)
    if (known !== undefined) {
      known.addrs.push(c.remoteAddr.toString())
      known.streams += c.streams.length
      continue
    }
    byPeer.set(peerId, {
      peerId,
      addrs: [c.remoteAddr.toString()],
      direction: c.direction,
      openedAt: Number.isFinite(c.timeline.open) ? new Date(c.timeline.open).toISOString() : null,
      streams: c.streams.length
    })
  }
  return [...byPeer.keys()].sort().map((k) => byPeer.get(k)!)
}

export function statusRoutes(ctx: ApiContext): ApiRoute[] {
  const { components } = ctx
  return [
    {
      method: 'GET',
      url: '/v1/status',
      summary: 'node identity, stored frames, peers, catch-up state, rebuild queue, policy',
      schema: { response: { 200: StatusResponseSchema } },
      handler: async (): Promise<StatusResponse> => {
        const { store, libp2p, publicKey, rebuilds } = components
        const policy = await ctx.trust.policy()
        const policyInfo: StatusResponse['policy'] =
          policy.policy === undefined
            ? { file: policy.file, loaded: false, error: policy.error.message }
            : {
                file: policy.file,
                loaded: true,
                threshold: policy.policy.threshold,
                count: policy.policy.count,
                roots: policy.policy.roots.map((r) => ({ name: r.name, keyid: r.key.keyid }))
              }
        return {
          version: VERSION,
          software: SOFTWARE,
          keyid: publicKey?.keyid ?? null,
          publicKey: publicKey?.text ?? null,
          peerId: libp2p?.peerId.toString() ?? null,
          listen: libp2p?.getMultiaddrs().map((a) => a.toString()) ?? [],
          api: ctx.url(),
          dataDir: ctx.dataDir,
          startedAt: ctx.startedAt.toISOString(),
          uptimeSeconds: Math.floor((Date.now() - ctx.startedAt.getTime()) / 1000),
          frames: {
            attestation: await store.count('attestation'),
            delegation: await store.count('delegation'),
            equivocation: await store.count('equivocation')
          },
          peers: libp2p === undefined ? 0 : new Set(libp2p.getConnections().map((c) => c.remotePeer.toString())).size,
          sync: components.sync?.() ?? { state: 'off' },
          scheduler: rebuilds === undefined ? null : rebuilds.stats(),
          policy: policyInfo,
          watched: ctx.watch.size
        }
      }
    },
    {
      method: 'GET',
      url: '/v1/peers',
      summary: 'connected libp2p peers',
      schema: { response: { 200: PeersResponseSchema } },
      handler: async (): Promise<PeersResponse> => ({ peers: peerInfo(components.libp2p?.getConnections() ?? []) })
    }
  ]
}
