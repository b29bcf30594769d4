/**
 * Policy text edits for `rbq trust add|remove`: comments and layout stay, and the edited text
 * parses to the intended roots.
 */
import { describe, expect, it } from 'vitest'
import { parsePolicy } from '../../../../node/consensus/policy.js'
import { appendRoot, removeRoot } from '../../../../node/trust/policy-edit.js'
import { generateSigningKey } from '../../../../protocol/index.js'

const [A, B, C] = [generateSigningKey(), generateSigningKey(), generateSigningKey()].map((k) => k.publicKey)
const root = (name: string, key = A!, scope = ['*']) => ({ name, key, scope })

const FILE = `# Our trust policy — reviewed by the security team, see TICKET-42.
threshold = 2 # two parties
count = "party"

# Debian's own rebuilders
[[root]]
name = "debian"
key = "${A!.text}"
scope = ["pkg:deb/debian/*"] # Debian only

# Our build farm
# (two lines of comment)
[[root]]
name = "farm"
key = "${B!.text}"

# closing note
`

describe('policy text edits', () => {
  it('appendRoot adds a [[root]] table at the end and keeps every comment', () => {
    const out = appendRoot(FILE, root('lab', C!, ['pkg:deb/debian/hello']))
    expect(out.startsWith(FILE)).toBe(true)
    expect(out.slice(FILE.length)).toBe(`\n[[root]]\nname = "lab"\nkey = "${C!.text}"\nscope = ["pkg:deb/debian/hello"]\n`)
    expect(parsePolicy(out).roots.map((r) => r.name)).toEqual(['debian', 'farm', 'lab'])
    // No trailing newline, CRLF, and an empty text.
    expect(appendRoot('threshold = 1', root('x'))).toBe(`threshold = 1\n\n[[root]]\nname = "x"\nkey = "${A!.text}"\nscope = ["*"]\n`)
    expect(appendRoot('threshold = 1\r\n', root('x'))).toBe(`threshold = 1\r\n\r\n[[root]]\r\nname = "x"\r\nkey = "${A!.text}"\r\nscope = ["*"]\r\n`)
    expect(appendRoot('', root('x'))).toBe(`[[root]]\nname = "x"\nkey = "${A!.text}"\nscope = ["*"]\n`)
  })

  it('removeRoot takes the table with the comments above its header, and nothing else', () => {
    expect(removeRoot(FILE, 0)).toBe(`# Our trust policy — reviewed by the security team, see TICKET-42.
threshold = 2 # two parties
count = "party"

# Our build farm
# (two lines of comment)
[[root]]
name = "farm"
key = "${B!.text}"

# closing note
`)
    expect(removeRoot(FILE, 1)).toBe(`# Our trust policy — reviewed by the security team, see TICKET-42.
threshold = 2 # two parties
count = "party"

# Debian's own rebuilders
[[root]]
name = "debian"
key = "${A!.text}"
scope = ["pkg:deb/debian/*"] # Debian only

# closing note
`)
    expect(removeRoot(removeRoot(FILE, 1)!, 0)).toBe(`# Our trust policy — reviewed by the security team, see TICKET-42.
threshold = 2 # two parties
count = "party"

# closing note
`)
  })

  it('removeRoot: undefined when there is no such [[root]] header (inline arrays)', () => {
    expect(removeRoot(FILE, 2)).toBeUndefined()
    expect(removeRoot(`threshold = 1\nroot = [{ name = "a", key = "${A!.text}" }]\n`, 0)).toBeUndefined()
  })
})
