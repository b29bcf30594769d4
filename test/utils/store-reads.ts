/**
 * Reads tests make of a store, through the methods the node itself uses (the Store keeps no
 * test-only accessors).
 */
import { frameId } from '../../protocol/index.js'
import type { Store } from '../../node/db/store.js'

export async function hasFrame(store: Store, id: string): Promise<boolean> {
  const [held] = await store.hasFrames([id])
  return held === true
}

/** Canonical bytes of a stored frame, or undefined. */
export async function frameBytes(store: Store, id: string): Promise<Uint8Array | undefined> {
  const [bytes] = await store.getFrames([id])
  return bytes
}

/** Attestations of this package signed by `keyid` (the (package, signer) index). */
export async function frameIdsByPackageKey(store: Store, pkg: string, keyid: string): Promise<string[]> {
  const [ids = []] = await store.frameIdsByPackageKeys([{ package: pkg, keyid }])
  return ids
}

/** Ids of `keyid`'s attestations at exactly `seq` (more than one is equivocation evidence). */
export async function attestationIdsAtSeq(store: Store, keyid: string, seq: number): Promise<string[]> {
  return (await store.attestationsInRange(keyid, seq, seq, 1000)).map(frameId)
}
