/**
 * The folder layout is the architecture (ARCHITECTURE.md, "Layout"): each top-level folder may
 * import only the folders below it, and no module imports itself back through a cycle. This test
 * reads every source file's relative imports (static, `export … from` and dynamic `import()`)
 * and fails naming the file and the import that breaks a rule.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, normalize, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** Which top-level folders each folder may import (besides itself). */
const MAY_IMPORT: Record<string, readonly string[]> = {
  protocol: [],
  common: ['protocol'],
  identity: ['protocol', 'common'],
  debian: ['protocol', 'common'],
  client: ['protocol', 'common', 'identity', 'debian'],
  node: ['protocol', 'common', 'identity', 'debian'],
  cli: ['protocol', 'common', 'identity', 'debian', 'client', 'node']
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []
  )
}

/** Relative imports of a file, resolved to repository paths of .ts files. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8')
  const specs = [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^import\s+)'(\.\.?\/[^']+)'/gm)].map((m) => m[1]!)
  return specs.map((s) => normalize(join(dirname(file), s)).replace(/\.js$/, '.ts'))
}

const files = Object.keys(MAY_IMPORT).flatMap(sourceFiles)
const graph = new Map(files.map((f) => [f, importsOf(f)]))
const topOf = (path: string) => path.split('/')[0]!

describe('source layout', () => {
  it('every top-level folder imports only the folders its rule allows', () => {
    const broken: string[] = []
    for (const [file, imports] of graph) {
      const top = topOf(file)
      for (const target of imports) {
        const to = topOf(target)
        if (to !== top && !MAY_IMPORT[top]!.includes(to)) broken.push(`${file} imports ${target}`)
      }
    }
    expect(broken).toEqual([])
  })

  it('every relative import names a source file that exists', () => {
    const missing = [...graph].flatMap(([file, imports]) => imports.filter((t) => !graph.has(t) && !t.startsWith('dist/')).map((t) => `${file} → ${t}`))
    expect(missing).toEqual([])
  })

  it('has no import cycles', () => {
    const state = new Map<string, 'open' | 'done'>()
    const cycles: string[] = []
    const visit = (file: string, path: string[]): void => {
      if (state.get(file) === 'done') return
      if (state.get(file) === 'open') {
        cycles.push([...path.slice(path.indexOf(file)), file].map((f) => relative('.', f)).join(' → '))
        return
      }
      state.set(file, 'open')
      for (const next of graph.get(file) ?? []) if (graph.has(next)) visit(next, [...path, file])
      state.set(file, 'done')
    }
    for (const file of graph.keys()) visit(file, [])
    expect(cycles).toEqual([])
  })

  it('every source path the README, ARCHITECTURE.md and the module READMEs name exists', () => {
    const docs = ['README.md', 'ARCHITECTURE.md', ...Object.keys(MAY_IMPORT).flatMap(markdownFiles)]
    const missing = docs.flatMap((doc) =>
      [...readFileSync(join(ROOT, doc), 'utf8').matchAll(/`((?:protocol|common|identity|debian|client|node|cli|test|bench)\/[\w./-]+\.(?:ts|md))`/g)]
        .map((m) => m[1]!)
        .filter((path) => !existsSync(join(ROOT, path)) && !existsSync(join(ROOT, dirname(doc), path))) // from the root, or from the README's folder
        .map((path) => `${doc} names ${path}`)
    )
    expect(missing).toEqual([])
  })
})

function markdownFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? markdownFiles(join(dir, e.name)) : e.name.endsWith('.md') ? [join(dir, e.name)] : []
  )
}
