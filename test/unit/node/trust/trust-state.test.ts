/**
 * TrustState, the one owner of the node's trust state (node/trust/README.md), over a real
 * LevelDB store and a real policy file: what it trusts, and that every change reaches it by an
 * event (a store write or eviction, a policy file edit, a delegation expiring) — no reloads.
 */
import { once } from 'node:events'
import { rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Store } from '../../../../node/db/store.js'
import { PolicyFile } from '../../../../node/trust/policy-file.js'
import { TrustState } from '../../../../node/trust/trust-state.js'
import { signEquivocationProof, type SigningKey } from '../../../../protocol/index.js'
import { attestation, delegation } from '../../../utils/frames.js'
import { makeTempDir } from '../../../utils/tmp.js'
import { delegate, key } from '../consensus/fixtures.js'

let dir: string
let cleanup: () => Promise<void>
let store: Store
let state: TrustState | undefined
beforeEach(async () => {
  ;({ dir, cleanup } = await makeTempDir('rbq-trust-state-'))
  store = await Store.open(join(dir, 'db'))
})
afterEach(async () => {
  state?.stop()
  state = undefined
  await store.close()
  await cleanup()
})

const policyText = (roots: SigningKey[]) => `threshold = 1\n${roots.map((k, i) => `[[root]]\nname = "root-${i}"\nkey = "${k.publicKey.text}"\n`).join('')}`
const [org, server, sub, stranger, other] = ['org', 'server', 'sub', 'stranger', 'other'].map((l) => key(`trust state ${l}`)) as [SigningKey, SigningKey, SigningKey, SigningKey, SigningKey]

/** A TrustState over the test store, counting how often it reads every delegation and proof. */
async function start(roots: SigningKey[], now?: () => number): Promise<{ trust: TrustState; file: string; fullReads: () => number }> {
  const file = join(dir, 'policy.toml')
  await writeFile(file, policyText(roots))
  let reads = 0
  const counted = Object.assign(Object.create(store) as Store, {
    allDelegations: () => (reads++, store.allDelegations()),
    allProofs: () => (reads++, store.allProofs())
  })
  state = new TrustState({ store: counted, policy: new PolicyFile(file), ...(now === undefined ? {} : { now }) })
  await state.start()
  return { trust: state, file, fullReads: () => reads }
}

const trusted = (trust: TrustState, ...keys: SigningKey[]) => keys.map((k) => trust.isTrusted(k.publicKey.keyid))

describe('TrustState', () => {
  it('trusts the roots and every key delegated from them; stored delegations and proofs arrive by store events, not reloads', async () => {
    await store.putFrames([delegation(org, server), delegation(stranger, other)])
    const { trust, fullReads } = await start([org])
    expect(fullReads()).toBe(2) // once at start: delegations, proofs
    expect(trusted(trust, org, server, sub, stranger, other)).toEqual([true, true, false, false, false])

    const changed = once(trust, 'changed')
    const before = trust.generation
    await store.putFrames([delegation(server, sub)])
    await changed
    expect(trust.generation).toBeGreaterThan(before)
    expect(trusted(trust, org, server, sub)).toEqual([true, true, true])

    // An equivocation proof against `sub` takes it out, and names it among the equivocators.
    const proof = signEquivocationProof(org, attestation(sub, 1), attestation(sub, 1, { variant: 2 }))
    await store.putFrames([proof])
    expect(trusted(trust, org, server, sub)).toEqual([true, true, false])
    expect([...trust.equivocators()]).toEqual([sub.publicKey.keyid])

    // An attestation changes no trust: no event, same generation.
    const generation = trust.generation
    await store.putFrames([attestation(server, 1)])
    expect(trust.generation).toBe(generation)
    expect(fullReads()).toBe(2)
  })

  it('an evicted delegation is forgotten (and its decoded frame)', async () => {
    const d = delegation(org, server)
    await store.putFrames([d])
    const { trust } = await start([org])
    expect(trusted(trust, server)).toEqual([true])
    expect((await trust.frames([d.id, 'f'.repeat(64)])).map((f) => f.id)).toEqual([d.id])
    const changed = once(trust, 'changed')
    await store.evict(await store.arrivals(undefined, 10))
    await changed
    expect(trusted(trust, org, server)).toEqual([true, false])
    expect(trust.frameSet('delegations').frames.size).toBe(0)
    expect(await trust.frames([d.id])).toEqual([])
  })

  it('follows edits of the policy file by its watch: replaced, rewritten, broken', async () => {
    await store.putFrames([delegation(org, server), delegation(stranger, other)])
    const { trust, file } = await start([org])
    expect(trusted(trust, org, server, stranger, other)).toEqual([true, true, false, false])

    // Replaced by rename, as editors and `rbq trust` do: the organisation's chain is a stranger now.
    let changed = once(trust, 'changed')
    await writeFile(`${file}.new`, policyText([stranger]))
    await rename(`${file}.new`, file)
    await changed
    expect(trusted(trust, org, server, stranger, other)).toEqual([false, false, true, true])

    // A broken policy: nobody is trusted (strangers' quotas apply to all), and the graph says why.
    changed = once(trust, 'changed')
    await writeFile(file, 'threshold = "two"\n')
    await changed
    expect(trusted(trust, org, stranger)).toEqual([false, false])
    await expect(trust.graph()).rejects.toMatchObject({ code: 'POLICY_INVALID' })
    expect((await trust.policy()).error?.code).toBe('POLICY_INVALID')
  })

  it('a delegation expiring: a timer at the expiry rebuilds the graph and tells listeners', async () => {
    const expires = new Date('2030-01-01T00:00:00Z')
    await store.putFrames([delegate(org, server, { expires })])
    // The clock stands 200 ms before the expiry when the test starts.
    const offset = expires.getTime() - 200 - Date.now()
    const { trust } = await start([org], () => Date.now() + offset)
    expect(trusted(trust, server)).toEqual([true])
    expect((await trust.graph()).validUntil).toBe(expires.getTime())
    await once(trust, 'changed')
    expect(trusted(trust, org, server)).toEqual([true, false])
    expect((await trust.graph()).validUntil).toBeUndefined()
  })

  it("gives sync its sets by ascending frame id, with a version that moves only when the set does", async () => {
    const ds = [delegation(org, server), delegation(server, sub), delegation(stranger, other)]
    await store.putFrames(ds.slice(0, 2))
    const { trust } = await start([org])
    const first = trust.frameSet('delegations')
    expect(trust.frameSet('delegations')).toBe(first)
    expect([...first.frames.keys()]).toEqual(ds.slice(0, 2).map((d) => d.id).sort())
    await store.putFrames([attestation(org, 1)])
    expect(trust.frameSet('delegations').version).toBe(first.version)
    await store.putFrames([ds[2]!])
    const second = trust.frameSet('delegations')
    expect(second.version).not.toBe(first.version)
    expect([...second.frames.keys()]).toEqual(ds.map((d) => d.id).sort())
    expect(second.frames.get(ds[2]!.id)).toEqual(ds[2]!.bytes)
    expect(trust.frameSet('proofs').frames.size).toBe(0)
  })
})
