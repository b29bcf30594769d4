/**
 * `rbq import rebuilderd FILE|URL`: records a rebuilderd instance's GOOD results as
 * `reproduced` attestations signed by this machine's bridge key (`<data>/bridge.key`, created
 * on first use) and submits them to the node. Nothing counts until a curator trusts the bridge
 * key (`rbq trust add NAME ed25519:…`). What is and is not recorded: node/bridge/bridge.ts.
 *
 * The whole list is read, validated and planned before anything is signed or sent; a bad row
 * stops the import naming the row. If the node fails midway, the summary says how many
 * statements were submitted. Progress goes to stderr.
 */
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { RbqError } from '../../protocol/errors.js'
import { CliExit, EXIT_USAGE, printJson } from '../exit.js'
import { withNode, withNodeOptions, type NodeOptions } from './status.js'

interface ImportOptions extends NodeOptions {
  dryRun?: boolean
  json?: boolean
  lists?: string
  quiet?: boolean
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

export function registerImport(program: Command): void {
  const imp = program.command('import').description('import rebuild results from other systems as attestations signed by a local bridge key')

  withNodeOptions(
    imp
      .command('rebuilderd')
      .description('import a rebuilderd package list (v0 /api/v0/pkgs/list or v1 /api/v1/packages/binary JSON): GOOD rows become reproduced attestations')
      .argument('<source>', 'a file, or an http(s) URL of the list')
      .option('--dry-run', 'read and plan only: nothing is signed or submitted')
      .option('--lists <dir>', 'apt lists whose Packages indexes give the digests (default /var/lib/apt/lists)')
      .option('--json', 'print the summary as JSON')
      .option('-q, --quiet', 'no progress on stderr')
  ).action(async (source: string, opts: ImportOptions) => {
    const [{ readListSource, isUrl }, { parseRebuilderdList }, bridge, { lookupIndexedBinaries }] = await Promise.all([
      import('../../node/bridge/list-source.js'),
      import('../../node/bridge/rebuilderd.js'),
      import('../../node/bridge/bridge.js'),
      import('../../node/health/packages-index.js')
    ])
    const progress = opts.quiet === true ? () => {} : (m: string) => process.stderr.write(`rbq: ${m}\n`)
    const origin = isUrl(source) ? source : resolve(source)

    progress(`reading ${origin}`)
    let lastMb = 0
    const text = await readListSource(source, {
      onProgress: (bytes) => {
        const mb = Math.floor(bytes / (8 * 1024 * 1024))
        if (mb > lastMb) progress(`downloaded ${(lastMb = mb) * 8} MiB`)
      }
    })
    const list = parseRebuilderdList(text, isUrl(source) ? 'list' : source)
    progress(`${plural(list.artifacts.length, 'row')} (rebuilderd ${list.api})${list.total > list.artifacts.length ? `, one page of ${list.total}: import the other pages too` : ''}`)
    progress('looking up digests in the Packages indexes')
    const plan = await bridge.planRebuilderdImport(list.artifacts, {
      origin,
      lookup: (keys) => lookupIndexedBinaries(keys, opts.lists === undefined ? {} : { listsDir: opts.lists })
    })

    const summary = {
      source: origin,
      api: list.api,
      rows: list.artifacts.length,
      total: list.total,
      statements: plan.statements.length,
      artifacts: plan.artifacts,
      skipped: plan.skipped,
      submitted: 0,
      stored: 0,
      duplicate: 0,
      rejected: 0,
      bridge: undefined as { keyid: string; publicKey: string; file: string } | undefined
    }
    const skippedText = Object.entries(plan.skipped).map(([why, n]) => `${why} ${n}`).join(', ') || 'none'
    const report = () => {
      if (opts.json === true) return printJson(summary)
      let out = `${opts.dryRun ? 'would import' : 'imported'} ${plural(plan.artifacts, 'artifact')} in ${plural(plan.statements.length, 'statement')} from ${origin}\n`
      out += `  skipped rows: ${skippedText}\n`
      if (!opts.dryRun) out += `  submitted ${summary.submitted}: stored ${summary.stored}, already there ${summary.duplicate}, rejected ${summary.rejected}\n`
      if (summary.bridge !== undefined) {
        out += `  signed by the bridge key ${summary.bridge.keyid} (${summary.bridge.file})\n`
        out += `\nthese count for nobody until you trust the bridge as a party:\n  rbq trust add rebuilderd-bridge ${summary.bridge.publicKey} --scope 'pkg:deb/debian/*'\n`
      }
      process.stdout.write(out)
    }
    if (opts.dryRun === true || plan.statements.length === 0) return report()

    await withNode(opts, async (client) => {
      await client.status() // before reserving seqs: a stopped node must not burn them
      const [{ loadOrCreateKey }, { SeqCounter, seqFileFor }, { defaultDataDir }] = await Promise.all([
        import('../../node/identity/key-file.js'),
        import('../../node/identity/seq-counter.js'),
        import('../../node/paths.js')
      ])
      const keyFile = bridge.bridgeKeyPath(resolve(opts.data ?? defaultDataDir()))
      const { key, created } = await loadOrCreateKey(keyFile)
      if (created) progress(`created the bridge key ${keyFile}`)
      summary.bridge = { keyid: key.publicKey.keyid, publicKey: key.publicKey.text, file: keyFile }
      // One block of seqs, persisted and locked before signing: concurrent imports never overlap.
      const firstSeq = await new SeqCounter(seqFileFor(keyFile), key.publicKey.keyid).reserveBlock(plan.statements.length)
      progress(`signing ${plural(plan.statements.length, 'statement')} (seq ${firstSeq}..${firstSeq + plan.statements.length - 1})`)
      const frames = bridge.signImport(plan, key, firstSeq)
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
              'rbq: the rest were not submitted; running the import again signs them anew (already stored statements are kept).'
          )
        }
        for (const r of results) {
          summary.submitted++
          if (r.status === 'stored') summary.stored++
          else if (r.status === 'duplicate') summary.duplicate++
          else {
            summary.rejected++
            if (firstErrors.length < 3 && r.error !== undefined) firstErrors.push(`${r.error.message} [${r.error.code}]`)
          }
        }
        progress(`submitted ${summary.submitted}/${frames.length}`)
      }
      for (const e of firstErrors) process.stderr.write(`rbq: rejected: ${e}\n`)
      report()
      if (summary.rejected > 0) throw new CliExit(EXIT_USAGE, `rbq: the node rejected ${plural(summary.rejected, 'statement')}`)
    })
  })
}
