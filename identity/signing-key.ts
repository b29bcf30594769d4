/**
 * Key files on disk: created with mode 0600, refused when group/world can read them.
 * The bytes inside are protocol/keys.ts's key-file format.
 */
import { constants, promises as fs } from 'node:fs'
import { dirname } from 'node:path'
import { decodeKeyFile, encodeKeyFile, generateSigningKey, RbqError, type SigningKey } from '../protocol/index.js'

function ioError(e: unknown, path: string, what: string): RbqError {
  const code = (e as NodeJS.ErrnoException).code
  if (code === 'ENOENT') return new RbqError('FILE_NOT_FOUND', `${what} ${path} does not exist`, { cause: e })
  if (code === 'EEXIST') return new RbqError('FILE_EXISTS', `${what} ${path} already exists; refusing to overwrite it`, { cause: e })
  return new RbqError('FILE_UNREADABLE', `${what} ${path}: ${(e as Error).message}`, { cause: e })
}

/** Group/other permission bits on a secret file are refused (like ssh does). */
export async function checkSecretFileMode(path: string, what: string): Promise<void> {
  let st
  try {
    st = await fs.stat(path)
  } catch (e) {
    throw ioError(e, path, what)
  }
  if (!st.isFile()) throw new RbqError('FILE_UNREADABLE', `${what} ${path} is not a regular file`)
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0')
    throw new RbqError('FILE_PERMISSIONS', `${what} ${path} has mode ${mode}: it must not be readable by group or others (chmod 600 ${path})`)
  }
}

/** Writes a new secret file with mode 0600; never overwrites. */
export async function writeSecretFile(path: string, contents: string, what: string): Promise<void> {
  await writeNewFile(path, contents, what, 0o600)
}

/** Writes a new file with `mode` (0600 for secrets, 0644 for public keys); never overwrites. */
export async function writeNewFile(path: string, contents: string, what: string, mode: number): Promise<void> {
  await fs.mkdir(dirname(path), { recursive: true, mode: (mode & 0o077) === 0 ? 0o700 : 0o755 })
  let handle
  try {
    handle = await fs.open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode)
  } catch (e) {
    throw ioError(e, path, what)
  }
  try {
    await handle.writeFile(contents)
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Key files are ~200 bytes of JSON; anything much larger is not one. */
const MAX_KEY_FILE_BYTES = 4096

/**
 * Reads a key file. A file that is not a key is reported as KEY_INVALID before its permissions
 * are looked at: `chmod 600` is no advice for a file that is not a key at all.
 */
export async function loadKey(path: string): Promise<SigningKey> {
  let st
  try {
    st = await fs.stat(path)
  } catch (e) {
    throw ioError(e, path, 'key file')
  }
  if (!st.isFile()) throw new RbqError('FILE_UNREADABLE', `key file ${path} is not a regular file`)
  if (st.size > MAX_KEY_FILE_BYTES) throw new RbqError('KEY_INVALID', `${path} is not an rbq key file (${st.size} bytes; key files are JSON of about 200 bytes)`)
  let text: string
  try {
    text = await fs.readFile(path, 'utf8')
  } catch (e) {
    throw ioError(e, path, 'key file')
  }
  let key: SigningKey
  try {
    key = decodeKeyFile(text, `key file ${path}`)
  } catch (e) {
    if (e instanceof RbqError && e.code !== 'KEY_INVALID') throw new RbqError('KEY_INVALID', `${path} is not an rbq key file (not JSON)`, { cause: e })
    throw e
  }
  await checkSecretFileMode(path, 'key file')
  return key
}

export async function createKey(path: string): Promise<SigningKey> {
  return saveKey(path, generateSigningKey())
}

/** Writes `key` as a new key file (mode 0600); never overwrites. */
export async function saveKey(path: string, key: SigningKey): Promise<SigningKey> {
  await writeSecretFile(path, encodeKeyFile(key), 'key file')
  return key
}

/** Loads the key at `path`, creating it (0600) on first use. */
export async function loadOrCreateKey(path: string): Promise<{ key: SigningKey; created: boolean }> {
  try {
    return { key: await loadKey(path), created: false }
  } catch (e) {
    if (e instanceof RbqError && e.code === 'FILE_NOT_FOUND') {
      try {
        return { key: await createKey(path), created: true }
      } catch (e2) {
        // Another process created it between our read and our exclusive create.
        if (e2 instanceof RbqError && e2.code === 'FILE_EXISTS') return { key: await loadKey(path), created: false }
        throw e2
      }
    }
    throw e
  }
}
