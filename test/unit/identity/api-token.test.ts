/** The API token file: created 0600 once, reused, refused when readable by others or malformed. */
import { chmod, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { bearerToken, loadOrCreateApiToken, readApiToken, tokenMatches } from '../../../identity/api-token.js'
import { makeTempDir } from '../../utils/tmp.js'

let dir: string
let cleanup: () => Promise<void>
beforeEach(async () => ({ dir, cleanup } = await makeTempDir('rbq-token-')))
afterEach(() => cleanup())

describe('API token', () => {
  it('is 32 random bytes in hex, created with mode 0600 once and then reused', async () => {
    const path = join(dir, 'sub', 'api.token')
    const first = await loadOrCreateApiToken(path)
    expect(first.created).toBe(true)
    expect(first.token).toMatch(/^[0-9a-f]{64}$/)
    expect((await stat(path)).mode & 0o777).toBe(0o600)
    expect((await readFile(path, 'utf8')).trim()).toBe(first.token)
    const again = await loadOrCreateApiToken(path)
    expect(again).toEqual({ token: first.token, created: false })
    expect((await loadOrCreateApiToken(join(dir, 'other.token'))).token).not.toBe(first.token)
  })

  it('refuses a token file readable by group or others, and a malformed one', async () => {
    const path = join(dir, 'api.token')
    await loadOrCreateApiToken(path)
    await chmod(path, 0o640)
    await expect(readApiToken(path)).rejects.toMatchObject({ code: 'FILE_PERMISSIONS' })
    await expect(loadOrCreateApiToken(path)).rejects.toMatchObject({ code: 'FILE_PERMISSIONS' })
    const bad = join(dir, 'bad.token')
    await writeFile(bad, 'not a token\n', { mode: 0o600 })
    await expect(readApiToken(bad)).rejects.toMatchObject({ code: 'FILE_UNREADABLE' })
  })

  it('parses bearer headers and compares tokens exactly', () => {
    const t = 'ab'.repeat(32)
    expect(bearerToken(`Bearer ${t}`)).toBe(t)
    expect(bearerToken(`bearer  ${t} `)).toBe(t)
    expect(bearerToken(t)).toBeUndefined()
    expect(bearerToken(['Bearer x', 'Bearer y'])).toBeUndefined()
    expect(bearerToken(undefined)).toBeUndefined()
    expect(tokenMatches(t, t)).toBe(true)
    expect(tokenMatches(t.toUpperCase(), t)).toBe(false)
    expect(tokenMatches(t.slice(1), t)).toBe(false)
    expect(tokenMatches(t + '0', t)).toBe(false)
    expect(tokenMatches(undefined, t)).toBe(false)
    expect(tokenMatches('', t)).toBe(false)
  })
})
