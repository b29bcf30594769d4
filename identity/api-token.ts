/**
 * The API bearer token: 32 random bytes, hex, in `<data>/api.token` (mode 0600, created on the
 * node's first start). Write routes require `Authorization: Bearer <token>`; reads do not (the
 * API listens on loopback only). Comparison is constant-time over SHA-256 digests, so neither
 * the token's bytes nor its length leak through timing.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { RbqError } from '../protocol/index.js'
import { checkSecretFileMode, writeSecretFile } from './signing-key.js'

export const API_TOKEN_BYTES = 32
const TOKEN_RE = /^[0-9a-f]{64}$/

export function generateApiToken(): string {
  return randomBytes(API_TOKEN_BYTES).toString('hex')
}

/** Reads the token file, refusing a group/world-readable or malformed one. */
export async function readApiToken(path: string): Promise<string> {
  await checkSecretFileMode(path, 'API token file')
  let text: string
  try {
    text = await fs.readFile(path, 'utf8')
  } catch (e) {
    throw new RbqError('FILE_UNREADABLE', `API token file ${path}: ${(e as Error).message}`, { cause: e })
  }
  const token = text.trim()
  if (!TOKEN_RE.test(token)) throw new RbqError('FILE_UNREADABLE', `API token file ${path} does not hold a token (64 hex characters); delete it and restart the node`)
  return token
}

/** Loads the token, creating the file (0600) when missing. */
export async function loadOrCreateApiToken(path: string): Promise<{ token: string; created: boolean }> {
  try {
    return { token: await readApiToken(path), created: false }
  } catch (e) {
    if (!(e instanceof RbqError && e.code === 'FILE_NOT_FOUND')) throw e
  }
  const token = generateApiToken()
  try {
    await writeSecretFile(path, token + '\n', 'API token file')
    return { token, created: true }
  } catch (e) {
    // Another process (a second `rbq init`) created it first: use theirs.
    if (e instanceof RbqError && e.code === 'FILE_EXISTS') return { token: await readApiToken(path), created: false }
    throw e
  }
}

/** The token of an `Authorization: Bearer <token>` header, if that is what it holds. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined
  const m = /^Bearer[ ]+([^ ]+)[ ]*$/i.exec(header)
  return m?.[1]
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest()

/** Constant-time comparison of a presented token with the node's. */
export function tokenMatches(presented: string | undefined, token: string): boolean {
  if (presented === undefined) return false
  return timingSafeEqual(digest(presented), digest(token))
}
