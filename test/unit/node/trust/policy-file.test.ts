/** The node's policy file is re-read when it changes; each reload is logged, loaded or refused (issue 15). */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createLogger } from '../../../../common/logger.js'
import { PolicyFile } from '../../../../node/trust/policy-file.js'
import { makeTempDir } from '../../../utils/tmp.js'
import { key } from '../consensus/fixtures.js'

let dir: string
let cleanup: () => Promise<void>
beforeEach(async () => ({ dir, cleanup } = await makeTempDir('rbq-policy-file-')))
afterEach(() => cleanup())

const A = key('policy file a')
const B = key('policy file b')
const root = (name: string, k: typeof A) => `[[root]]\nname = "${name}"\nkey = "${k.publicKey.text}"\n`

describe('PolicyFile', () => {
  it('logs each (re)load: loaded with its roots, refused with the error; explains chains while the threshold is not met', async () => {
    const file = join(dir, 'policy.toml')
    const lines: Record<string, unknown>[] = []
    const logger = createLogger({ level: 'info', destination: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) } })
    const policy = new PolicyFile(file, logger)

    await writeFile(file, `threshold = 1\n${root('a', A)}`)
    expect((await policy.current()).policy?.threshold).toBe(1)
    expect(lines.at(-1)).toMatchObject({ level: 'info', msg: 'policy loaded', file, roots: ['a'], threshold: 1 })

    await writeFile(file, `# the file's size changes with each edit here, so the reload never hangs on mtime resolution\nthreshold = 2\n${root('a', A)}`)
    const refused = await policy.current()
    expect(refused.policy).toBeUndefined()
    expect(refused.policy === undefined ? refused.explainable?.roots.map((r) => r.name) : 'loaded').toEqual(['a'])
    expect(lines.at(-1)).toMatchObject({ level: 'warn', msg: 'policy refused: no verdicts until it is fixed', code: 'POLICY_INVALID' })
    expect(String(lines.at(-1)?.err)).toContain('2 parties needed but only 1 [[root]] listed')

    await writeFile(file, `threshold = 2\n${root('a', A)}${root('b', B)}`)
    await policy.current()
    expect(lines.at(-1)).toMatchObject({ level: 'info', msg: 'policy reloaded', roots: ['a', 'b'] })
    const count = lines.length
    await policy.current() // unchanged: no reload, no line
    expect(lines.length).toBe(count)
  })
})
