/**
 * `rbq trust add|remove` (spawned binary) edit the policy file's text: the admin's comments and
 * layout stay; a layout the text edit cannot handle is rewritten, with a note.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parsePolicy } from '../../../node/consensus/policy.js'
import { generateSigningKey } from '../../../protocol/index.js'
import { runRbq } from '../../utils/cli.js'
import { makeTempDir } from '../../utils/tmp.js'

let dir: string
let cleanup: () => Promise<void>
beforeAll(async () => ({ dir, cleanup } = await makeTempDir('rbq-trust-edit-')))
afterAll(() => cleanup())

const [A, B] = [generateSigningKey().publicKey, generateSigningKey().publicKey]

describe('rbq trust add / remove keep the file\'s comments', () => {
  it('adds and removes [[root]] tables in the text', async () => {
    const file = join(dir, 'policy.toml')
    const original = `# Reviewed by the security team (TICKET-42). Ask before editing.
threshold = 1
count = "party" # each institution once

# Debian's rebuilders
[[root]]
name = "debian"
key = "${A!.text}"
scope = ["pkg:deb/debian/*"]
`
    await writeFile(file, original)
    const add = await runRbq(['trust', 'add', 'lab', B!.text, '--scope', 'pkg:deb/debian/hello', '--policy', file])
    expect(add.code, add.stderr).toBe(0)
    const added = await readFile(file, 'utf8')
    expect(added).toBe(`${original}\n[[root]]\nname = "lab"\nkey = "${B!.text}"\nscope = ["pkg:deb/debian/hello"]\n`)

    const remove = await runRbq(['trust', 'remove', 'debian', '--policy', file])
    expect(remove.code, remove.stderr).toBe(0)
    expect(remove.stderr).toBe('')
    expect(await readFile(file, 'utf8')).toBe(`# Reviewed by the security team (TICKET-42). Ask before editing.
threshold = 1
count = "party" # each institution once

[[root]]
name = "lab"
key = "${B!.text}"
scope = ["pkg:deb/debian/hello"]
`)
  })

  it('rewrites a file whose roots are an inline array, and says the comments were not kept', async () => {
    const file = join(dir, 'inline.toml')
    await writeFile(file, `# inline\nthreshold = 1\nroot = [{ name = "debian", key = "${A!.text}" }]\n`)
    const add = await runRbq(['trust', 'add', 'lab', B!.text, '--policy', file])
    expect(add.code, add.stderr).toBe(0)
    expect(add.stderr).toContain('comments were not kept')
    expect(parsePolicy(await readFile(file, 'utf8')).roots.map((r) => r.name)).toEqual(['debian', 'lab'])
  })
})
