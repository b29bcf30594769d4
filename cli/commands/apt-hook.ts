/**
 * `rbq apt-hook install|uninstall|run`: the apt install gate (client/apt/).
 *
 *   install    writes the gate settings (default /etc/rbq/apt-gate.toml, commented) and
 *              /etc/apt/apt.conf.d/80rbq: apt runs `<launcher> apt-hook run --gate-config FILE`
 *              as a DPkg::Pre-Install-Pkgs hook (protocol version 3). The launcher is the `rbq`
 *              on PATH or `--launcher PATH`, checked by running `<launcher> --version` with the
 *              system PATH apt uses.
 *   uninstall  removes exactly 80rbq (the settings file stays, like a conffile)
 *   run        what apt runs: judges every .deb, prints nothing when all are `reproduced`;
 *              otherwise names each package and its verdict on stderr and exits 1, which makes
 *              apt abort before dpkg touches anything. A node that does not answer refuses the
 *              installation (fail closed); `warn` mode reports and exits 0.
 *
 * Settings (install and run; on `run` they override the file): `--mode strict|tampering-only|warn`
 * (`--warn-only` = `--mode warn`), `--unreproducible|--insufficient|--unknown|--failed
 * refuse|warn|allow`, `--allow-package NAME`, `--allow-origin PATTERN`, `--policy`, `--api`,
 * `--data`. `install` with no setting keeps an existing settings file (hand edits survive).
 */
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { RbqError } from '../../protocol/errors.js'
import { CliExit, EXIT_NEGATIVE, printJson, unexpectedErrorText } from '../exit.js'
import type { GateSettings } from '../../client/apt/gate-config.js'
import { nodeClient, type NodeOptions } from '../../client/node-session.js'
import { withNodeOptions } from '../options.js'

/** apt passes a few thousand packages at most; 16 MiB of stdin is not a package list. */
const MAX_HOOK_INPUT_BYTES = 16 * 1024 * 1024

interface HookOptions extends NodeOptions {
  mode?: string
  warnOnly?: boolean
  policy?: string
  /** Per-status gate settings (client/apt/gate-config.ts GATED_STATUSES), checked in the action. */
  unreproducible?: string
  insufficient?: string
  unknown?: string
  failed?: string
  allowPackage?: string[]
  allowOrigin?: string[]
  gateConfig?: string
  /** Where the gate is installed: `run` names it in the uninstall command it suggests. */
  aptConfDir?: string
}

async function readStdin(max: number): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > max) throw new RbqError('INPUT_TOO_LARGE', `more than ${max} bytes on stdin: not apt hook input`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** Reads and parses the policy file, so a broken one fails with its line now. */
async function readPolicy(path: string | undefined): Promise<string | undefined> {
  if (path === undefined) return undefined
  const [{ readFileBounded }, { API_MAX_POLICY_BYTES }, { parsePolicy }] = await Promise.all([import('../../common/files.js'), import('../../protocol/api.js'), import('../../node/consensus/index.js')])
  const text = Buffer.from(await readFileBounded(path, API_MAX_POLICY_BYTES, 'policy file')).toString('utf8')
  parsePolicy(text, path)
  return text
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value]

/** The settings given on the command line, as a settings-file table (undefined: none given). */
function settingsTableOf(opts: HookOptions): Record<string, unknown> | undefined {
  const t: Record<string, unknown> = {}
  if (opts.warnOnly === true) {
    if (opts.mode !== undefined && opts.mode !== 'warn') throw new RbqError('USAGE', `--warn-only is --mode warn; it contradicts --mode ${opts.mode}`)
    t.mode = 'warn'
  }
  if (opts.mode !== undefined) t.mode = opts.mode
  for (const k of ['unreproducible', 'insufficient', 'unknown', 'failed'] as const) if (opts[k] !== undefined) t[k] = opts[k]
  if (opts.allowPackage !== undefined) t.allow_packages = opts.allowPackage
  if (opts.allowOrigin !== undefined) t.allow_origins = opts.allowOrigin
  if (opts.api !== undefined) t.api = opts.api
  if (opts.data !== undefined) t.data = resolve(opts.data)
  if (opts.policy !== undefined) t.policy = resolve(opts.policy)
  return Object.keys(t).length === 0 ? undefined : t
}

/** The gate options, on `install` and `run` alike. */
function withGateOptions(command: Command): Command {
  const what = (status: string) => `what to do with ${status} files: refuse, warn (install with a warning) or allow (default: the mode's)`
  return withNodeOptions(command)
    .option('--mode <mode>', 'strict (refuse every file not reproduced; default), tampering-only (refuse only mismatch and conflict), warn (report, refuse nothing)')
    .option('--warn-only', 'the same as --mode warn')
    .option('--unreproducible <action>', what('unreproducible (archive files that rebuild differently with today\'s toolchain; not tampering)'))
    .option('--insufficient <action>', what('insufficient (fewer than k parties)'))
    .option('--unknown <action>', what('unknown (no trusted statement)'))
    .option('--failed <action>', what('failed (trusted builders only report build failures)'))
    .option('--allow-package <name>', 'install this binary package (* wildcards) with a warning whatever the evidence, except mismatch and conflict; repeatable', collect)
    .option('--allow-origin <pattern>', 'install files from this archive (e.g. "origin=Debian,label=Debian-Security") with a warning, except mismatch and conflict; repeatable', collect)
    .option('--policy <file>', 'judge with this policy file instead of the node\'s')
    .option('--apt-conf-dir <dir>', 'apt configuration directory (default /etc/apt/apt.conf.d; for chroots and tests)')
}

export function registerAptHook(program: Command): void {
  const hook = program.command('apt-hook').description('gate apt installations on your rebuild policy (DPkg::Pre-Install-Pkgs)')

  withGateOptions(
    hook
      .command('install')
      .description('write the gate settings and the apt configuration that runs `rbq apt-hook run` before every installation')
      .option('--gate-config <file>', 'the gate settings file (default /etc/rbq/apt-gate.toml)')
      .option('--launcher <path>', 'the rbq apt starts (default: the rbq on PATH, e.g. /usr/local/bin/rbq from npm install -g)')
      .option('--json', 'print the result as JSON')
  ).action(async (opts: HookOptions & { json?: boolean; launcher?: string }) => {
    const [apt, cfg] = await Promise.all([import('../../client/apt/apt-conf.js'), import('../../client/apt/gate-config.js')])
    const gateConfig = resolve(opts.gateConfig ?? cfg.DEFAULT_GATE_CONFIG)
    const aptConfDir = opts.aptConfDir === undefined ? undefined : resolve(opts.aptConfDir)
    const launcher = opts.launcher === undefined ? apt.findLauncher() : resolve(opts.launcher)
    if (launcher === undefined) {
      throw new RbqError('USAGE', 'no `rbq` on PATH for apt to start: install rbq system-wide (`sudo npm install -g ./rebuild-quorum-*.tgz`, README "Install"), or name one with --launcher PATH')
    }
    const launcherVersion = apt.checkLauncher(launcher)
    const table = settingsTableOf(opts)
    let settings: GateSettings
    let kept = false
    if (table !== undefined) settings = cfg.gateSettingsFrom(table, 'command line')
    else {
      settings = await cfg.readGateConfig(gateConfig).then(
        (s) => ((kept = true), s),
        (e: unknown) => {
          if (e instanceof RbqError && e.code === 'FILE_NOT_FOUND') return cfg.DEFAULT_GATE_SETTINGS
          throw e
        }
      )
    }
    await readPolicy(settings.policy) // fail now, not at the next apt run
    if (!kept) await cfg.writeGateConfig(gateConfig, settings)
    const { path, replaced } = await apt.installAptHook({ launcher, gateConfig, ...(aptConfDir === undefined ? {} : { aptConfDir }) }, aptConfDir ?? apt.DEFAULT_APT_CONF_DIR)
    // A gate in front of a stopped node refuses everything: say so now rather than at apt time.
    const client = await nodeClient({ ...(settings.api === undefined ? {} : { api: settings.api }), ...(settings.data === undefined ? {} : { data: settings.data }) })
    const api = await client.url()
    const running = await client.status().then(
      () => true,
      (e: unknown) => {
        if (e instanceof RbqError && e.code === 'API_UNAVAILABLE') return false
        throw e
      }
    )
    const warnOnly = settings.mode === 'warn'
    if (opts.json) {
      const { allowOrigins, ...rest } = settings
      return printJson({ path, replaced, gateConfig, gateConfigKept: kept, launcher, launcherVersion, settings: { ...rest, allowOrigins: allowOrigins.map((o) => o.text), effective: cfg.effectivePolicy(settings) }, api, nodeRunning: running })
    }
    process.stdout.write(
      `${replaced ? 'updated' : 'wrote'} ${path}: apt starts ${launcher} (rbq ${launcherVersion}) before installing packages\n` +
        `${kept ? 'kept' : 'wrote'} ${gateConfig}: ${cfg.describeGateSettings(settings)}\n` +
        `  apt asks the node at ${api}. Change the settings in ${gateConfig}; \`dpkg -i\` bypasses the gate.\n` +
        `  undo: ${apt.uninstallCommand(aptConfDir)}\n`
    )
    if (!running) {
      const start = settings.data === undefined ? 'rbq node start' : `rbq node start --data ${settings.data}`
      process.stderr.write(`rbq: note: no node is answering at ${api}; until one is (${start}, or systemctl start rbq), apt ${warnOnly ? 'installs unchecked packages' : 'will refuse every installation'}.\n`)
    }
  })

  hook
    .command('uninstall')
    .description('remove the apt configuration written by `rbq apt-hook install` (the gate settings file stays)')
    .option('--apt-conf-dir <dir>', 'apt configuration directory (default /etc/apt/apt.conf.d)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { aptConfDir?: string; json?: boolean }) => {
      const { uninstallAptHook, DEFAULT_APT_CONF_DIR } = await import('../../client/apt/apt-conf.js')
      const result = await uninstallAptHook(opts.aptConfDir ?? DEFAULT_APT_CONF_DIR)
      if (opts.json) return printJson(result)
      process.stdout.write(result.removed ? `removed ${result.path}: apt installs without asking the node\n` : `${result.path} was not installed; nothing to do\n`)
    })

  withGateOptions(
    hook
      .command('run')
      .description('judge .deb files (apt hook input on stdin, protocol 1 or 3; or files as arguments): exit 0 when the gate lets them all through')
      .argument('[deb...]', '.deb files to judge instead of reading stdin')
      .option('--gate-config <file>', 'read the gate settings from this file (options given here override it)')
  ).action(async (debs: string[], opts: HookOptions) => {
    const [{ judgeDebs, formatRefusals, formatNodeDown }, { uninstallCommand }, cfg, { parseHookInput, aptListsDir }] = await Promise.all([
      import('../../client/apt/gate.js'),
      import('../../client/apt/apt-conf.js'),
      import('../../client/apt/gate-config.js'),
      import('../../client/apt/hook-input.js')
    ])
    // Until the settings are read, only the command line can say "warn mode".
    let warnOnly = opts.warnOnly === true || opts.mode === 'warn'
    const uninstall = uninstallCommand(opts.aptConfDir === undefined ? undefined : resolve(opts.aptConfDir))
    const gateConfig = opts.gateConfig === undefined ? undefined : resolve(opts.gateConfig)
    let decision
    let settings: GateSettings | undefined
    try {
      const base = gateConfig === undefined ? cfg.DEFAULT_GATE_SETTINGS : await cfg.readGateConfig(gateConfig)
      const table = settingsTableOf(opts)
      const given = table === undefined ? undefined : cfg.gateSettingsFrom(table, 'command line')
      settings = given === undefined ? base : mergeSettings(base, given, table ?? {})
      warnOnly = settings.mode === 'warn'
      const input = debs.length > 0 ? { debs: debs.map((path) => ({ path })), config: new Map<string, string>() } : parseHookInput(await readStdin(MAX_HOOK_INPUT_BYTES))
      if (input.debs.length === 0) return
      const policy = await readPolicy(settings.policy)
      const client = await nodeClient({ ...(settings.api === undefined ? {} : { api: settings.api }), ...(settings.data === undefined ? {} : { data: settings.data }) })
      const listsDir = aptListsDir(input.config)
      decision = await judgeDebs(input.debs, (queries) => client.verdicts(queries, { evidence: 'brief', ...(policy === undefined ? {} : { policy }) }), { settings, ...(listsDir === undefined ? {} : { listsDir }) })
    } catch (e) {
      if (e instanceof RbqError && e.code === 'API_UNAVAILABLE') {
        const start = settings?.data === undefined ? 'rbq node start' : `rbq node start --data ${settings.data}`
        process.stderr.write(formatNodeDown(`${e.message} [${e.code}]`, warnOnly, start, uninstall))
        if (warnOnly) return
        throw new CliExit(EXIT_NEGATIVE)
      }
      // Anything else (a policy with errors, unreadable settings, hook input not in the
      // protocol, ...): fail closed; warn mode never blocks apt.
      const why = e instanceof RbqError ? `${e.message} [${e.code}]` : unexpectedErrorText(e, process.env).replace(/^rbq: /, '').trimEnd()
      if (!warnOnly) throw new CliExit(EXIT_NEGATIVE, `rbq: refusing the installation: packages could not be checked: ${why}`)
      process.stderr.write(`rbq: warning: packages were NOT checked (warn mode: installing anyway): ${why}\n`)
      return
    }
    // nothing printed when all are reproduced or allowed
    process.stderr.write(formatRefusals(decision, { warnOnly, uninstall, config: gateConfig ?? 'the gate settings (rbq apt-hook install --gate-config FILE)' }))
    if (!decision.allowed && !warnOnly) throw new CliExit(EXIT_NEGATIVE)
  })
}

/** The file's settings with what the command line gave on top (lists add up). */
function mergeSettings(base: GateSettings, given: GateSettings, table: Record<string, unknown>): GateSettings {
  return {
    mode: table.mode === undefined ? base.mode : given.mode,
    overrides: { ...base.overrides, ...given.overrides },
    allowPackages: [...base.allowPackages, ...given.allowPackages],
    allowOrigins: [...base.allowOrigins, ...given.allowOrigins],
    ...((given.api ?? base.api) === undefined ? {} : { api: given.api ?? base.api }),
    ...((given.data ?? base.data) === undefined ? {} : { data: given.data ?? base.data }),
    ...((given.policy ?? base.policy) === undefined ? {} : { policy: given.policy ?? base.policy })
  }
}
