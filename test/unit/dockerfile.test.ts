/**
 * The Dockerfile cannot be built here (no container engine): this checks what can be checked
 * without one — every file it copies exists in the repository, the package it installs is the
 * one `npm pack` names, its base image satisfies package.json's engines, and every rbq verb it
 * runs exists in the CLI.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { runRbq } from '../utils/cli.js'

const root = join(import.meta.dirname, '..', '..')
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; engines: { node: string } }
/** Instructions with their continuation lines joined, comments dropped. */
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .filter((l) => l.trim() !== '' && !l.trim().startsWith('#'))
  .map((l) => {
    const [op, ...rest] = l.trim().split(/\s+/)
    return { op: op!.toUpperCase(), args: rest.join(' ') }
  })

describe('Dockerfile', () => {
  it('copies only files that exist in the repository (and what tsconfig compiles)', () => {
    const copies = instructions.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
    expect(copies.length).toBeGreaterThan(0)
    for (const c of copies) for (const src of c.args.split(/\s+/).slice(0, -1)) expect(existsSync(join(root, src)), src).toBe(true)
    const include = (JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8')) as { include: string[] }).include.map((g) => g.split('/')[0])
    const copied = copies.flatMap((c) => c.args.split(/\s+/).slice(0, -1))
    for (const dir of include) expect(copied).toContain(dir)
  })

  it('installs the tarball npm pack makes, on a Node that package.json accepts', () => {
    expect(dockerfile).toContain('npm pack')
    expect(dockerfile).toContain(`${pkg.name}-*.tgz`)
    const from = instructions.filter((i) => i.op === 'FROM').map((i) => i.args.split(/\s+/)[0]!)
    const minMajor = Number(/>=\s*(\d+)/.exec(pkg.engines.node)?.[1])
    for (const image of from) expect(Number(/^node:(\d+)-bookworm/.exec(image)?.[1])).toBeGreaterThanOrEqual(minMajor)
  })

  it('runs as a non-root user and only rbq verbs that exist', async () => {
    const user = instructions.filter((i) => i.op === 'USER').at(-1)?.args
    expect(user).toBeDefined()
    expect(user).not.toMatch(/^(root|0)$/)
    const cmd = instructions.find((i) => i.op === 'CMD')!.args
    const used = [...cmd.matchAll(/rbq ([a-z-]+(?: start)?)/g)].map((m) => m[1]!)
    expect(used).toEqual(['init', 'node start'])
    for (const verb of used) {
      const r = await runRbq([...verb.split(' '), '--help'])
      expect(r.code, `${verb}: ${r.stderr}`).toBe(0)
    }
  })
})
