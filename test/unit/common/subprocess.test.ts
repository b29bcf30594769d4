import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { hasCommand, run } from '../../../common/subprocess.js'
import { makeTempDir } from '../../utils/tmp.js'

/** Running, not a zombie waiting for its new parent to reap it. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (cond()) return true
    await new Promise((r) => setTimeout(r, 20))
  }
  return cond()
}

describe('run', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> }
  beforeEach(async () => {
    tmp = await makeTempDir('rbq-run-')
  })
  afterEach(() => tmp.cleanup())

  it('captures stdout, the stderr tail, the exit code and lines', async () => {
    const lines: string[] = []
    const r = await run('sh', ['-c', 'echo out; echo err >&2; printf tail; exit 3'], { onLine: (l) => lines.push(l) })
    expect(r.code).toBe(3)
    expect(r.stdout.toString()).toBe('out\ntail')
    expect(r.stderr).toBe('err\n')
    expect(lines.sort()).toEqual(['err', 'out', 'tail'])
  })

  it('a timeout kills the whole process group, grandchildren included', async () => {
    const pidFile = join(tmp.dir, 'pid')
    const r = await run('sh', ['-c', `sleep 300 & echo $! > ${pidFile}; wait`], { timeoutMs: 300 })
    expect(r.timedOut).toBe(true)
    const grandchild = Number(await readFile(pidFile, 'utf8'))
    expect(await waitUntil(() => !alive(grandchild), 5_000)).toBe(true)
  })

  it('an abort kills it too, and an already-aborted signal starts nothing', async () => {
    const ac = new AbortController()
    const pending = run('sleep', ['300'], { signal: ac.signal })
    ac.abort()
    expect((await pending).aborted).toBe(true)
    expect((await run('sh', ['-c', 'exit 0'], { signal: ac.signal })).aborted).toBe(true)
  })

  it('finds commands on PATH', async () => {
    expect(await hasCommand('sh')).toBe(true)
    expect(await hasCommand('no-such-command-rbq')).toBe(false)
  })
})
