import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { isRbqError, sha256Hex } from '../../../../../protocol/index.js'
import {
  DEFAULT_RECIPE_TIMEOUT_SECONDS,
  DEFAULT_SOURCE_DATE_EPOCH,
  loadRecipe,
  parseRecipe,
  recipeInputsDigest
} from '../../../../../node/rebuild/recipe/recipe.js'
import { makeTempDir } from '../../../../utils/tmp.js'

const SHA = 'a'.repeat(64)

const GOOD = `purl = "pkg:generic/Hello@1.0"
command = ["make", "dist"]
outputs = ["dist/*.tar.gz", "hello"]
timeout = 30
source_date_epoch = 1700000000

[env]
CFLAGS = "-O2"

[[source]]
path = "hello-1.0.tar.gz"
sha256 = "${SHA}"

[[source]]
url = "https://example.org/dl/patch%201.diff"
sha256 = "${'b'.repeat(64)}"
dest = "patches/fix.diff"
`

function invalid(text: string): { message: string; field: string | undefined } {
  try {
    parseRecipe(text, { baseDir: '/recipes' })
  } catch (e) {
    if (!isRbqError(e, 'RECIPE_INVALID')) throw e
    return { message: e.message, field: e.field }
  }
  throw new Error('expected RECIPE_INVALID')
}

/** GOOD with one line replaced (or removed when `to` is undefined). */
function edit(from: string, to?: string): string {
  if (!GOOD.includes(from)) throw new Error(`fixture has no ${from}`)
  return GOOD.replace(from, to ?? '')
}

describe('parseRecipe', () => {
  it('parses a complete recipe into its normalised form', () => {
    const r = parseRecipe(GOOD, { baseDir: '/recipes', fileName: 'hello.toml' })
    expect(r.purl).toBe('pkg:generic/Hello@1.0') // canonical (generic names keep their case)
    expect(r.command).toEqual(['make', 'dist'])
    expect(r.outputs).toEqual(['dist/*.tar.gz', 'hello'])
    expect(r.timeoutSeconds).toBe(30)
    expect(r.sourceDateEpoch).toBe(1_700_000_000)
    expect(r.env).toEqual({ CFLAGS: '-O2' })
    expect(r.sources).toEqual([
      { location: { kind: 'file', path: '/recipes/hello-1.0.tar.gz' }, sha256: SHA, dest: 'hello-1.0.tar.gz', uri: 'hello-1.0.tar.gz' },
      {
        location: { kind: 'http', url: 'https://example.org/dl/patch%201.diff' },
        sha256: 'b'.repeat(64),
        dest: 'patches/fix.diff',
        uri: 'https://example.org/dl/patch%201.diff'
      }
    ])
    expect(r.origin).toEqual({ name: 'hello.toml', sha256: sha256Hex(GOOD), size: Buffer.byteLength(GOOD) })
  })

  it('normalises a shell string command to /bin/sh -c and applies defaults', () => {
    const r = parseRecipe(`purl = "pkg:generic/x@1"\ncommand = "echo hi > out.txt"\noutputs = ["out.txt"]\n`)
    expect(r.command).toEqual(['/bin/sh', '-c', 'echo hi > out.txt'])
    expect(r.timeoutSeconds).toBe(DEFAULT_RECIPE_TIMEOUT_SECONDS)
    expect(r.sourceDateEpoch).toBe(DEFAULT_SOURCE_DATE_EPOCH)
    expect(r.sources).toEqual([])
    expect(r.env).toEqual({})
  })

  it('canonicalises the purl', () => {
    const r = parseRecipe(`purl = "pkg:DEB/debian/hello@1?arch=source"\ncommand = "true"\noutputs = ["x"]\n`)
    expect(r.purl).toBe('pkg:deb/debian/hello@1?arch=source')
  })

  it('takes the default dest from a URL path (decoded) and a file: URL', () => {
    const r = parseRecipe(`purl = "pkg:generic/x@1"\ncommand = "true"\noutputs = ["x"]\n[[source]]\nurl = "file:///srv/a%20b.tgz"\nsha256 = "${SHA}"\n`)
    expect(r.sources[0]?.location).toEqual({ kind: 'file', path: '/srv/a b.tgz' })
    expect(r.sources[0]?.dest).toBe('a b.tgz')
  })

  it('inputs digest covers sources, command, env and SOURCE_DATE_EPOCH, not the source URL or outputs', () => {
    const base = recipeInputsDigest(parseRecipe(GOOD))
    expect(base).toMatch(/^[0-9a-f]{64}$/)
    expect(recipeInputsDigest(parseRecipe(GOOD))).toBe(base)
    expect(recipeInputsDigest(parseRecipe(edit('"make", "dist"', '"make", "all"')))).not.toBe(base)
    expect(recipeInputsDigest(parseRecipe(edit('CFLAGS = "-O2"', 'CFLAGS = "-O3"')))).not.toBe(base)
    expect(recipeInputsDigest(parseRecipe(edit('source_date_epoch = 1700000000', 'source_date_epoch = 1700000001')))).not.toBe(base)
    expect(recipeInputsDigest(parseRecipe(edit(`sha256 = "${SHA}"`, `sha256 = "${'c'.repeat(64)}"`)))).not.toBe(base)
    expect(recipeInputsDigest(parseRecipe(edit('https://example.org/dl/', 'https://mirror.example.net/')))).toBe(base)
    expect(recipeInputsDigest(parseRecipe(edit('"dist/*.tar.gz", ', '')))).toBe(base)
    expect(recipeInputsDigest(parseRecipe(edit('timeout = 30', 'timeout = 31')))).toBe(base)
  })

  describe('rejects bad input with RECIPE_INVALID naming the field and line', () => {
    it('TOML syntax errors (line and column)', () => {
      const e = invalid('purl = "pkg:generic/x@1"\ncommand = [\n')
      expect(e.message).toMatch(/line \d+, column \d+: TOML syntax error/)
    })

    it('unknown keys, top level and in a source', () => {
      expect(invalid(edit('timeout = 30', 'timeout = 30\ncomand = "x"'))).toMatchObject({ field: 'comand' })
      expect(invalid(edit('timeout = 30', 'timeout = 30\ncomand = "x"')).message).toMatch(/line 5: comand: unknown key/)
      const s = invalid(edit('dest = "patches/fix.diff"', 'dest = "patches/fix.diff"\nsha512 = "x"'))
      expect(s.field).toBe('source[1].sha512')
      expect(s.message).toMatch(/line 18: source\[1\]\.sha512: unknown key/)
    })

    it('missing required fields', () => {
      expect(invalid(edit('purl = "pkg:generic/Hello@1.0"\n')).field).toBe('purl')
      expect(invalid(edit('command = ["make", "dist"]\n')).field).toBe('command')
      expect(invalid(edit('outputs = ["dist/*.tar.gz", "hello"]\n')).field).toBe('outputs')
      expect(invalid(edit(`sha256 = "${SHA}"\n`)).field).toBe('source[0].sha256')
      expect(invalid(edit('path = "hello-1.0.tar.gz"\n')).field).toBe('source[0]') // neither url nor path
    })

    it('wrong types and values', () => {
      expect(invalid(edit('pkg:generic/Hello@1.0', 'not a purl')).field).toBe('purl')
      expect(invalid(edit('["make", "dist"]', '[]')).field).toBe('command')
      expect(invalid(edit('["make", "dist"]', '["make", 3]')).field).toBe('command[1]')
      expect(invalid(edit('["make", "dist"]', '""')).field).toBe('command')
      expect(invalid(edit('outputs = ["dist/*.tar.gz", "hello"]', 'outputs = []')).field).toBe('outputs')
      expect(invalid(edit('timeout = 30', 'timeout = 0')).field).toBe('timeout')
      expect(invalid(edit('timeout = 30', 'timeout = "30"')).field).toBe('timeout')
      expect(invalid(edit('source_date_epoch = 1700000000', 'source_date_epoch = 1.5')).field).toBe('source_date_epoch')
      expect(invalid(edit('source_date_epoch = 1700000000', 'source_date_epoch = -1')).field).toBe('source_date_epoch')
      expect(invalid(edit('CFLAGS = "-O2"', 'CFLAGS = 2')).field).toBe('env.CFLAGS')
      expect(invalid(edit('url = "https://example.org/dl/patch%201.diff"', 'url = "ftp://example.org/x"')).field).toBe('source[1].url')
      expect(invalid(edit('path = "hello-1.0.tar.gz"', 'path = "hello-1.0.tar.gz"\nurl = "https://example.org/x"')).field).toBe('source[0]')
    })

    it('env variables rbq sets itself', () => {
      for (const name of ['HOME', 'TZ', 'LC_ALL', 'SOURCE_DATE_EPOCH']) {
        const e = invalid(edit('CFLAGS = "-O2"', `${name} = "x"`))
        expect(e.field).toBe(`env.${name}`)
        expect(e.message).toMatch(/line 8/)
      }
    })

    it('bad checksums', () => {
      for (const bad of ['A'.repeat(64), 'a'.repeat(63), 'a'.repeat(65), 'g'.repeat(64), '']) {
        const e = invalid(edit(`sha256 = "${SHA}"`, `sha256 = "${bad}"`))
        expect(e.field).toBe('source[0].sha256')
        expect(e.message).toMatch(/line 12/)
      }
    })

    it('output and dest paths escaping the build dir', () => {
      for (const bad of ['../out', 'a/../../out', '/etc/passwd', '~/x', '.', 'a\\..\\b']) {
        expect(invalid(edit('"hello"]', `${JSON.stringify(bad)}]`)).field).toBe('outputs[1]')
        expect(invalid(edit('dest = "patches/fix.diff"', `dest = ${JSON.stringify(bad)}`)).field).toBe('source[1].dest')
      }
      // a `..` that would stay inside is refused too: no guessing
      expect(invalid(edit('"hello"]', '"a/../hello"]')).message).toMatch(/would escape the build dir/)
      // a default dest that is not a plain name
      const noName = GOOD.replace('url = "https://example.org/dl/patch%201.diff"', 'url = "https://example.org/"').replace('dest = "patches/fix.diff"\n', '')
      expect(invalid(noName).field).toBe('source[1].dest')
    })

    it('two sources landing on the same path', () => {
      expect(invalid(edit('dest = "patches/fix.diff"', 'dest = "hello-1.0.tar.gz"')).field).toBe('source[1].dest')
      expect(invalid(edit('dest = "patches/fix.diff"', 'dest = "hello-1.0.tar.gz/x"')).field).toBe('source[1].dest')
    })
  })
})

describe('loadRecipe', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir()))
  afterEach(() => cleanup())

  it('resolves relative source paths against the recipe file and records its origin', async () => {
    await mkdir(join(dir, 'r'))
    await writeFile(join(dir, 'r', 'x.toml'), `purl = "pkg:generic/x@1"\ncommand = "true"\noutputs = ["x"]\n[[source]]\npath = "../src.tgz"\nsha256 = "${SHA}"\n`)
    const r = await loadRecipe(join(dir, 'r', 'x.toml'))
    expect(r.sources[0]?.location).toEqual({ kind: 'file', path: join(dir, 'src.tgz') })
    expect(r.origin).toMatchObject({ name: 'x.toml', path: join(dir, 'r', 'x.toml') })
  })

  it('names the file in errors; a missing file is FILE_NOT_FOUND', async () => {
    await writeFile(join(dir, 'bad.toml'), 'purl = "pkg:generic/x@1"\n')
    await expect(loadRecipe(join(dir, 'bad.toml'))).rejects.toThrow(/bad\.toml line \d+: command: required|bad\.toml: command: required/)
    await expect(loadRecipe(join(dir, 'none.toml'))).rejects.toMatchObject({ code: 'FILE_NOT_FOUND' })
  })
})
