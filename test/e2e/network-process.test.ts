/**
 * Two real `rbq node start` processes over TCP on loopback. Each starts with frames the other
 * lacks (written into its store beforehand); they find each other through `bootstrap`, sync,
 * and on SIGTERM shut down cleanly (exit 0, store closed: it opens again here).
 *
 * Runs the built CLI: `npx tsc -p tsconfig.json` first (npm test does).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { generateSigningKey, type VerifiedFrame } from '../../protocol/index.js'
import { Store } from '../../node/db/store.js'
import { attestation } from '../utils/frames.js'
import { RBQ_BIN } from '../utils/cli.js'
import { waitFor } from '../utils/network.js'
import { makeTempDir } from '../utils/tmp.js'


interface RunningNode {
  child: ChildProcess
  logs: Record<string, unknown>[]
  exited: Promise<{ code: number | null; stdout: string }>
}

function startProcess(dataDir: string, configFile: string): RunningNode {
  const child = spawn(process.execPath, [RBQ_BIN, 'node', 'start', '--data', dataDir, '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] })
  const logs: Record<string, unknown>[] = []
  let stdout = ''
  let pending = ''
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr?.on('data', (d: Buffer) => {
    pending += d.toString()
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>)
  })
  const exited = new Promise<{ code: number | null; stdout: string }>((resolve) => child.on('exit', (code) => resolve({ code, stdout })))
  return { child, logs, exited }
}

async function prefill(dir: string, frames: VerifiedFrame[]): Promise<void> {
  const store = await Store.open(join(dir, 'db'))
  await store.putFrames(frames)
  await store.close()
}

async function storedIn(dir: string, frames: VerifiedFrame[]): Promise<{ count: number; all: boolean }> {
  const store = await Store.open(join(dir, 'db'))
  try {
    return { count: await store.count(), all: (await store.hasFrames(frames.map((f) => f.id))).every(Boolean) }
  } finally {
    await store.close()
  }
}

const syncedFrames = (node: RunningNode) => node.logs.filter((l) => l.msg === 'sync session').reduce((n, l) => n + Number(l.stored ?? 0), 0)

describe('two rbq node processes', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })

  it('exchange frames over TCP and shut down cleanly on SIGTERM', async () => {
    const { dir, cleanup } = await makeTempDir('rbq-proc-')
    cleanups.push(cleanup)
    const [dirA, dirB] = [join(dir, 'a'), join(dir, 'b')]
    const fromA = Array.from({ length: 50 }, (_, i) => attestation(generateSigningKey(), i + 1))
    const fromB = Array.from({ length: 50 }, (_, i) => attestation(generateSigningKey(), i + 1))
    await prefill(dirA, fromA)
    await prefill(dirB, fromB)

    // No archive following ([rebuild.debian] follow = "auto" would rebuild 1% of bookworm on a root machine).
    const base = '[log]\nlevel = "info"\n[ingest]\nworkers = 1\n[api]\nenabled = false\n[rebuild.debian]\nfollow = "sources"\n[p2p]\nlisten = ["/ip4/127.0.0.1/tcp/0"]\n'
    await writeFile(join(dir, 'a.toml'), base)
    const a = startProcess(dirA, join(dir, 'a.toml'))
    cleanups.push(async () => {
      a.child.kill('SIGKILL')
    })
    const started = await waitFor(() => a.logs.find((l) => l.msg === 'p2p started'), { what: 'a to listen' })
    const addressA = (started.addresses as string[])[0] as string

    await writeFile(join(dir, 'b.toml'), `${base}bootstrap = ["${addressA}"]\n`)
    const b = startProcess(dirB, join(dir, 'b.toml'))
    cleanups.push(async () => {
      b.child.kill('SIGKILL')
    })
    await waitFor(() => syncedFrames(a) === 50 && syncedFrames(b) === 50, { what: 'each process to sync the other’s frames', timeoutMs: 30_000 })

    for (const node of [a, b]) node.child.kill('SIGTERM')
    // Exit 0, and "no UI except errors": nothing on stdout.
    expect(await a.exited).toEqual({ code: 0, stdout: '' })
    expect(await b.exited).toEqual({ code: 0, stdout: '' })
    for (const node of [a, b]) expect(node.logs.at(-1)?.msg).toBe('node stopped')
    expect(await storedIn(dirA, [...fromA, ...fromB])).toEqual({ count: 100, all: true })
    expect(await storedIn(dirB, [...fromA, ...fromB])).toEqual({ count: 100, all: true })
  })
})
