/**
 * The README's shell commands work as written. Every ```sh block of README.md carries a marker
 * on the line before it: `<!-- readme-test: run -->`, or `<!-- readme-test: skip (REASON) -->`
 * for blocks that need another machine, sudo or a change to the user's setup. An unmarked block
 * fails the test, so every new block gets a decision.
 *
 * The "run" blocks run in README order, each command through bash, as a user on one machine
 * would after cloning: cwd = the clone, `rbq` from the README's own install command (npm's
 * global prefix pointed at a temporary dir), the data dir a temporary dir ($RBQ_DATA_DIR,
 * holding a config.toml that keeps the node on loopback and free ports). A command fails the
 * test when it exits with a code README "Commands and exit codes" does not announce for it, or
 * prints a stack trace. `rbq node start` runs in the background until it logs `node started`;
 * it keeps running for the blocks after it (`rbq status` asks it) and must exit 0 on SIGTERM.
 *
 * Not run, with the reason: the commands in NOT_RUN (CI steps around this very test).
 */
import { spawn } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawnNodeProcess, STACK_TRACE, userEnv, type NodeProcess } from '../utils/node-process.js'
import { makeTempDir } from '../utils/tmp.js'

const REPO = fileURLToPath(new URL('../..', import.meta.url))
const README = await readFile(join(REPO, 'README.md'), 'utf8')

const NOT_RUN: Record<string, string> = {
  'npm ci': '.ci/run runs it on a fresh copy of the clone before the suite; here it would replace node_modules under the running tests',
  'npm test': 'runs the whole suite, this test included'
}

/** Exit codes README "Commands and exit codes" announces beyond 0, per verb. */
const ANNOUNCED_EXITS: Record<string, number[]> = {
  doctor: [0, 1], // 1: a builder cannot run here
  verify: [0, 1, 3], // 3: unreproducible
  verdict: [0, 1, 3],
  inspect: [0, 1],
  rebuild: [0, 1]
}

interface Block {
  line: number
  marker: { run: true } | { run: false; reason: string } | undefined
  commands: string[]
}

/** Splits at `sep` outside quotes; `#` outside quotes starts a comment when `sep` is '#'. */
function splitOutsideQuotes(text: string, sep: string): string[] {
  const parts: string[] = []
  let quote: string | undefined
  let start = 0
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quote !== undefined) {
      if (c === quote) quote = undefined
    } else if (c === "'" || c === '"') quote = c
    else if (text.startsWith(sep, i) && (sep !== '#' || i === 0 || /\s/.test(text[i - 1]!))) {
      parts.push(text.slice(start, i))
      start = i + sep.length
      i += sep.length - 1
    }
  }
  parts.push(text.slice(start))
  return parts
}

function shBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n')
  const blocks: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s*```sh\s*$/.test(lines[i]!)) continue
    const previous = lines[i - 1]?.trim() ?? ''
    const m = /^<!-- readme-test: (run|skip \((.+)\)) -->$/.exec(previous)
    const marker = m === null ? undefined : m[1] === 'run' ? ({ run: true } as const) : { run: false as const, reason: m[2]! }
    const body: string[] = []
    let j = i + 1
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]!); j++) body.push(lines[j]!.trim())
    // Continuation lines join; comments and blank lines go; `a && b` are two commands.
    const joined = body.join('\n').replace(/\\\n/g, ' ')
    const commands = joined
      .split('\n')
      .map((l) => splitOutsideQuotes(l, '#')[0]!.trim())
      .filter((l) => l !== '')
      .flatMap((l) => splitOutsideQuotes(l, '&&').map((c) => c.trim().replace(/\s+/g, ' ')))
    blocks.push({ line: i + 1, marker, commands })
    i = j
  }
  return blocks
}

function runShell(command: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', command], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out })
    })
  })
}

describe('README shell blocks', () => {
  const blocks = shBlocks(README)
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await makeTempDir('rbq-readme-'))
  })
  afterAll(async () => cleanup())

  it('reads a block as the shell would: continuations joined, comments dropped, && split', () => {
    const md = "<!-- readme-test: run -->\n```sh\n  a --x && b   # c\nd \\\n  --y '#z'\n```\n<!-- readme-test: skip (why) -->\n```sh\ne\n```\n"
    expect(shBlocks(md)).toEqual([
      { line: 2, marker: { run: true }, commands: ['a --x', 'b', "d --y '#z'"] },
      { line: 8, marker: { run: false, reason: 'why' }, commands: ['e'] }
    ])
  })

  it('every sh block is marked run or skip (with a reason)', () => {
    expect(blocks.length).toBeGreaterThan(3)
    expect(blocks.filter((b) => b.marker === undefined).map((b) => `README.md:${b.line}`)).toEqual([])
  })

  it('the marked blocks run as written on one machine', async () => {
    const prefix = join(dir, 'npm-prefix')
    const dataDir = join(dir, 'data')
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    // Step 2 of "A volunteer running a node", kept to loopback and free ports; following no
    // archive (a root machine with mmdebstrap would otherwise start rebuilding 1% of bookworm).
    await writeFile(join(dataDir, 'config.toml'), '[p2p]\nlisten = ["/ip4/127.0.0.1/tcp/0"]\n[api]\nport = 0\n[rebuild.debian]\nfollow = "sources"\n')
    const env = userEnv({ npm_config_prefix: prefix, PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}`, RBQ_DATA_DIR: dataDir })

    const ran: string[] = []
    let node: NodeProcess | undefined
    const stopNode = async (): Promise<void> => {
      if (node === undefined) return
      const running = node
      node = undefined
      expect(await running.stop(), `rbq node start on SIGTERM:\n${running.lines.join('\n')}`).toEqual({ code: 0, signal: null })
      expect(running.lines.join('\n')).not.toMatch(STACK_TRACE)
    }
    try {
      for (const block of blocks) {
        if (block.marker?.run !== true) continue
        for (const command of block.commands) {
          if (NOT_RUN[command] !== undefined) continue
          const where = `README.md:${block.line}: ${command}`
          if (/^rbq node start\b/.test(command)) {
            await stopNode()
            node = spawnNodeProcess('bash', ['-c', `exec ${command}`], { cwd: REPO, env })
            await node.waitForLog('node started')
            ran.push(command)
            continue
          }
          const { code, out } = await runShell(command, env)
          const verb = /^rbq (\S+)/.exec(command)?.[1]
          const allowed = (verb === undefined ? undefined : ANNOUNCED_EXITS[verb]) ?? [0]
          expect(allowed, `${where}: exit ${code}\n${out}`).toContain(code)
          expect(out, where).not.toMatch(STACK_TRACE)
          ran.push(command)
        }
      }
    } finally {
      await stopNode()
    }
    // The commands a newcomer types first, in order: install, start, prepare, watch.
    expect(ran).toEqual(expect.arrayContaining(['npm install -g --ignore-scripts .', 'rbq --version', 'rbq node start', 'rbq init', 'rbq doctor', 'rbq status', 'rbq key show']))
  }, 300_000)
})
