/**
 * `rbq apt-hook install|uninstall|run`: the apt install gate (node/apt/).
 *
 *   install    writes /etc/apt/apt.conf.d/80rbq: apt runs `rbq apt-hook run` as a
 *              DPkg::Pre-Install-Pkgs hook (protocol version 1: .deb paths on stdin)
 *   uninstall  removes exactly that file
 *   run        what apt runs: judges every .deb, prints nothing when all are `reproduced`;
 *              otherwise names each package and its verdict on stderr and exits 1, which makes
 *              apt abort before dpkg touches anything. `--warn-only` reports and exits 0.
 *              A node that does not answer refuses the installation (fail closed).
 *
 * Per-status settings (install and run): `--unreproducible`, `--insufficient`, `--unknown`,
 * `--failed` each take `refuse` (default), `warn` (install, with a warning) or `allow`;
 * `mismatch` and `conflict` are always refused. `install` writes them into the hook command.
 */
import { realpathSync } from 'node:fs'
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { RbqError } from '../../protocol/errors.js'
import { CliExit, EXIT_NEGATIVE, printJson, unexpectedErrorText } from '../exit.js'
import { nodeClient, withNodeOptions, type NodeOptions } from './status.js'

/** apt passes a few thousand paths at most; 16 MiB of stdin is not a package list. */
const MAX_HOOK_INPUT_BYTES = 16 * 1024 * 1024

interface HookOptions extends NodeOptions {
  warnOnly?: boolean
  policy?: string
  /** Per-status gate settings (node/apt/gate.ts GATED_STATUSES), checked in the action. */
  unreproducible?: string
  insufficient?: string
  unknown?: string
  failed?: string
  /** Where the gate is installed: `run` names it in the uninstall command it suggests. */
  aptConfDir?: string
}

async function readStdin(max: number): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > max) throw new RbqError('INPUT_TOO_LARGE', `more than ${max} bytes on stdin: not a list of .deb paths`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

async function readPolicy(path: string | undefined): Promise<string | undefined> {
  if (path === undefined) return undefined
  const [{ readFileBounded }, { API_MAX_POLICY_BYTES }] = await Promise.all([import('../../node/files.js'), import('../../protocol/api.js')])
  return Buffer.from(await readFileBounded(path, API_MAX_POLICY_BYTES, 'policy file')).toString('utf8')
}

/** The argv that starts this very rbq: absolute node binary and script, no PATH lookup. */
function selfArgv(): string[] {
  return [process.execPath, realpathSync(process.argv[1] ?? 'rbq')]
}

/** The run options that find the node and choose the policy, made absolute for apt. */
function runArgsOf(opts: HookOptions): string[] {
  return [
    ...(opts.api === undefined ? [] : ['--api', opts.api]),
    ...(opts.data === undefined ? [] : ['--data', resolve(opts.data)]),
    ...(opts.policy === undefined ? [] : ['--policy', resolve(opts.policy)]),
    ...(opts.aptConfDir === undefined ? [] : ['--apt-conf-dir', resolve(opts.aptConfDir)])
  ]
}

/** The per-status options, on `install` and `run` alike. */
function withGateOptions(command: Command): Command {
  const what = (status: string) => `what to do with ${status} files: refuse (default), warn (install with a warning) or allow`
  return command
    .option('--unreproducible <action>', what('unreproducible (archive files that rebuild differently with today\'s toolchain; not tampering)'))
    .option('--insufficient <action>', what('insufficient (fewer than k parties)'))
    .option('--unknown <action>', what('unknown (no trusted statement)'))
    .option('--failed <action>', what('failed (trusted builders only report build failures)'))
}

export function registerAptHook(program: Command): void {
  const hook = program.command('apt-hook').description('gate apt installations on your rebuild policy (DPkg::Pre-Install-Pkgs)')

  withNodeOptions(
    withGateOptions(hook
      .command('install')
      .description('write the apt configuration that runs `rbq apt-hook run` before every installation')
      .option('--warn-only', 'report packages that do not meet the policy but install them anyway'))
      .option('--policy <file>', 'judge with this policy file instead of the node\'s')
      .option('--apt-conf-dir <dir>', 'apt configuration directory (default /etc/apt/apt.conf.d; for chroots and tests)')
      .option('--json', 'print the result as JSON')
  ).action(async (opts: HookOptions & { json?: boolean }) => {
    const [{ installAptHook, uninstallCommand, DEFAULT_APT_CONF_DIR }, { gatePolicyOf, gatePolicyArgs, describeGatePolicy }] = await Promise.all([
      import('../../node/apt/apt-conf.js'),
      import('../../node/apt/gate.js')
    ])
    if (opts.policy !== undefined) await readPolicy(opts.policy) // fail now, not at the next apt run
    const gate = gatePolicyOf(opts)
    const settings = { rbq: selfArgv(), warnOnly: opts.warnOnly === true, runArgs: [...runArgsOf(opts), ...gatePolicyArgs(gate)] }
    const { path, replaced } = await installAptHook(settings, opts.aptConfDir ?? DEFAULT_APT_CONF_DIR)
    // A gate in front of a stopped node refuses everything: say so now rather than at apt time.
    const client = await nodeClient(opts)
    const api = await client.url()
    const running = await client.status().then(
      () => true,
      (e: unknown) => {
        if (e instanceof RbqError && e.code === 'API_UNAVAILABLE') return false
        throw e
      }
    )
    if (opts.json) return printJson({ path, replaced, warnOnly: settings.warnOnly, gate, api, nodeRunning: running })
    const mode = settings.warnOnly ? 'warn only: refusals are reported, installations go ahead' : `enforce: apt ${describeGatePolicy(gate)}`
    process.stdout.write(`${replaced ? 'updated' : 'wrote'} ${path}\n  apt now asks the node at ${api} before installing packages (${mode}).\n  undo: ${uninstallCommand(opts.aptConfDir === undefined ? undefined : resolve(opts.aptConfDir))}\n`)
    if (!running) {
      const start = opts.data === undefined ? 'rbq node start' : `rbq node start --data ${opts.data}`
      process.stderr.write(`rbq: note: no node is answering at ${api}; until one is (${start}, or systemctl start rbq), apt ${settings.warnOnly ? 'installs unchecked packages' : 'will refuse every installation'}.\n`)
    }
  })

  hook
    .command('uninstall')
    .description('remove the apt configuration written by `rbq apt-hook install`')
    .option('--apt-conf-dir <dir>', 'apt configuration directory (default /etc/apt/apt.conf.d)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { aptConfDir?: string; json?: boolean }) => {
      const { uninstallAptHook, DEFAULT_APT_CONF_DIR } = await import('../../node/apt/apt-conf.js')
      const result = await uninstallAptHook(opts.aptConfDir ?? DEFAULT_APT_CONF_DIR)
      if (opts.json) return printJson(result)
      process.stdout.write(result.removed ? `removed ${result.path}: apt installs without asking the node\n` : `${result.path} was not installed; nothing to do\n`)
    })

  withNodeOptions(
    withGateOptions(hook
      .command('run')
      .description('judge .deb files (paths on stdin, one per line, as apt passes them; or as arguments): exit 0 when all are reproduced')
      .argument('[deb...]', '.deb files to judge instead of reading stdin')
      .option('--warn-only', 'report but always exit 0')
      .option('--policy <file>', 'judge with this policy file instead of the node\'s')
      .option('--apt-conf-dir <dir>', 'where the gate is installed (set by `rbq apt-hook install`; named in the uninstall hint)'))
  ).action(async (debs: string[], opts: HookOptions) => {
    const [{ judgeDebs, parseHookInput, formatRefusals, formatNodeDown, gatePolicyOf, gatePolicyArgs }, { uninstallCommand, shellQuote }] = await Promise.all([
      import('../../node/apt/gate.js'),
      import('../../node/apt/apt-conf.js')
    ])
    const warnOnly = opts.warnOnly === true
    const uninstall = uninstallCommand(opts.aptConfDir === undefined ? undefined : resolve(opts.aptConfDir))
    let decision
    let gate
    try {
      gate = gatePolicyOf(opts)
      const paths = debs.length > 0 ? debs : parseHookInput(await readStdin(MAX_HOOK_INPUT_BYTES))
      if (paths.length === 0) return
      const policy = await readPolicy(opts.policy)
      const client = await nodeClient(opts)
      decision = await judgeDebs(paths, (queries) => client.verdicts(queries, policy === undefined ? {} : { policy }), gate)
    } catch (e) {
      if (e instanceof RbqError && e.code === 'API_UNAVAILABLE') {
        const start = opts.data === undefined ? 'rbq node start' : `rbq node start --data ${resolve(opts.data)}`
        process.stderr.write(formatNodeDown(`${e.message} [${e.code}]`, warnOnly, start, uninstall))
        if (warnOnly) return
        throw new CliExit(EXIT_NEGATIVE)
      }
      // Anything else (a policy with errors, an unreadable stdin, ...): enforce mode fails
      // closed; warn-only never blocks apt.
      const why = e instanceof RbqError ? `${e.message} [${e.code}]` : unexpectedErrorText(e, process.env).replace(/^rbq: /, '').trimEnd()
      if (!warnOnly) throw new CliExit(EXIT_NEGATIVE, `rbq: refusing the installation: packages could not be checked: ${why}`)
      process.stderr.write(`rbq: warning: packages were NOT checked (warn-only mode: installing anyway): ${why}\n`)
      return
    }
    // The command that installed this gate, without the setting the hint proposes to change.
    const install = ['rbq apt-hook install', ...[...runArgsOf(opts), ...gatePolicyArgs({ ...gate, unreproducible: 'refuse' })].map(shellQuote)].join(' ')
    process.stderr.write(formatRefusals(decision, warnOnly, uninstall, install)) // nothing when all are reproduced or allowed
    if (!decision.allowed && !warnOnly) throw new CliExit(EXIT_NEGATIVE)
  })
}
