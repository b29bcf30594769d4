/**
 * GET /v1/events (server-sent events) through the typed client: new frames, verdict changes of
 * watched artifacts (after a new attestation, after a policy edit), heartbeats, replay.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { ApiEvent, VerdictEvent } from '../../../../protocol/api.js'
import { ApiClient } from '../../../../client/api-client.js'
import { attest, DEB, H, key, PKG, policy } from '../consensus/fixtures.js'
import { startApi, type ApiHarness } from './harness.js'

const A = key('events root a')
const B = key('events root b')
const TWO_OF_TWO = policy({ threshold: 2, roots: [{ name: 'a', key: A }, { name: 'b', key: B }] })

let h: ApiHarness | undefined
afterEach(async () => {
  await h?.stop()
  h = undefined
})

/** Reads events until `done` says stop, or fails after the deadline. */
async function collect(client: ApiClient, opts: Parameters<ApiClient['events']>[0], done: (seen: ApiEvent[]) => boolean, start?: () => Promise<unknown>): Promise<ApiEvent[]> {
  const controller = new AbortController()
  const deadline = setTimeout(() => controller.abort(new Error('deadline')), 15_000)
  const seen: ApiEvent[] = []
  try {
    const it = client.events({ ...opts, signal: controller.signal })
    // The stream is open once the first read is pending; start the action after that.
    const first = it.next()
    await new Promise((r) => setTimeout(r, 0))
    const started = start?.()
    let next = await first
    while (!next.done) {
      seen.push(next.value)
      if (done(seen)) break
      next = await it.next()
    }
    await started
    await it.return(undefined)
  } finally {
    clearTimeout(deadline)
  }
  if (!done(seen)) throw new Error(`event stream ended before the expected events; saw ${JSON.stringify(seen.map((e) => e.type))}`)
  return seen
}

describe('GET /v1/events', () => {
  it('delivers the attestation and the verdict change of a watched artifact it causes', async () => {
    h = await startApi({ policy: TWO_OF_TWO })
    await h.client.submitFrame(attest(A, { seq: 1 }).bytes)
    const [watched] = await h.client.watch([{ package: PKG, artifact: DEB, sha256: H }])
    expect(watched!.status).toBe('insufficient')

    const b = attest(B, { seq: 1 })
    const harness = h
    const events = await collect(
      h.client,
      { types: ['attestation', 'verdict'] },
      (seen) => seen.some((e) => e.type === 'verdict'),
      async () => {
        // Connected: wait until the server counts this client, then submit.
        while (harness.server.events.size === 0) await new Promise((r) => setTimeout(r, 5))
        await harness.client.submitFrame(b.bytes)
      }
    )
    const attestation = events.find((e) => e.type === 'attestation')
    expect(attestation?.data).toMatchObject({ id: b.id, kind: 'attestation', signer: B.publicKey.keyid, package: PKG, outcome: 'reproduced', subject: [{ name: DEB, sha256: H }] })
    const verdict = events.find((e) => e.type === 'verdict')!.data as VerdictEvent
    expect(verdict).toMatchObject({ package: PKG, artifact: DEB, sha256: H, from: 'insufficient', to: 'reproduced', previousEvidenceHash: watched!.evidenceHash })
    expect((await h.client.watched())[0]).toMatchObject({ status: 'reproduced', evidenceHash: verdict.evidenceHash })
  })

  it('a policy edit while the node runs changes watched verdicts (event), and the status reports the new policy', async () => {
    h = await startApi({ policy: TWO_OF_TWO })
    await h.client.submitFrame(attest(A, { seq: 1 }).bytes)
    await h.client.watch([{ package: PKG, artifact: DEB, sha256: H }])
    const harness = h
    const events = await collect(
      h.client,
      { types: ['verdict'] },
      (seen) => seen.length > 0,
      async () => {
        while (harness.server.events.size === 0) await new Promise((r) => setTimeout(r, 5))
        await harness.writePolicy(policy({ threshold: 1, roots: [{ name: 'a', key: A }] }))
      }
    )
    expect(events[0]!.data).toMatchObject({ from: 'insufficient', to: 'reproduced' })
    expect((await h.client.status()).policy.threshold).toBe(1)
  })

  it('sends heartbeat comments and replays after Last-Event-ID', async () => {
    h = await startApi({ policy: TWO_OF_TWO, init: { heartbeatMs: 30 } })
    // Heartbeats: read the raw stream until one arrives.
    const controller = new AbortController()
    const res = await fetch(`${h.url}/v1/events`, { signal: controller.signal })
    expect(res.headers.get('content-type')).toContain('text/event-stream')
    let text = ''
    const decoder = new TextDecoder()
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk)
      if (text.includes(': heartbeat')) break
    }
    controller.abort()
    expect(text).toMatch(/^retry: \d+\n: connected\n\n/)

    const f1 = attest(A, { seq: 1 })
    const f2 = attest(A, { seq: 2, pkg: 'pkg:deb/debian/two@1?arch=source' })
    const harness = h
    const first = await collect(h.client, { types: ['attestation'] }, (seen) => seen.length === 2, async () => {
      while (harness.server.events.size === 0) await new Promise((r) => setTimeout(r, 5))
      await harness.client.submitFrames([f1.bytes, f2.bytes])
    })
    const ids = first.map((e) => (e.data as { id: string }).id).sort()
    expect(ids).toEqual([f1.id, f2.id].sort())
    // Reconnecting after the first event replays only the second.
    const replayed = await collect(h.client, { types: ['attestation'], lastEventId: first[0]!.id }, (seen) => seen.length === 1)
    expect(replayed[0]!.data).toEqual(first[1]!.data)
  })

  it('refuses unknown event types', async () => {
    h = await startApi({ policy: TWO_OF_TWO })
    const r = await fetch(`${h.url}/v1/events?types=verdict,gossip`)
    expect(r.status).toBe(400)
    expect(((await r.json()) as { error: { field: string } }).error.field).toBe('types')
  })
})

describe('ApiClient without a node', () => {
  it('says how to start one (API_UNAVAILABLE), for requests and for events', async () => {
    // A port nothing listens on: take one from a started server, then stop it.
    const tmp = await startApi()
    const url = tmp.url
    await tmp.stop()
    const client = new ApiClient({ url })
    await expect(client.status()).rejects.toMatchObject({ code: 'API_UNAVAILABLE', message: `no rbq node at ${url} — start one with \`rbq node start\`` })
    await expect(client.events().next()).rejects.toMatchObject({ code: 'API_UNAVAILABLE' })
  })

  it('finds the node through <data>/api.url, and a write without a token file is UNAUTHORIZED', async () => {
    h = await startApi()
    const viaFile = new ApiClient({ dataDir: h.dir, env: {} })
    expect(await viaFile.url()).toBe(h.url)
    expect((await viaFile.status()).api).toBe(h.url)
    const noToken = new ApiClient({ url: h.url, dataDir: '/nonexistent-rbq-dir', env: {} })
    await expect(noToken.submitFrame(attest(A, { seq: 1 }).bytes)).rejects.toMatchObject({ code: 'UNAUTHORIZED' })
    // $RBQ_API wins over the data dir; --api wins over both.
    expect(await new ApiClient({ dataDir: h.dir, env: { RBQ_API: 'http://127.0.0.1:1' } }).url()).toBe('http://127.0.0.1:1')
    expect(await new ApiClient({ url: 'http://127.0.0.1:2/', dataDir: h.dir, env: { RBQ_API: 'http://127.0.0.1:1' } }).url()).toBe('http://127.0.0.1:2')
  })
})
