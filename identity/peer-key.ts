/**
 * The libp2p peer key (`<data>/peer.key`): an Ed25519 key separate from the signing key, kept
 * so the node's PeerId is stable across restarts. File: standard base64 of the libp2p
 * protobuf encoding (privateKeyToProtobuf) and a newline, mode 0600.
 */
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { fromBase64, RbqError, toBase64 } from '../protocol/index.js'
import { readFileBounded } from '../common/files.js'
import { checkSecretFileMode, writeSecretFile } from './signing-key.js'

const WHAT = 'peer key file'
/** An Ed25519 protobuf is 68 bytes; RSA keys people might bring are a few KiB. */
const MAX_PEER_KEY_FILE_BYTES = 16 * 1024

export async function loadPeerKey(path: string): Promise<PrivateKey> {
  await checkSecretFileMode(path, WHAT)
  const bytes = await readFileBounded(path, MAX_PEER_KEY_FILE_BYTES, WHAT)
  const text = Buffer.from(bytes).toString('utf8').trim()
  try {
    return privateKeyFromProtobuf(fromBase64(text, WHAT))
  } catch (e) {
    throw new RbqError('KEY_INVALID', `${WHAT} ${path}: not a base64 libp2p private key (${(e as Error).message})`, { cause: e })
  }
}

/** Loads the peer key, creating it (0600) on first start. */
export async function loadOrCreatePeerKey(path: string): Promise<{ key: PrivateKey; created: boolean }> {
  try {
    return { key: await loadPeerKey(path), created: false }
  } catch (e) {
    if (!(e instanceof RbqError && e.code === 'FILE_NOT_FOUND')) throw e
  }
  const key = await generateKeyPair('Ed25519')
  try {
    await writeSecretFile(path, `${toBase64(privateKeyToProtobuf(key))}\n`, WHAT)
  } catch (e) {
    // Another process created it between our read and our exclusive create: use theirs.
    if (e instanceof RbqError && e.code === 'FILE_EXISTS') return { key: await loadPeerKey(path), created: false }
    throw e
  }
  return { key, created: true }
}
