import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { generateSigningKey } from '../../../../protocol/index.js'
import { Store } from '../../../../node/db/store.js'
import { loadSeqRuns, SeqRuns, storedAttestationSeq } from '../../../../node/p2p/seq-runs.js'
import { makeTempDir } from '../../../utils/tmp.js'
import { attestation } from '../../../utils/frames.js'

const K = 'a'.repeat(64)

function runsOf(seqs: number[]): [number, number][] {
  const runs: [number, number][] = []
  for (const s of [...new Set(seqs)].sort((a, b) => a - b)) {
    const last = runs[runs.length - 1]
    if (last !== undefined && last[1] + 1 === s) last[1] = s
    else runs.push([s, s])
  }
  return runs
}

describe('SeqRuns', () => {
  it('holds the same runs whatever the insertion order', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 80 }), { maxLength: 120 }), (seqs) => {
        const runs = new SeqRuns()
        for (const s of seqs) runs.add(K, s)
        expect(runs.runs(K) ?? []).toEqual(runsOf(seqs))
      })
    )
  })

  it('pages key ids in order', () => {
    const runs = new SeqRuns()
    for (const k of ['c', 'a', 'b']) runs.add(k.repeat(64), 1)
    expect(runs.keys()).toEqual(['a', 'b', 'c'].map((k) => k.repeat(64)))
    expect(runs.indexAfter('')).toBe(0)
    expect(runs.indexAfter('a'.repeat(64))).toBe(1)
    expect(runs.indexAfter('c'.repeat(64))).toBe(3)
  })

  it('addRun merges with what is there', () => {
    const runs = new SeqRuns()
    runs.addRun(K, 1, 5)
    runs.addRun(K, 6, 9)
    runs.addRun(K, 20, 22)
    runs.addRun(K, 10, 12)
    expect(runs.runs(K)).toEqual([[1, 12], [20, 22]])
  })
})

describe('loadSeqRuns', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  it('rebuilds the runs of every key from the store, gaps and equivocations included', async () => {
    const { dir, cleanup } = await makeTempDir()
    cleanups.push(cleanup)
    const store = await Store.open(dir)
    cleanups.push(() => store.close())
    const [a, b] = [generateSigningKey(), generateSigningKey()]
    const seqsA = [1, 2, 3, 5, 6, 9]
    await store.putFrames([...seqsA.map((s) => attestation(a, s)), attestation(a, 5, { variant: 1 }), ...[2, 3].map((s) => attestation(b, s))])
    const runs = await loadSeqRuns(store)
    expect(runs.runs(a.publicKey.keyid)).toEqual([[1, 3], [5, 6], [9, 9]])
    expect(runs.runs(b.publicKey.keyid)).toEqual([[2, 3]])
    expect(runs.size).toBe(2)
  })

  it('storedAttestationSeq reads the seq of a stored frame', () => {
    expect(storedAttestationSeq(attestation(generateSigningKey(), 42).bytes)).toBe(42)
  })
})
