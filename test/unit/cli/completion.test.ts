/**
 * `rbq completion bash|zsh` and `rbq man` from the real binary: generated from commander's
 * tree, so every verb `rbq --help` lists (and every subcommand) must be in them; the bash
 * script is run by bash to complete real command lines.
 */
import { spawnSync } from 'node:child_process'
import { beforeAll, describe, expect, it } from 'vitest'
import { runRbq } from '../../utils/cli.js'

let verbs: string[]
let bash: string

/** Runs the generated bash completion for a command line; the word being completed is last. */
function complete(words: string[]): string[] {
  const script = `${bash}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _rbq; printf '%s\\n' "\${COMPREPLY[@]}"`
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' })
  expect(r.stderr).toBe('')
  return r.stdout.split('\n').filter((l) => l !== '')
}

describe('shell completion and man page', () => {
  beforeAll(async () => {
    const help = await runRbq(['--help'])
    verbs = [...help.stdout.split('Commands:')[1]!.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]!).filter((v) => v !== 'help')
    const r = await runRbq(['completion', 'bash'])
    expect(r.code, r.stderr).toBe(0)
    bash = r.stdout
  })

  it('bash and zsh scripts contain every verb', async () => {
    expect(verbs).toEqual(expect.arrayContaining(['init', 'node', 'build-helper', 'trust', 'apt-hook', 'completion', 'man', 'verify']))
    const zsh = (await runRbq(['completion', 'zsh'])).stdout
    expect(zsh.startsWith('#compdef rbq\n')).toBe(true)
    for (const v of verbs) {
      expect(bash).toContain(`"${v}") path="${v}"`)
      expect(zsh).toContain(`"${v}") path="${v}"`)
    }
    expect(bash).toContain('"trust add") path="trust add"')
  })

  it('bash completes verbs, subcommands and options', () => {
    expect(complete(['rbq', 'tr'])).toEqual(['trust'])
    expect(complete(['rbq', 'trust', ''])).toEqual(expect.arrayContaining(['add', 'remove', 'list']))
    expect(complete(['rbq', 'init', '--sys'])).toEqual(['--systemd'])
    expect(complete(['rbq', 'node', 'start', '--con'])).toEqual(['--config'])
  })

  it('an unknown shell is a usage error naming the shells', async () => {
    const r = await runRbq(['completion', 'fish'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/bash and zsh/)
  })

  it('rbq man is roff naming every verb with its options; rbq help VERB prints the verb help', async () => {
    const page = (await runRbq(['man'])).stdout
    expect(page).toMatch(/^\.TH RBQ 1 /)
    for (const v of verbs) expect(page).toContain(`.B rbq ${v.replace(/-/g, '\\-')}\n`)
    expect(page).toContain('.B \\-\\-protect\\-home <mode>')
    expect(page).toContain('.SH FILES')
    expect(page).not.toMatch(/^[.'](?!TH |SH |TP$|B |I |RS$|RE$)/m) // every line starting with . is a request we meant
    const help = await runRbq(['help', 'build-helper'])
    expect(help.stdout).toContain('Usage: rbq build-helper [options]')
    expect(help.stdout).toContain('--socket <path>')
  })
})
