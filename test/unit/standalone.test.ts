/**
 * The repository stands alone: a fresh clone has everything its code, tests and docs need. This
 * fails when a tracked (or new, not ignored) file points outside the repository: a relative path
 * that climbs above the repository root (`../../x` from a file near the top), the absolute path
 * of the folder the clone happens to sit in, or a citation of a design file that is not in the
 * repository. `.ci/run` also runs the suite from a copy with nothing beside it.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: root, encoding: 'utf8' })
  .split('\0')
  .filter((f) => f !== '')
const text = (file: string): string | undefined => {
  try {
    const body = readFileSync(resolve(root, file), 'utf8')
    return body.includes('\0') ? undefined : body
  } catch {
    return undefined // listed by git but deleted in the working tree
  }
}
const lineOf = (body: string, index: number) => body.slice(0, index).split('\n').length

// Written with escapes so this file does not match itself.
const FORBIDDEN = [
  { what: 'a sibling "shared" folder', re: /\.\.\/shared\b/g },
  { what: 'a design file outside the repository', re: /\bDESIGN\.md\b/g }
]
// A relative path in a string, template, markdown link or shell word: `../` at least once.
const RELATIVE = /(?<=['"`(\s=])((?:\.\.\/)+[\w.@\-/]*)/g

describe('the repository stands alone', () => {
  it('lists its files', () => {
    expect(files).toContain('package.json')
    expect(files).toContain('test/vectors/ed25519/rfc8032.json')
  })

  it('no file cites a folder beside the repository or a design file it does not hold', () => {
    const hits: string[] = []
    for (const file of files) {
      const body = text(file)
      if (body === undefined) continue
      for (const { what, re } of FORBIDDEN) {
        for (const m of body.matchAll(re)) hits.push(`${file}:${lineOf(body, m.index)}: ${m[0]} (${what})`)
      }
    }
    expect(hits).toEqual([])
  })

  it('no relative path climbs above the repository root', () => {
    const hits: string[] = []
    for (const file of files) {
      const body = text(file)
      if (body === undefined) continue
      for (const m of body.matchAll(RELATIVE)) {
        const target = resolve(root, dirname(file), m[1]!)
        const rel = relative(root, target)
        if (rel === '..' || rel.startsWith(`..${sep}`)) hits.push(`${file}:${lineOf(body, m.index)}: ${m[1]} -> ${target}`)
      }
    }
    expect(hits).toEqual([])
  })

  it('no file names the folder the clone sits in', () => {
    const parent = dirname(root)
    // Only meaningful when the parent is a specific place, not / or the temp dir itself.
    if (parent === '/' || parent === tmpdir()) return
    const hits = files.filter((file) => text(file)?.includes(`${parent}/`) === true)
    expect(hits).toEqual([])
  })
})
