import { describe, expect, it } from 'vitest'
import { formatPolicy, lineOfField, parsePolicy, policyFromObject } from '../../../../node/consensus/index.js'
import { RbqError } from '../../../../protocol/index.js'
import { key } from './fixtures.js'

const debian = key('debian').publicKey.text
const tails = key('tails').publicKey.text
const SMALL_ORDER = 'ed25519:' + Buffer.concat([Buffer.from([1]), Buffer.alloc(31)]).toString('base64url')

const GOOD = `# my policy
threshold = 2
count = "party"
max_dissent = 0
max_depth = 3

[[root]]
name = "debian"
key = "${debian}"
scope = ["pkg:deb/debian/*"]

[[root]]
name = "tails"
key = "${tails}"
`

function refusal(text: string): RbqError {
  try {
    parsePolicy(text, 'policy.toml')
  } catch (e) {
    expect(e).toBeInstanceOf(RbqError)
    expect((e as RbqError).code).toBe('POLICY_INVALID')
    return e as RbqError
  }
  throw new Error('policy was accepted')
}

describe('parsePolicy', () => {
  it('reads a full policy (two roots, one scoped); scope defaults to ["*"]', () => {
    const p = parsePolicy(GOOD)
    expect(p.threshold).toBe(2)
    expect(p.count).toBe('party')
    expect(p.maxDissent).toBe(0)
    expect(p.maxDepth).toBe(3)
    expect(p.roots.map((r) => r.name)).toEqual(['debian', 'tails'])
    expect(p.roots[0]!.key.keyid).toBe(key('debian').publicKey.keyid)
    expect(p.roots[0]!.scope).toEqual(['pkg:deb/debian/*'])
    expect(p.roots[1]!.scope).toEqual(['*'])
  })

  it('applies defaults for count, max_dissent and max_depth', () => {
    const p = parsePolicy(`threshold = 1\n[[root]]\nname = "a"\nkey = "${debian}"\n`)
    expect(p).toMatchObject({ threshold: 1, count: 'party', maxDissent: 0, maxDepth: 3 })
  })

  it('reports TOML syntax errors with line and column', () => {
    const e = refusal('threshold = 2\ncount = = "party"\n')
    expect(e.message).toMatch(/^policy\.toml:2:\d+: TOML syntax: /)
  })

  const cases: [string, string, RegExp, string?][] = [
    ['unknown top-level key', GOOD.replace('max_depth = 3', 'max_depht = 3'), /^policy\.toml:5: max_depht: unknown key/, 'max_depht'],
    ['unknown root key', GOOD.replace(`name = "tails"`, `name = "tails"\nweight = 2`), /^policy\.toml:14: root\[1\]\.weight: unknown key/, 'root[1].weight'],
    ['k < 1', GOOD.replace('threshold = 2', 'threshold = 0'), /^policy\.toml:2: threshold: expected an integer from 1/, 'threshold'],
    ['k not an integer', GOOD.replace('threshold = 2', 'threshold = 1.5'), /threshold: expected an integer/, 'threshold'],
    ['k > roots when counting parties', GOOD.replace('threshold = 2', 'threshold = 3'), /^policy\.toml:2: threshold: 3 parties needed but only 2/, 'threshold'],
    ['missing threshold', GOOD.replace('threshold = 2\n', ''), /threshold: missing/, 'threshold'],
    ['bad count', GOOD.replace('count = "party"', 'count = "votes"'), /^policy\.toml:3: count: expected "party" or "key"/, 'count'],
    ['absurd max_depth', GOOD.replace('max_depth = 3', 'max_depth = 1000'), /^policy\.toml:5: max_depth: expected an integer from 0 to 16/, 'max_depth'],
    ['negative max_dissent', GOOD.replace('max_dissent = 0', 'max_dissent = -1'), /max_dissent: expected an integer/, 'max_dissent'],
    ['malformed key', GOOD.replace(`key = "${tails}"`, 'key = "ed25519:abc"'), /^policy\.toml:14: root\[1\]\.key: /, 'root[1].key'],
    ['key without prefix', GOOD.replace(`key = "${tails}"`, 'key = "ssh-ed25519 AAAA"'), /root\[1\]\.key: expected "ed25519:/, 'root[1].key'],
    ['small-order key', GOOD.replace(`key = "${tails}"`, `key = "${SMALL_ORDER}"`), /root\[1\]\.key: public key has small order/, 'root[1].key'],
    ['bad pattern', GOOD.replace('scope = ["pkg:deb/debian/*"]', 'scope = ["deb/debian/*"]'), /^policy\.toml:10: root\[0\]\.scope\[0\]: /, 'root[0].scope'],
    ['empty scope', GOOD.replace('scope = ["pkg:deb/debian/*"]', 'scope = []'), /root\[0\]\.scope: expected a list/, 'root[0].scope'],
    ['duplicate root key', GOOD.replace(`key = "${tails}"`, `key = "${debian}"`), /^policy\.toml:14: root\[1\]\.key: duplicate root key/, 'root[1].key'],
    ['duplicate root name', GOOD.replace('name = "tails"', 'name = "debian"'), /^policy\.toml:13: root\[1\]\.name: duplicate root name/, 'root[1].name'],
    ['missing key', GOOD.replace(`key = "${tails}"\n`, ''), /^policy\.toml:12: root\[1\]\.key: missing/, 'root[1].key'],
    ['no roots', 'threshold = 1\n', /root: no \[\[root\]\] entry/, 'root'],
    ['name with a control character', GOOD.replace('name = "tails"', 'name = "ta\\u0007ils"'), /root\[1\]\.name: expected a name/, 'root[1].name']
  ]
  for (const [what, text, message, field] of cases) {
    it(`refuses ${what}`, () => {
      const e = refusal(text)
      expect(e.message).toMatch(message)
      if (field !== undefined) expect(e.field).toBe(field)
    })
  }

  it('accepts k above the number of roots when counting keys (delegated keys count)', () => {
    const p = parsePolicy(GOOD.replace('threshold = 2', 'threshold = 5').replace('count = "party"', 'count = "key"'))
    expect(p.threshold).toBe(5)
  })

  it('validates JSON-shaped policies the same way (API requests)', () => {
    expect(() => policyFromObject({ threshold: 1, root: [{ name: 'a', key: 'nope' }] }, 'request')).toThrow(/request: root\[0\]\.key: /)
    expect(policyFromObject({ threshold: 1, root: [{ name: 'a', key: debian }] }).roots).toHaveLength(1)
  })
})

describe('formatPolicy', () => {
  it('writes commented TOML that reads back equal', () => {
    const p = parsePolicy(GOOD.replace('max_dissent = 0', 'max_dissent = 1'))
    const text = formatPolicy(p)
    expect(text).toMatch(/^# /)
    expect(text).toContain('[[root]]')
    expect(parsePolicy(text)).toEqual(p)
  })

  it('escapes names so odd characters survive the round trip', () => {
    const p = policyFromObject({ threshold: 1, root: [{ name: 'Jöns "the builder" \\ #1', key: debian, scope: ['pkg:deb/debian/lib*'] }] })
    expect(parsePolicy(formatPolicy(p))).toEqual(p)
  })
})

describe('lineOfField', () => {
  it('finds top-level keys, root headers and root keys', () => {
    expect(lineOfField(GOOD, 'threshold')).toBe(2)
    expect(lineOfField(GOOD, 'root[1]')).toBe(12)
    expect(lineOfField(GOOD, 'root[0].scope')).toBe(10)
    expect(lineOfField(GOOD, 'root[5].key')).toBeUndefined()
  })
})
