/**
 * With --json, errors are one JSON object `{"error":{"code","message"[,"field"]}}` on stdout
 * (spawned binary), whatever raised them: a typed error, commander's usage check, a command's own
 * refusal; a verb that already printed its JSON answer keeps it as the one document.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CliExit, errorJson, EXIT_NEGATIVE, EXIT_USAGE } from '../../../cli/exit.js'
import { RbqError } from '../../../protocol/index.js'
import { runRbq } from '../../utils/cli.js'
import { makeTempDir } from '../../utils/tmp.js'

let dir: string
let cleanup: () => Promise<void>
beforeAll(async () => ({ dir, cleanup } = await makeTempDir('rbq-json-errors-')))
afterAll(() => cleanup())

const onlyError = (r: { stdout: string }) => JSON.parse(r.stdout) as { error: { code: string; message: string; field?: string } }

describe('--json errors', () => {
  it('errorJson: typed errors as the API error body; refusals and bugs get a code too', () => {
    expect(errorJson(new RbqError('KEY_INVALID', 'bad key', { field: 'publicKey' }))).toEqual({ error: { code: 'KEY_INVALID', message: 'bad key', field: 'publicKey' } })
    expect(errorJson(new CliExit(EXIT_NEGATIVE, 'rbq: no root named "x"', 'NOT_FOUND'))).toEqual({ error: { code: 'NOT_FOUND', message: 'no root named "x"' } })
    expect(errorJson(new CliExit(EXIT_USAGE, 'rbq: the node is down [API_UNAVAILABLE]', 'API_UNAVAILABLE'))).toEqual({ error: { code: 'API_UNAVAILABLE', message: 'the node is down' } })
    expect(errorJson(new CliExit(EXIT_NEGATIVE, 'rbq: refused'))).toEqual({ error: { code: 'FAILED', message: 'refused' } })
    expect(errorJson(new CliExit(EXIT_NEGATIVE))).toBeUndefined() // the answer was printed already
    expect(errorJson(new Error('boom\n    at x (y.js:1:1)'), {})).toEqual({ error: { code: 'INTERNAL', message: 'boom' } })
  })

  it('a typed error, a usage error, a refusal and an absent node: JSON on stdout, nothing on stderr', async () => {
    const missing = await runRbq(['key', 'show', '--key', join(dir, 'none.key'), '--json'])
    expect(missing.code).toBe(2)
    expect(onlyError(missing)).toEqual({ error: { code: 'FILE_NOT_FOUND', message: `key file ${join(dir, 'none.key')} does not exist` } })
    expect(missing.stderr).toBe('')

    const usage = await runRbq(['key', 'show', '--bogus', '--json'])
    expect(usage.code).toBe(2)
    expect(onlyError(usage)).toEqual({ error: { code: 'USAGE', message: "unknown option '--bogus'" } })
    expect(usage.stderr).toBe('')

    const policy = join(dir, 'policy.toml')
    await writeFile(policy, 'threshold = 1\n')
    const refusal = await runRbq(['trust', 'remove', 'nobody', '--policy', policy, '--json'])
    expect(refusal.code).toBe(1)
    expect(onlyError(refusal).error).toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('no root named or keyed "nobody"') })

    const down = await runRbq(['status', '--data', join(dir, 'no-node'), '--json'])
    expect(down.code).toBe(2)
    expect(onlyError(down).error.code).toBe('API_UNAVAILABLE')
  })

  it('a verb that answered in JSON keeps that one document; the error goes to stderr', async () => {
    const bad = join(dir, 'bad.frame')
    await writeFile(bad, '{"v":1,')
    const r = await runRbq(['inspect', bad, '--json'])
    expect(r.code).toBe(1)
    expect(JSON.parse(r.stdout)).toMatchObject({ valid: false, error: { code: 'JSON_MALFORMED' } })
    expect(r.stderr).toMatch(/^invalid: .*\[JSON_MALFORMED\]\n$/)
  })
})
