#!/usr/bin/env node
/**
 * `rbq`: thin commands. Each verb lives in cli/commands/<verb>.ts and exports `register`.
 * Verbs that need a running node go through the typed API client only; offline verbs call
 * protocol/ and node/ libraries directly. Heavy modules (libp2p, fastify) are imported inside
 * the actions that need them, so every verb starts fast (the apt hook runs on every install).
 */
import '../common/polyfills.js'
import { Command, CommanderError } from 'commander'
import { VERSION } from '../common/version.js'
import { RbqError } from '../protocol/errors.js'
import { registerAptHook } from './commands/apt-hook.js'
import { registerAttest } from './commands/attest.js'
import { registerBuildHelper } from './commands/build-helper.js'
import { registerCompletion } from './commands/completion.js'
import { registerDb } from './commands/db.js'
import { registerDelegate } from './commands/delegate.js'
import { registerDoctor } from './commands/doctor.js'
import { registerExport } from './commands/export.js'
import { registerHealth } from './commands/health.js'
import { registerImport } from './commands/import.js'
import { registerInit } from './commands/init.js'
import { registerInspect } from './commands/inspect.js'
import { registerKey } from './commands/key.js'
import { registerNode } from './commands/node.js'
import { registerPeers } from './commands/peers.js'
import { registerRevoke } from './commands/publish-delegation.js'
import { registerRebuild } from './commands/rebuild.js'
import { registerRebuildRequest } from './commands/rebuild-request.js'
import { registerStats } from './commands/stats.js'
import { registerStatus } from './commands/status.js'
import { registerTrust } from './commands/trust.js'
import { registerVerdict } from './commands/verdict.js'
import { registerVerify } from './commands/verify.js'
import { registerWatch } from './commands/watch.js'
import { EXIT_USAGE, printError, type ErrorFormat } from './exit.js'

/**
 * `--json` errors (cli/exit.ts ErrorFormat): guessed from the arguments for errors while parsing
 * them, then set from the verb's own parsed --json option before it runs.
 */
let errorFormat: ErrorFormat = 'text'

export function buildProgram(): Command {
  const program = new Command('rbq')
    .description('rebuild-quorum: signed reproducible-build attestations, gossiped between rebuilders, judged by your own trust policy')
    .version(VERSION)
    // A mistyped verb or flag: the one-line error, "(Did you mean …?)" and a pointer to the
    // help, not the whole help (which buries the error).
    .showSuggestionAfterError(true)
    .exitOverride()
    // Program options are read only before the verb, so a verb's own `--version N` (rbq delegate)
    // is not taken for rbq's version flag.
    .enablePositionalOptions()
    // Inherited by every verb: with --json, commander's own usage errors become JSON too (main).
    .configureOutput({
      outputError: (text, write) => (errorFormat === 'json' ? undefined : write(text)),
      writeErr: (text) => (errorFormat === 'json' ? undefined : process.stderr.write(text))
    })
    .hook('preAction', (_program, verb) => {
      errorFormat = verb.opts().json === true ? 'json' : 'text'
    })
  // Running a node
  registerInit(program)
  registerNode(program)
  registerStatus(program)
  registerPeers(program)
  registerStats(program)
  registerDb(program)
  // Asking for verdicts
  registerVerify(program)
  registerWatch(program)
  registerHealth(program)
  registerAptHook(program)
  // Trust
  registerTrust(program)
  registerDelegate(program)
  registerRevoke(program)
  // Rebuilding and attesting
  registerRebuild(program)
  registerRebuildRequest(program)
  registerDoctor(program)
  registerBuildHelper(program)
  registerAttest(program)
  // Offline tools
  registerKey(program)
  registerInspect(program)
  registerVerdict(program)
  registerImport(program)
  registerExport(program)
  // Shell integration (last: generated from everything registered above)
  registerCompletion(program, VERSION)
  pointToHelp(program, 'rbq')
  return program
}

/**
 * A mistyped verb or flag prints the one-line error, commander's "(Did you mean …?)" and where
 * the help is, e.g. "(see rbq trust add --help)", instead of the whole help, which buries the error.
 */
function pointToHelp(cmd: Command, path: string): void {
  cmd.showHelpAfterError(`(see ${path} --help)`)
  for (const sub of cmd.commands) pointToHelp(sub, `${path} ${sub.name()}`)
}

async function main(argv: string[]): Promise<number> {
  const args = argv.slice(2)
  const end = args.indexOf('--')
  errorFormat = (end === -1 ? args : args.slice(0, end)).includes('--json') ? 'json' : 'text'
  try {
    await buildProgram().parseAsync(argv)
    return process.exitCode === undefined ? 0 : Number(process.exitCode)
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version exit 0; anything else commander rejects is a usage error
      if (e.exitCode === 0) return 0
      if (errorFormat === 'json') printError(new RbqError('USAGE', e.message.replace(/^error: /, '')), 'json')
      return EXIT_USAGE
    }
    return printError(e, errorFormat)
  }
}

// `rbq health | head`: the reader closed the pipe; stop quietly, as Unix filters do.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode === undefined ? 0 : Number(process.exitCode))
  throw e
})
// Whatever escapes (a library failing in the background) ends with one line, never a stack trace.
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (e: unknown) => {
    process.exitCode = printError(e, errorFormat)
    process.exit()
  })
}
process.exitCode = await main(process.argv)
