#!/usr/bin/env node
/**
 * `rbq`: thin commands. Each verb lives in cli/commands/<verb>.ts and exports `register`.
 * Verbs that need a running node go through the typed API client only; offline verbs call
 * protocol/ and node/ libraries directly.
 */
import '../node/polyfills.js'
import { Command, CommanderError } from 'commander'
import { VERSION } from '../node/version.js'
import { EXIT_USAGE, printError } from './exit.js'
import { registerAttest } from './commands/attest.js'
import { registerDelegate } from './commands/delegate.js'
import { registerInspect } from './commands/inspect.js'
import { registerKey } from './commands/key.js'
import { registerNode } from './commands/node.js'
import { registerVerdict } from './commands/verdict.js'

export function buildProgram(): Command {
  const program = new Command('rbq')
    .description('rebuild-quorum: signed reproducible-build attestations, gossiped between rebuilders, judged by your own trust policy')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride()
    // Program options are read only before the verb, so a verb's own `--version N` (rbq delegate)
    // is not taken for rbq's version flag.
    .enablePositionalOptions()
  registerKey(program)
  registerAttest(program)
  registerInspect(program)
  registerDelegate(program)
  registerVerdict(program)
  registerNode(program)
  return program
}

async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv)
    return process.exitCode === undefined ? 0 : Number(process.exitCode)
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version exit 0; anything else commander rejects is a usage error
      return e.exitCode === 0 ? 0 : EXIT_USAGE
    }
    return printError(e)
  }
}

process.exitCode = await main(process.argv)
