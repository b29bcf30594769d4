/**
 * Sync under abuse: a hostile peer (a bare libp2p host speaking /rbq/sync/1.0.0 badly) answers
 * with 10× the allowed batch, garbage, or hangs up mid-response; or sends garbage requests.
 * The node must keep running, store nothing it should not, strike/ban the peer, and still
 * sync correctly with an honest peer afterwards.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'
import { afterEach, describe, expect, it } from 'vitest'
import { SYNC_PROTOCOL, canonicalBytes, frameText, generateSigningKey, utf8 } from '../../protocol/index.js'
import { encodeSyncMessage, setDigest, type SyncRequest } from '../../protocol/sync.js'
import { createHost, type Host } from '../../node/p2p/host.js'
import type { RbqNode } from '../../node/node.js'
import { attestation } from '../utils/frames.js'
import { connect, counterValue, startTestNode, waitFor, type TestNode } from '../utils/network.js'

type Responder = (request: SyncRequest | undefined, stream: Stream, host: Host) => Promise<void>

const EMPTY_SETS = { delegations: setDigest([]), proofs: setDigest([]) }
const liar = generateSigningKey()
const liarFrames = Array.from({ length: 160 }, (_, i) => attestation(liar, i + 1))

async function readRequest(stream: Stream): Promise<SyncRequest | undefined> {
  for await (const message of lp.decode(stream)) return JSON.parse(Buffer.from(message.subarray()).toString('utf8')) as SyncRequest
  return undefined
}

function reply(stream: Stream, message: unknown): void {
  stream.send(lp.encode.single(canonicalBytes(message)))
}

/** A hostile peer: a bare libp2p host whose sync handler is `respond`. */
async function hostile(respond: Responder): Promise<Host> {
  const host = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  await host.start()
  await host.handle(SYNC_PROTOCOL, async (stream) => {
    try {
      await respond(await readRequest(stream), stream, host)
      await stream.close()
    } catch {
      stream.abort(new Error('hostile handler done'))
    }
  })
  return host
}

/** Summary claiming the liar's seqs 1..160, with sets equal to an empty node's. */
const liarSummary = { type: 'summary', keys: [[liar.publicKey.keyid, [[1, 160]]]], ...EMPTY_SETS }

const sessions = (node: RbqNode, outcome: string) => counterValue(node, 'rbq_sync_sessions_total', { outcome })
const violations = (node: RbqNode, labels: Record<string, string>) => counterValue(node, 'rbq_sync_violations_total', labels)

describe('sync abuse', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })
  async function victim(): Promise<RbqNode> {
    // A small batch makes "10× the batch" cheap to produce.
    const n = await startTestNode({ toml: { sync: { batch_frames: 16 } } })
    cleanups.push(n.cleanup)
    return n.node
  }
  async function attacker(respond: Responder): Promise<Host> {
    const host = await hostile(respond)
    cleanups.push(async () => {
      await host.stop()
    })
    return host
  }
  /** After abuse: an honest peer's frames still sync completely, and nothing else is stored. */
  async function stillCorrect(node: RbqNode): Promise<void> {
    const honest: TestNode = await startTestNode()
    cleanups.push(honest.cleanup)
    const key = generateSigningKey()
    const frames = Array.from({ length: 40 }, (_, i) => attestation(key, i + 1))
    await honest.node.pipeline.submitMany(
      frames.map((f) => f.bytes),
      'local'
    )
    await connect(node, honest.node)
    await waitFor(async () => (await node.store.hasFrames(frames.map((f) => f.id))).every(Boolean), { what: 'honest frames' })
    expect(await node.store.count()).toBe(40)
  }

  it('a responder sending 10× the allowed batch: violation, nothing stored from it', async () => {
    const node = await victim()
    const host = await attacker(async (request, stream) => {
      if (request?.type === 'summary-request') return reply(stream, liarSummary)
      // Asked for 16 frames; sends 160 (valid ones), then end.
      for (let i = 0; i < 160; i += 10) reply(stream, { type: 'frames', frames: liarFrames.slice(i, i + 10).map((f) => frameText(f.bytes)) })
      reply(stream, { type: 'end' })
    })
    await node.libp2p.dial(host.getMultiaddrs()[0] as ReturnType<typeof multiaddr>)
    await waitFor(async () => (await sessions(node, 'violation')) === 1, { what: 'the violation' })
    expect(await violations(node, { side: 'requester', code: 'SYNC_PROTOCOL' })).toBe(1)
    expect(await node.store.count()).toBe(0)
    await stillCorrect(node)
  })

  it('a responder sending garbage: violation per session, ban after three', async () => {
    const node = await victim()
    const garbage = [
      () => lp.encode.single(utf8('this is not json')),
      () => lp.encode.single(utf8('{"keys":"nope","type":"summary"}')),
      () => lp.encode.single(utf8('{ "type": "end" }')) // not canonical
    ].map((encode) => () => encode().subarray())
    let round = 0
    const host = await attacker(async (_request, stream) => {
      stream.send((garbage[round++ % garbage.length] as () => Uint8Array)())
    })
    const addr = host.getMultiaddrs()[0] as ReturnType<typeof multiaddr>
    await node.libp2p.dial(addr)
    await waitFor(async () => (await sessions(node, 'violation')) === 1, { what: 'first violation' })
    for (let i = 0; i < 2; i++) await node.network.sync.syncWith(host.peerId)
    expect(await sessions(node, 'violation')).toBe(3)
    expect(await violations(node, { code: 'JSON_MALFORMED' })).toBe(1)
    expect(await violations(node, { code: 'SCHEMA_INVALID' })).toBe(1)
    expect(await violations(node, { code: 'NOT_CANONICAL' })).toBe(1)
    // Banned: disconnected, and neither side can connect again.
    expect(await counterValue(node, 'rbq_sync_bans_total', {})).toBe(1)
    await waitFor(() => node.libp2p.getConnections(host.peerId).length === 0 && host.getConnections(node.peerId).length === 0, { what: 'hang-up' })
    const hostAddr = host.getMultiaddrs()[0] as ReturnType<typeof multiaddr>
    await expect(node.libp2p.dial(hostAddr).then(() => 'connected')).rejects.toThrow()
    // The banned peer's own dial may complete its handshake, but the node drops it at once.
    await host.dial(multiaddr(node.addresses[0] as string)).catch(() => undefined)
    await waitFor(() => host.getConnections(node.peerId).length === 0, { what: 'the banned peer to be dropped' })
    expect(node.libp2p.getConnections(host.peerId)).toHaveLength(0)
    expect((await node.network.sync.syncWith(host.peerId)).outcome).toBe('skipped')
    await stillCorrect(node)
  })

  it('a responder that hangs up mid-response: the session fails, no frames, no strike', async () => {
    const node = await victim()
    const host = await attacker(async (request, stream, self) => {
      if (request?.type === 'summary-request') return reply(stream, liarSummary)
      // Half of a frames message, then the connection drops.
      const whole = lp.encode.single(encodeSyncMessage({ type: 'frames', frames: liarFrames.slice(0, 10).map((f) => frameText(f.bytes)) }))
      stream.send(whole.subarray(0, whole.length >> 1))
      await new Promise((r) => setTimeout(r, 20))
      await self.hangUp(node.peerId)
    })
    await node.libp2p.dial(host.getMultiaddrs()[0] as ReturnType<typeof multiaddr>)
    await waitFor(async () => (await sessions(node, 'failed')) === 1, { what: 'the failed session' })
    expect(await sessions(node, 'violation')).toBe(0)
    expect(await node.store.count()).toBe(0)
    await stillCorrect(node)
  })

  it('garbage requests: each answered by a closed stream and a strike; the node keeps serving', async () => {
    const node = await victim()
    // As a responder this peer behaves; it is its requests that are garbage.
    const host = await attacker(async (_request, stream) => reply(stream, { type: 'summary', keys: [], ...EMPTY_SETS }))
    await host.dial(multiaddr(node.addresses[0] as string))
    const send = async (bytes: Uint8Array): Promise<void> => {
      const stream = await host.dialProtocol(node.peerId, SYNC_PROTOCOL)
      stream.send(bytes)
      await stream.close().catch(() => undefined)
      // The node answers nothing and resets (or closes) the stream.
      let answered = false
      try {
        for await (const _ of stream) answered = true
      } catch (e) {
        expect((e as Error).name).toBe('StreamResetError')
      }
      expect(answered).toBe(false)
    }
    await send(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f])) // length prefix of 4 GiB
    await send(lp.encode.single(canonicalBytes({ type: 'frames-request', ranges: [], limit: 1 })).subarray())
    await waitFor(async () => (await violations(node, { side: 'responder' })) === 2, { what: 'two responder-side strikes' })
    expect(await violations(node, { side: 'responder', code: 'INPUT_TOO_LARGE' })).toBe(1)
    expect(await violations(node, { side: 'responder', code: 'SCHEMA_INVALID' })).toBe(1)
    // A well-formed request from the same peer is still served.
    const stream = await host.dialProtocol(node.peerId, SYNC_PROTOCOL)
    stream.send(lp.encode.single(encodeSyncMessage({ type: 'summary-request' })))
    await stream.close()
    const answers = []
    for await (const m of lp.decode(stream)) answers.push(JSON.parse(Buffer.from(m.subarray()).toString()))
    expect(answers).toEqual([{ type: 'summary', keys: [], ...EMPTY_SETS }])
    await stillCorrect(node)
  })
})
