import { chmod, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createKey, loadKey, loadOrCreateKey } from '../../../identity/signing-key.js'
import { SeqCounter } from '../../../identity/seq-counter.js'
import { generateSigningKey, isRbqError } from '../../../protocol/index.js'
import { makeTempDir } from '../../utils/tmp.js'

let dir: string
let cleanup: () => Promise<void>
beforeEach(async () => ({ dir, cleanup } = await makeTempDir()))
afterEach(() => cleanup())

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (e) {
    return isRbqError(e) ? e.code : `not ours: ${String(e)}`
  }
  return 'no error'
}

describe('key files', () => {
  it('creates 0600 files, loads them back, never overwrites', async () => {
    const path = join(dir, 'sub', 'k.key')
    const key = await createKey(path)
    expect((await stat(path)).mode & 0o777).toBe(0o600)
    expect((await loadKey(path)).publicKey.keyid).toBe(key.publicKey.keyid)
    expect(await codeOf(createKey(path))).toBe('FILE_EXISTS')
    const again = await loadOrCreateKey(path)
    expect(again.created).toBe(false)
    expect(again.key.publicKey.keyid).toBe(key.publicKey.keyid)
  })
  it('refuses group/world-readable, missing and corrupt key files', async () => {
    const path = join(dir, 'k.key')
    await createKey(path)
    await chmod(path, 0o640)
    expect(await codeOf(loadKey(path))).toBe('FILE_PERMISSIONS')
    expect(await codeOf(loadKey(join(dir, 'missing.key')))).toBe('FILE_NOT_FOUND')
    await writeFile(join(dir, 'bad.key'), 'garbage', { mode: 0o600 })
    expect(await codeOf(loadKey(join(dir, 'bad.key')))).toBe('KEY_INVALID')
    // not a key at all: that is said before any permission advice
    await writeFile(join(dir, 'open.txt'), 'my-machine\n', { mode: 0o644 })
    expect(await codeOf(loadKey(join(dir, 'open.txt')))).toBe('KEY_INVALID')
    await writeFile(join(dir, 'big.key'), 'x'.repeat(10_000), { mode: 0o600 })
    expect(await codeOf(loadKey(join(dir, 'big.key')))).toBe('KEY_INVALID')
    expect(await codeOf(loadKey(dir))).toBe('FILE_UNREADABLE')
  })
  it('loadOrCreateKey creates on first use', async () => {
    const r = await loadOrCreateKey(join(dir, 'new.key'))
    expect(r.created).toBe(true)
  })
})

describe('seq counter', () => {
  it('persists every reserved seq and never hands one out twice, even concurrently', async () => {
    const path = join(dir, 'k.seq')
    const c = new SeqCounter(path, 'ab'.repeat(32))
    const got = await Promise.all(Array.from({ length: 20 }, () => c.reserve()))
    expect(new Set(got).size).toBe(20)
    expect(Math.max(...got)).toBe(20)
    // A new instance (a restart) continues above the persisted value.
    expect(await new SeqCounter(path, 'ab'.repeat(32)).reserve()).toBe(21)
    expect(await codeOf(c.reserve(21))).toBe('USAGE')
    expect(await c.reserve(100)).toBe(100)
    expect(await c.reserve()).toBe(101)
  })
  it('refuses a corrupt or foreign state file rather than guessing', async () => {
    const path = join(dir, 'k.seq')
    await writeFile(path, 'nonsense')
    expect(await codeOf(new SeqCounter(path, 'ab'.repeat(32)).reserve())).toBe('SEQ_STATE_INVALID')
    await writeFile(path, JSON.stringify({ keyid: 'cd'.repeat(32), lastSeq: 3 }))
    expect(await codeOf(new SeqCounter(path, 'ab'.repeat(32)).reserve())).toBe('SEQ_STATE_INVALID')
    expect(JSON.parse(await readFile(path, 'utf8')).lastSeq).toBe(3)
  })

  it('reserves seq blocks that never overlap, persisted before use', async () => {
    const key = generateSigningKey()
    const seqFile = join(dir, 'k.key.seq')
    // Two instances: as two processes would, they only share the file and its lock.
    const [a, b] = await Promise.all([new SeqCounter(seqFile, key.publicKey.keyid).reserveBlock(10), new SeqCounter(seqFile, key.publicKey.keyid).reserveBlock(5)])
    const seqs = [...Array.from({ length: 10 }, (_, i) => a + i), ...Array.from({ length: 5 }, (_, i) => b + i)]
    expect(new Set(seqs).size).toBe(15)
    expect(Math.min(...seqs)).toBe(1)
    expect(await new SeqCounter(seqFile, key.publicKey.keyid).last()).toBe(15)
    expect(JSON.parse(await readFile(seqFile, 'utf8')).keyid).toBe(key.publicKey.keyid)
  })
})
