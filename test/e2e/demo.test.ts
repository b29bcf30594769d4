/**
 * `npm run demo` (dist/cli/demo.js) in its recipe mode, which runs anywhere in ~20 s: three real
 * `rbq node start` processes gossip, and `rbq verify` says reproduced for the release file and
 * mismatch for a tampered copy. (The Debian mode is what the demo shows as root; it takes
 * minutes and downloads from the archive, so it is exercised by hand, not here.)
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { RBQ_BIN } from '../utils/cli.js'

const DEMO = fileURLToPath(new URL('../../dist/cli/demo.js', import.meta.url))

describe.skipIf(!existsSync(DEMO) || !existsSync(RBQ_BIN))('npm run demo', () => {
  it('tells the story with recipes: reproduced, then mismatch for the tampered copy', async () => {
    const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [DEMO, '--recipes'], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      child.stdout.on('data', (d: Buffer) => (out += d.toString()))
      child.stderr.on('data', (d: Buffer) => (out += d.toString()))
      const timer = setTimeout(() => child.kill('SIGTERM'), 120_000)
      child.on('error', reject)
      child.on('close', (c) => {
        clearTimeout(timer)
        resolve({ code: c, out })
      })
    })
    expect(code, out).toBe(0)
    expect(out).toMatch(/carol verifies the release file\n.*rbq verify .*\n\s+reproduced: .*\n\s+\(exit code 0\)/)
    expect(out).toMatch(/tampered copy.*\n.*rbq verify .*\n\s+mismatch: .*\n\s+\(exit code 1\)/)
    expect(out).toContain('That is the whole idea.')
  }, 150_000)
})
