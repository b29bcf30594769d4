/**
 * `rbq import rebuilderd URL|FILE`: records a rebuilderd instance's GOOD Debian results as
 * `reproduced` attestations signed by this machine's bridge key (`<data>/bridge.key`, created on
 * first use) and submits them to the node. Nothing counts until a curator trusts the bridge key
 * (`rbq trust add NAME ed25519:…`). What is and is not recorded, and why: client/bridge/README.md.
 *
 * The list (every v1 page) is read, rows' attestations fetched and verified with the pinned keys,
 * and the import planned before anything is signed or sent. Records the node stored are
 * remembered (`<data>/bridge-state/`), so running it again signs only what is new. Progress goes
 * to stderr.
 */
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { RbqError } from '../../protocol/errors.js'
import { CliExit, EXIT_NEGATIVE, EXIT_USAGE, printJson } from '../exit.js'
import { withNode, type NodeOptions } from '../../client/node-session.js'
import type { ApiClient } from '../../client/api-client.js'
import type { BridgeState } from '../../client/bridge/bridge-state.js'
import type { AttestationFrame } from '../../protocol/index.js'
import { withNodeOptions } from '../options.js'

interface ImportOptions extends NodeOptions {
  dryRun?: boolean
  json?: boolean
  quiet?: boolean
  key: string[]
  keyId: string[]
  allowUnsigned?: boolean
  allowHttp?: boolean
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`
const collect = (v: string, prev: string[]) => [...prev, v]

export function registerImport(program: Command): void {
  const imp = program.command('import').description('import rebuild results from other systems as attestations signed by a local bridge key')

  withNodeOptions(
    imp
      .command('rebuilderd')
      .description(
        'import a rebuilderd instance\'s GOOD Debian rows as reproduced attestations: its signed in-toto links are verified with the key you pin; ' +
          'the source is an instance URL (https://host/), a list URL (…/api/v1/packages/binary, …/api/v0/pkgs/list) or a saved list file'
      )
      .argument('<source>', 'an https URL of the instance or its list, or a file')
      .option('--key <file>', 'the instance\'s public key(s), PEM as /api/v1/meta/public-keys publishes them (repeatable)', collect, [])
      .option('--key-id <id>', 'pin the instance key with this in-toto key id (the keyid in its attestations\' signatures); the key is fetched from the instance and must match (repeatable)', collect, [])
      .option('--allow-unsigned', 'also import rows without an attestation verified by a pinned key; their statements are tagged unauthenticated-source')
      .option('--allow-http', 'accept plain http:// (unauthenticated transport)')
      .option('--dry-run', 'read, verify and plan only: nothing is signed, submitted or remembered')
      .option('--json', 'print the summary as JSON')
      .option('-q, --quiet', 'no progress on stderr')
  ).action((source: string, opts: ImportOptions) => importRebuilderd(source, opts))
}

/** The bridge's modules, loaded when the verb runs (they are not needed by any other verb). */
async function loadBridge() {
  const [listSource, rebuilderd, plan, instance, inToto, bridgeState, dataDir] = await Promise.all([
    import('../../client/bridge/list-source.js'),
    import('../../client/bridge/rebuilderd.js'),
    import('../../client/bridge/rebuilderd-import.js'),
    import('../../client/bridge/instance.js'),
    import('../../client/bridge/in-toto-link.js'),
    import('../../client/bridge/bridge-state.js'),
    import('../../common/data-dir.js')
  ])
  return { ...listSource, ...rebuilderd, ...plan, ...inToto, ...bridgeState, ...dataDir, instance }
}
type Bridge = Awaited<ReturnType<typeof loadBridge>>
type Endpoint = import('../../client/bridge/instance.js').Endpoint
type Progress = (message: string) => void
type Plan = ReturnType<Bridge['planRebuilderdImport']>

/** What `rbq import rebuilderd --json` prints; the text report says the same. */
interface ImportSummary {
  source: string
  origin: string
  api: string
  pages: number
  notModified: number
  rows: number
  total: number | undefined
  statements: number
  artifacts: number
  verified: number
  unauthenticated: number
  attestations: number
  skipped: Record<string, number>
  refused: string[]
  submitted: number
  stored: number
  duplicate: number
  rejected: number
  bridge: { keyid: string; publicKey: string; file: string } | undefined
}

/** Read → verify → plan → (unless --dry-run) sign with the bridge key and submit; then report. */
async function importRebuilderd(source: string, opts: ImportOptions): Promise<void> {
  const bridge = await loadBridge()
  const progress: Progress = opts.quiet === true ? () => {} : (m: string) => process.stderr.write(`rbq: ${m}\n`)
  const allowHttp = opts.allowHttp === true
  const allowUnsigned = opts.allowUnsigned === true
  const url = bridge.isUrl(source)
  if (url) bridge.checkUrlAllowed(source, allowHttp)
  const endpoint = url ? bridge.instance.endpointOf(source) : undefined
  const origin = endpoint?.base ?? resolve(source)
  if (!url && opts.keyId.length > 0) throw new RbqError('USAGE', '--key-id fetches the instance\'s keys: give the instance URL, or pin with --key FILE')
  const keys = await pinnedKeys(bridge, opts, endpoint, allowHttp)
  if (keys.length > 0) progress(`verifying attestations with ${plural(keys.length, 'pinned key')}: ${keys.map((k) => k.keyid).join(', ')}`)

  const dataDir = resolve(opts.data ?? bridge.defaultDataDir())
  const state = await bridge.BridgeState.open(bridge.bridgeStatePath(dataDir))
  try {
    const list = await readList(bridge, source, { endpoint, origin, state, allowHttp, memoScope: `${allowUnsigned ? 'unsigned' : 'signed'}:${keys.map((k) => k.keyid).sort().join(',')}`, progress })
    const gathered = await bridge.gatherEvidence(list.artifacts, { origin, endpoint, keys, allowUnsigned, allowHttp, state })
    for (const r of gathered.refused) process.stderr.write(`rbq: refused attestation: ${r}\n`)
    const plan = bridge.planRebuilderdImport(gathered.rows, { origin })
    const skipped = {}
    bridge.addSkipped(skipped, list.skipped)
    bridge.addSkipped(skipped, gathered.skipped)
    bridge.addSkipped(skipped, plan.skipped)
    if (!allowUnsigned && (gathered.skipped.unsigned ?? 0) > 0) {
      const hint = keys.length === 0 && endpoint !== undefined ? await publishedKeyHint(bridge.instance, endpoint, allowHttp) : ''
      progress(
        `${plural(gathered.skipped.unsigned!, 'row')} without an attestation verified by a pinned key were left out` +
          (keys.length === 0 ? ': pin the instance\'s key (--key-id ID or --key FILE)' : '') +
          `, or pass --allow-unsigned to import them tagged unauthenticated-source${hint}`
      )
    }

    const verified = plan.statements.filter((s) => s.authenticated).reduce((n, s) => n + s.subjects.length, 0)
    const summary: ImportSummary = {
      source: endpoint?.listUrl ?? origin,
      origin,
      api: list.api,
      pages: list.pages,
      notModified: list.notModified,
      rows: list.rows,
      total: list.total,
      statements: plan.statements.length,
      artifacts: plan.artifacts,
      verified,
      unauthenticated: plan.artifacts - verified,
      attestations: gathered.fetched,
      skipped,
      refused: gathered.refused,
      submitted: 0,
      stored: 0,
      duplicate: 0,
      rejected: 0,
      bridge: undefined
    }
    const finish = async () => {
      // Validators are remembered only when nothing read was refused: a 304 must mean "nothing new".
      if (opts.dryRun !== true && gathered.refused.length === 0 && summary.rejected === 0 && summary.submitted === plan.statements.length) await state.savePages(list.memos)
      report(summary, opts)
      if (summary.rejected > 0) throw new CliExit(EXIT_USAGE, `rbq: the node rejected ${plural(summary.rejected, 'statement')}`)
      if (gathered.refused.length > 0) throw new CliExit(EXIT_NEGATIVE, `rbq: ${plural(summary.skipped['attestation-invalid'] ?? 0, 'attestation')} did not verify with the pinned keys; those rows were not imported`)
    }
    if (opts.dryRun === true || plan.statements.length === 0) return await finish()

    await withNode(opts, async (client) => {
      await client.status() // before reserving seqs: a stopped node must not burn them
      const frames = await signWithBridgeKey(bridge, plan, dataDir, summary, progress)
      await submitFrames(client, frames, plan, state, summary, progress)
      await finish()
    })
  } finally {
    await state.close()
  }
}

/** Pinned keys only: a key the instance serves counts only when its id was pinned (no trust on first use). */
async function pinnedKeys(bridge: Bridge, opts: ImportOptions, endpoint: Endpoint | undefined, allowHttp: boolean) {
  const keys = []
  for (const file of opts.key) {
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (e) {
      throw new RbqError((e as NodeJS.ErrnoException).code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'FILE_UNREADABLE', `${file}: ${(e as Error).message}`)
    }
    keys.push(...bridge.parseRebuilderdPublicKeys(text, file))
  }
  if (endpoint !== undefined && opts.keyId.length > 0) {
    const { pinned } = await bridge.instance.fetchPinnedKeys(endpoint, opts.keyId, allowHttp)
    keys.push(...pinned)
  }
  return keys
}

/** The instance's list (every page, with the remembered validators) or a saved list file. */
async function readList(
  bridge: Bridge,
  source: string,
  how: { endpoint: Endpoint | undefined; origin: string; state: BridgeState; allowHttp: boolean; memoScope: string; progress: Progress }
) {
  const { endpoint, progress } = how
  progress(`reading ${endpoint?.listUrl ?? how.origin}`)
  let lastMb = 0
  const onBytes = (bytes: number) => {
    const mb = Math.floor(bytes / (8 * 1024 * 1024))
    if (mb > lastMb) progress(`downloaded ${(lastMb = mb) * 8} MiB`)
  }
  const list =
    endpoint !== undefined
      ? await bridge.instance.readInstanceList(endpoint, { allowHttp: how.allowHttp, state: how.state, memoScope: how.memoScope, progress, onBytes })
      : { ...bridge.parseRebuilderdList(await bridge.readListFile(source), source), pages: 1, notModified: 0, memos: new Map() }
  for (const p of list.problems) progress(`skipped: ${p}`)
  progress(`${plural(list.rows, 'row')} (rebuilderd ${list.api}${list.pages > 1 ? `, ${list.pages} pages` : ''}${list.notModified > 0 ? `, ${list.notModified} not modified` : ''})`)
  return list
}

/**
 * Signs the plan with the bridge key (created on first use) through its StatementSigner: one block
 * of seqs, persisted and locked before signing, so concurrent imports never overlap.
 */
async function signWithBridgeKey(bridge: Bridge, plan: Plan, dataDir: string, summary: ImportSummary, progress: Progress): Promise<AttestationFrame[]> {
  const [{ loadOrCreateKey }, { seqFileFor }, { StatementSigner }] = await Promise.all([
    import('../../identity/signing-key.js'),
    import('../../identity/seq-counter.js'),
    import('../../identity/statement-signer.js')
  ])
  const keyFile = bridge.bridgeKeyPath(dataDir)
  const { key, created } = await loadOrCreateKey(keyFile)
  if (created) progress(`created the bridge key ${keyFile}`)
  summary.bridge = { keyid: key.publicKey.keyid, publicKey: key.publicKey.text, file: keyFile }
  const frames = await new StatementSigner(key, seqFileFor(keyFile)).attestAll(bridge.importContents(plan))
  const firstSeq = frames[0]!.statement.predicate.builder.seq
  progress(`signing ${plural(frames.length, 'statement')} (seq ${firstSeq}..${firstSeq + frames.length - 1})`)
  return frames
}

/** Submits in chunks; records the node stored are remembered at once, so a rerun signs only the rest. */
async function submitFrames(client: ApiClient, frames: AttestationFrame[], plan: Plan, state: BridgeState, summary: ImportSummary, progress: Progress): Promise<void> {
  const CHUNK = 500
  const firstErrors: string[] = []
  for (let i = 0; i < frames.length; i += CHUNK) {
    let results
    try {
      results = await client.submitFrames(frames.slice(i, i + CHUNK).map((f) => f.bytes))
    } catch (e) {
      if (!(e instanceof RbqError)) throw e
      throw new CliExit(
        EXIT_USAGE,
        `rbq: the node refused or failed after ${summary.submitted} of ${frames.length} statements were submitted (${summary.stored} stored): ${e.message} [${e.code}]\n` +
          'rbq: the rest were not submitted; running the import again signs only those (stored ones are remembered).'
      )
    }
    const accepted = []
    for (const [j, r] of results.entries()) {
      summary.submitted++
      if (r.status === 'stored' || r.status === 'duplicate') {
        summary[r.status === 'stored' ? 'stored' : 'duplicate']++
        accepted.push(...plan.statements[i + j]!.records)
      } else {
        summary.rejected++
        if (firstErrors.length < 3 && r.error !== undefined) firstErrors.push(`${r.error.message} [${r.error.code}]`)
      }
    }
    await state.markImported(accepted)
    progress(`submitted ${summary.submitted}/${frames.length}`)
  }
  for (const e of firstErrors) process.stderr.write(`rbq: rejected: ${e}\n`)
}

/** The summary as JSON (--json) or text. */
function report(summary: ImportSummary, opts: ImportOptions): void {
  if (opts.json === true) return printJson(summary)
  const skippedText = Object.entries(summary.skipped).map(([why, n]) => `${why} ${n}`).join(', ') || 'none'
  let out = `${opts.dryRun ? 'would import' : 'imported'} ${plural(summary.artifacts, 'artifact')} (${summary.verified} verified, ${summary.unauthenticated} unauthenticated) in ${plural(summary.statements, 'statement')} from ${summary.origin}\n`
  out += `  skipped rows: ${skippedText}\n`
  if (!opts.dryRun) out += `  submitted ${summary.submitted}: stored ${summary.stored}, already there ${summary.duplicate}, rejected ${summary.rejected}\n`
  if (summary.bridge !== undefined) {
    out += `  signed by the bridge key ${summary.bridge.keyid} (${summary.bridge.file})\n`
    out += `\nthese count for nobody until you trust the bridge as a party:\n  rbq trust add rebuilderd-bridge ${summary.bridge.publicKey} --scope 'pkg:deb/debian/*'\n`
  }
  process.stdout.write(out)
}

/** When nothing is pinned: the ids the instance publishes, to check out of band and pin. */
async function publishedKeyHint(instance: Bridge['instance'], endpoint: Endpoint, allowHttp: boolean): Promise<string> {
  try {
    const { published } = await instance.fetchPinnedKeys(endpoint, [], allowHttp)
    return published.length === 0 ? '' : ` (the instance publishes key id ${published.map((k) => k.keyid).join(', ')}: check it with its operator before pinning it)`
  } catch {
    return ''
  }
}
