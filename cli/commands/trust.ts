/**
 * `rbq trust add|remove|list|explain`: the verifier's trust roots in the policy file
 * (`<data>/policy.toml`, or --policy FILE). add/remove/list edit and read the file directly;
 * add/remove edit its text (node/trust/policy-edit.ts) so the admin's comments stay, checked by
 * re-parsing (a layout the text edit cannot handle is rewritten by formatPolicy, with a note);
 * a running node notices the change. explain asks the node, which knows the delegations: the chain from a root to the key.
 *
 * A policy is built up one root at a time, so add/remove accept a file whose only problem is
 * having fewer roots than its threshold (they say how many are missing); every other error is
 * refused with the line named.
 */
import { promises as fs } from 'node:fs'
import { resolve } from 'node:path'
import { type Command } from 'commander'
import type { ApiClient } from '../../client/api-client.js'
import type { TrustExplanation } from '../../protocol/api.js'
import { RbqError } from '../../protocol/errors.js'
import type { Policy, TrustRoot } from '../../node/consensus/policy.js'
import { CliExit, EXIT_NEGATIVE, printJson } from '../exit.js'
import { dataDirHelp } from '../options.js'
import { withNode, type NodeOptions } from '../../client/node-session.js'
import { withNodeOptions } from '../options.js'

interface PolicyOptions {
  data?: string
  policy?: string
  json?: boolean
}

async function policyFileOf(opts: PolicyOptions): Promise<string> {
  if (opts.policy !== undefined) return resolve(opts.policy)
  const [{ defaultDataDir }, { policyPath }] = await Promise.all([import('../../common/data-dir.js'), import('../../node/trust/policy-file.js')])
  return policyPath(resolve(opts.data ?? defaultDataDir()))
}

/** A policy being edited: validated settings and roots (fewer roots than the threshold allowed). */
interface Editable {
  file: string
  exists: boolean
  settings: Omit<Policy, 'roots'>
  roots: TrustRoot[]
  /** The raw TOML table (for re-validation with another root list). */
  table: Record<string, unknown>
  /** The file's text, edited in place to keep its comments. */
  text: string | undefined
}

const DEFAULT_SETTINGS = { threshold: 2, count: 'party', max_dissent: 0, max_depth: 3 }

async function readEditable(file: string): Promise<Editable> {
  const [{ parse, TomlError }, { readFileBounded }] = await Promise.all([import('smol-toml'), import('../../common/files.js')])
  let text: string | undefined
  try {
    text = Buffer.from(await readFileBounded(file, 128 * 1024, 'policy file')).toString('utf8')
  } catch (e) {
    if (!(e instanceof RbqError && e.code === 'FILE_NOT_FOUND')) throw e
  }
  let table: Record<string, unknown> = { ...DEFAULT_SETTINGS }
  if (text !== undefined) {
    try {
      table = parse(text) as Record<string, unknown>
    } catch (e) {
      if (e instanceof TomlError) throw new RbqError('POLICY_INVALID', `${file}:${e.line}:${e.column}: TOML syntax: ${e.message.split('\n')[0]}`, { cause: e })
      throw e
    }
  }
  const raw = Array.isArray(table.root) ? (table.root as unknown[]) : []
  const { settings, roots } = await validate(file, table, raw, text)
  return { file, exists: text !== undefined, settings, roots, table, text }
}

/** Validates `table` with `roots` through policyFromObject, except for the threshold-vs-roots check. */
async function validate(file: string, table: Record<string, unknown>, roots: unknown[], text?: string): Promise<{ settings: Omit<Policy, 'roots'>; roots: TrustRoot[] }> {
  const { policyFromObject, lineOfField } = await import('../../node/consensus/policy.js')
  const locate = (field: string) => {
    const line = text === undefined ? undefined : lineOfField(text, field)
    return line === undefined ? `${file}: ` : `${file}:${line}: `
  }
  const relaxed = { requireReachableThreshold: false }
  if (roots.length === 0) {
    // Nothing to validate roots against yet: check the settings with a stand-in root.
    const { generateSigningKey } = await import('../../protocol/keys.js')
    const standIn = { name: 'stand-in', key: generateSigningKey().publicKey.text }
    const p = policyFromObject({ ...table, root: [standIn] }, file, locate, relaxed)
    return { settings: { threshold: p.threshold, count: p.count, maxDissent: p.maxDissent, maxDepth: p.maxDepth }, roots: [] }
  }
  const p = policyFromObject({ ...table, root: roots }, file, locate, relaxed)
  return { settings: { threshold: p.threshold, count: p.count, maxDissent: p.maxDissent, maxDepth: p.maxDepth }, roots: [...p.roots] }
}

/**
 * Writes the policy with `roots`: the file's own text with `edit` applied (comments and layout
 * kept) when re-parsing it gives exactly these settings and roots; otherwise (no file yet, or a
 * layout the text edit does not handle) the whole file in formatPolicy's form, saying so.
 */
async function write(e: Editable, roots: readonly TrustRoot[], edit: (text: string) => string | undefined): Promise<void> {
  const [{ formatPolicy }, { parse }] = await Promise.all([import('../../node/consensus/policy.js'), import('smol-toml')])
  const same = async (text: string): Promise<boolean> => {
    try {
      const table = parse(text) as Record<string, unknown>
      const p = await validate(e.file, table, Array.isArray(table.root) ? (table.root as unknown[]) : [], text)
      const s = p.settings
      const settingsKept = s.threshold === e.settings.threshold && s.count === e.settings.count && s.maxDissent === e.settings.maxDissent && s.maxDepth === e.settings.maxDepth
      const sameRoot = (r: TrustRoot, i: number) => r.name === roots[i]!.name && r.key.keyid === roots[i]!.key.keyid && r.scope.join('\n') === roots[i]!.scope.join('\n')
      return settingsKept && p.roots.length === roots.length && p.roots.every(sameRoot)
    } catch {
      return false
    }
  }
  const edited = e.text === undefined ? undefined : edit(e.text)
  let text: string
  if (edited !== undefined && (await same(edited))) text = edited
  else {
    text = formatPolicy({ ...e.settings, roots })
    if (e.text !== undefined) process.stderr.write(`rbq: note: ${e.file} was rewritten in rbq's own layout (its comments were not kept): its roots are not plain [[root]] tables rbq can edit in place\n`)
  }
  const tmp = `${e.file}.tmp-${process.pid}`
  await fs.writeFile(tmp, text, { mode: 0o644 })
  await fs.rename(tmp, e.file)
}

/** What is missing for the policy to give verdicts, or undefined. */
function shortfall(settings: Omit<Policy, 'roots'>, roots: readonly TrustRoot[]): string | undefined {
  if (roots.length === 0) return 'the policy has no root yet: it trusts nobody, so every verdict fails'
  if (settings.count === 'party' && settings.threshold > roots.length) {
    const missing = settings.threshold - roots.length
    return `threshold is ${settings.threshold} parties but ${roots.length} ${roots.length === 1 ? 'root is' : 'roots are'} listed: add ${missing} more (or lower threshold) before the node can give verdicts`
  }
  return undefined
}

function rootJson(r: TrustRoot) {
  return { name: r.name, key: r.key.text, keyid: r.key.keyid, scope: [...r.scope] }
}

/** Why the policy (the node's, or the text given) cannot give verdicts, e.g. a threshold no set of roots can meet. */
async function policyProblem(client: ApiClient, policyText: string | undefined): Promise<string | undefined> {
  if (policyText === undefined) {
    const { policy } = await client.status()
    return policy.loaded ? undefined : policy.error
  }
  const { parsePolicy } = await import('../../node/consensus/policy.js')
  try {
    parsePolicy(policyText, 'policy')
    return undefined
  } catch (e) {
    return e instanceof RbqError ? e.message : String(e)
  }
}

function formatExplanation(x: TrustExplanation): string {
  let out = `${x.keyid}: ${x.trusted ? 'TRUSTED' : 'not trusted'}${x.package === undefined ? '' : ` for ${x.package}`}\n  ${x.reason}\n`
  const chain = x.builder?.chain ?? []
  if (x.builder !== undefined) {
    out += `  chain:\n    root "${x.builder.party}"\n`
    for (const e of chain) {
      out += `    └─ "${e.name}" ${e.delegate.slice(0, 16)}… v${e.version}, scope ${e.scope.join(' ')}, maxDepth ${e.maxDepth}, expires ${e.expires} (signed by ${e.delegator.slice(0, 16)}…, frame ${e.frameId.slice(0, 16)}…)\n`
    }
  }
  const other = x.incoming.filter((e) => !chain.some((c) => c.frameId === e.frameId))
  if (other.length > 0) {
    out += '  other delegations to this key:\n'
    for (const e of other) out += `    ${e.state.padEnd(11)} "${e.name}" v${e.version} from ${e.delegator.slice(0, 16)}…, scope ${e.scope.join(' ')}, expires ${e.expires}\n`
  }
  if (x.excluded) out += '  this key has an accepted equivocation proof against it\n'
  return out
}

export function registerTrust(program: Command): void {
  const trust = program.command('trust').description('manage the trust roots of your policy, and explain why a key is trusted')
  const policyOption = (cmd: Command) =>
    cmd
      .option('--data <dir>', dataDirHelp('the node data dir whose policy.toml to use'))
      .option('--policy <file>', 'the policy file (default: <data>/policy.toml)')

  policyOption(
    trust
      .command('add')
      .description('trust a party: add a [[root]] (KEY is ed25519:…, or "self" for this node\'s own signing key)')
      .argument('<name>', 'a name for the party, shown in verdicts')
      .argument('<key>', 'its public key, ed25519:…, or "self"')
      .option('--scope <pattern...>', 'purl patterns it is trusted for (default: everything, "*")')
  )
    .option('--json', 'print the resulting roots as JSON')
    .action(async (name: string, keyText: string, opts: PolicyOptions & { scope?: string[] }) => {
      const file = await policyFileOf(opts)
      let key = keyText
      if (keyText === 'self') {
        const [{ dataDirLayout, defaultDataDir }, { loadKey }] = await Promise.all([import('../../common/data-dir.js'), import('../../identity/signing-key.js')])
        key = (await loadKey(dataDirLayout(resolve(opts.data ?? defaultDataDir())).signingKey)).publicKey.text
      }
      const e = await readEditable(file)
      const raw = e.roots.map(rootJson).map(({ name, key, scope }) => ({ name, key, scope }))
      const added = { name, key, scope: opts.scope ?? ['*'] }
      const { roots } = await validate(file, e.table, [...raw, added]).catch((err: unknown) => {
        if (err instanceof RbqError) throw new RbqError('USAGE', `cannot add "${name}": ${err.message.replace(`${file}: `, '')}`, { cause: err })
        throw err
      })
      const { appendRoot } = await import('../../node/trust/policy-edit.js')
      await write(e, roots, (text) => appendRoot(text, roots[roots.length - 1]!))
      const missing = shortfall(e.settings, roots)
      if (opts.json) return printJson({ file, roots: roots.map(rootJson), ...(missing === undefined ? {} : { warning: missing }) })
      const r = roots[roots.length - 1]!
      process.stdout.write(`trusting "${r.name}" ${r.key.keyid} for ${r.scope.join(' ')} (${file})\n`)
      if (missing !== undefined) process.stderr.write(`rbq: note: ${missing}\n`)
    })

  policyOption(trust.command('remove').description('stop trusting a party: remove its [[root]]').argument('<name-or-key>', 'the root\'s name, key id or ed25519: key'))
    .option('--json', 'print the remaining roots as JSON')
    .action(async (which: string, opts: PolicyOptions) => {
      const file = await policyFileOf(opts)
      const e = await readEditable(file)
      const keep = e.roots.filter((r) => r.name !== which && r.key.keyid !== which.toLowerCase() && r.key.text !== which)
      if (keep.length === e.roots.length) {
        throw new CliExit(EXIT_NEGATIVE, `rbq: no root named or keyed "${which}" in ${file} (roots: ${e.roots.map((r) => r.name).join(', ') || 'none'})`, 'NOT_FOUND')
      }
      const { removeRoot } = await import('../../node/trust/policy-edit.js')
      // From the last match backwards, so earlier indexes stay valid.
      const gone = e.roots.flatMap((r, i) => (keep.includes(r) ? [] : [i])).reverse()
      await write(e, keep, (text) => gone.reduce<string | undefined>((t, i) => (t === undefined ? undefined : removeRoot(t, i)), text))
      const missing = shortfall(e.settings, keep)
      if (opts.json) return printJson({ file, roots: keep.map(rootJson), ...(missing === undefined ? {} : { warning: missing }) })
      process.stdout.write(`removed "${which}" (${file}); ${keep.length} ${keep.length === 1 ? 'root' : 'roots'} left\n`)
      if (missing !== undefined) process.stderr.write(`rbq: note: ${missing}\n`)
    })

  policyOption(trust.command('list').description('list the trust roots and settings of the policy'))
    .option('--json', 'print the policy as JSON')
    .action(async (opts: PolicyOptions) => {
      const file = await policyFileOf(opts)
      const e = await readEditable(file)
      const missing = shortfall(e.settings, e.roots)
      if (opts.json) {
        return printJson({ file, exists: e.exists, ...e.settings, roots: e.roots.map(rootJson), usable: missing === undefined, ...(missing === undefined ? {} : { warning: missing }) })
      }
      const s = e.settings
      let out = `${file}${e.exists ? '' : ' (does not exist yet)'}\n`
      out += `  threshold ${s.threshold} ${s.count === 'key' ? 'keys' : 'parties'}, max_dissent ${s.maxDissent}, max_depth ${s.maxDepth}\n`
      for (const r of e.roots) out += `  ${r.name.padEnd(20)} ${r.key.text}  ${r.scope.join(' ')}\n`
      process.stdout.write(out)
      if (missing !== undefined) process.stderr.write(`rbq: note: ${missing}\n`)
    })

  withNodeOptions(
    trust
      .command('explain')
      .description('explain how the node\'s policy trusts a key: the delegation chain from a root, or why there is none')
      .argument('<key>', 'key id (hex) or public key (ed25519:…)')
      .option('--package <purl>', 'for this package (scopes apply)')
      .option('--policy <file>', 'judge with this policy file instead of the node\'s')
  )
    .option('--json', 'print the explanation as JSON')
    .action(async (key: string, opts: NodeOptions & { package?: string; policy?: string; json?: boolean }) => {
      let policy: string | undefined
      if (opts.policy !== undefined) {
        const { readFileBounded } = await import('../../common/files.js')
        policy = Buffer.from(await readFileBounded(resolve(opts.policy), 128 * 1024, 'policy file')).toString('utf8')
      }
      const { x, unusable } = await withNode(opts, async (c) => ({
        x: await c.explainTrust(key, { ...(opts.package === undefined ? {} : { package: opts.package }), ...(policy === undefined ? {} : { policy }) }),
        unusable: await policyProblem(c, policy)
      }))
      if (opts.json) printJson(x)
      else process.stdout.write(formatExplanation(x))
      // The chain is explained from the roots alone; say when the policy cannot give verdicts yet.
      if (unusable !== undefined && !opts.json) process.stderr.write(`rbq: note: this policy gives no verdicts yet: ${unusable}\n`)
      if (!x.trusted) throw new CliExit(EXIT_NEGATIVE)
    })
}
