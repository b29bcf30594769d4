import { chmod, writeFile } from 'node:fs/promises'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it } from 'vitest'
import { isRbqError } from '../../../protocol/index.js'
import { loadOrCreatePeerKey, loadPeerKey } from '../../../identity/peer-key.js'
import { makeTempDir } from '../../utils/tmp.js'

describe('peer key file', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c()
  })
  async function path(): Promise<string> {
    const { dir, cleanup } = await makeTempDir()
    cleanups.push(cleanup)
    return join(dir, 'peer.key')
  }

  it('is created once with mode 0600 and gives the same peer id on reload', async () => {
    const file = await path()
    const first = await loadOrCreatePeerKey(file)
    expect(first.created).toBe(true)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    const again = await loadOrCreatePeerKey(file)
    expect(again.created).toBe(false)
    expect(peerIdFromPrivateKey(again.key).toString()).toBe(peerIdFromPrivateKey(first.key).toString())
  })

  it('refuses a group-readable file and a corrupt one', async () => {
    const file = await path()
    await loadOrCreatePeerKey(file)
    await chmod(file, 0o640)
    await expect(loadPeerKey(file)).rejects.toSatisfy((e) => isRbqError(e, 'FILE_PERMISSIONS'))
    await chmod(file, 0o600)
    await writeFile(file, 'not a key\n')
    await expect(loadPeerKey(file)).rejects.toSatisfy((e) => isRbqError(e, 'KEY_INVALID'))
  })
})
