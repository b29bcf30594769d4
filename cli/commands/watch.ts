/**
 * `rbq watch`: follows the node's event stream and prints each verdict change of a watched
 * artifact (and, with --frames, each new frame) until interrupted. `--add FILE.deb…` first adds
 * files to the watch list; `--list` prints the list and exits. The stream is resumed after a
 * dropped connection (Last-Event-ID), so nothing the node still holds is missed.
 */
import { resolve } from 'node:path'
import type { Command } from 'commander'
import type { ApiEvent, ApiEventType, FrameEvent, VerdictEvent, WatchedArtifact } from '../../protocol/api.js'
import { RbqError } from '../../protocol/errors.js'
import { printJson } from '../exit.js'
import { withNode, type NodeOptions } from '../../client/node-session.js'
import { withNodeOptions } from '../options.js'

interface WatchOptions extends NodeOptions {
  add?: string[]
  list?: boolean
  frames?: boolean
  json?: boolean
}

/** Pause before resuming a dropped stream (grows to 30 s while the node stays away). */
const RETRY_MS = [500, 1000, 2000, 5000, 10_000, 30_000]

/**
 * What a change means: `mismatch` is the tampering alarm (`!!`); leaving `reproduced` for
 * anything else but `unreproducible` is worth attention (`!!`); `reproduced → unreproducible`
 * is toolchain drift (a note, not an alarm).
 */
function changeNote(e: VerdictEvent): string {
  if (e.to === 'mismatch' && e.from !== 'mismatch') return '  !! TAMPERING ALARM: this file is not what trusted parties rebuilt or saw published'
  if (e.from !== 'reproduced' || e.to === 'reproduced') return ''
  if (e.to === 'unreproducible') return "  (was reproducible, now is not with today's toolchain; not a sign of tampering)"
  return '  !! was reproducible, now is not'
}

export function formatVerdictEvent(e: VerdictEvent, at = new Date()): string {
  const change = e.from === e.to ? `${e.to} (evidence changed)` : `${e.from ?? 'new'} → ${e.to}`
  return `${at.toISOString()}  ${e.package} ${e.artifact}  ${change}: ${e.reason}${changeNote(e)}\n`
}

function formatFrameEvent(type: string, e: FrameEvent): string {
  const what = e.package === undefined ? '' : ` ${e.package} ${e.outcome ?? ''} ${(e.subject ?? []).map((s) => s.name).join(' ')}`
  return `${new Date().toISOString()}  new ${type} by ${e.signer.slice(0, 16)}…${what}\n`
}

function formatWatched(w: WatchedArtifact): string {
  return `${(w.status ?? 'pending').padEnd(14)} ${w.package} ${w.artifact} ${w.sha256.slice(0, 12)}  ${w.reason ?? ''}\n`
}

/** SIGINT/SIGTERM end the watch normally (exit 0). */
function interruption(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController()
  const onSignal = () => controller.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    }
  }
}

export function registerWatch(program: Command): void {
  withNodeOptions(program.command('watch').description('follow verdict changes of watched artifacts (e.g. installed packages) as they happen'))
    .option('--add <file...>', 'first add these .deb files to the watch list')
    .option('--list', 'print the watch list with the last verdicts, and exit')
    .option('--frames', 'also print every new frame the node stores')
    .option('--json', 'print events (or the list) as JSON, one per line')
    .action(async (opts: WatchOptions) => {
      await withNode(opts, async (client) => {
        if (opts.add !== undefined && opts.add.length > 0) {
          const { inspectDeb } = await import('../../debian/deb-file.js')
          const items = []
          for (const f of opts.add) items.push((await inspectDeb(resolve(f))).query)
          const added = await client.watch(items)
          if (!opts.json) for (const w of added) process.stdout.write(`watching ${formatWatched(w)}`)
        }
        if (opts.list === true) {
          const list = await client.watched()
          if (opts.json) return printJson({ watched: list })
          if (list.length === 0) process.stdout.write('nothing is watched (add files with rbq watch --add FILE.deb)\n')
          for (const w of list) process.stdout.write(formatWatched(w))
          return
        }
        const types: ApiEventType[] = opts.frames === true ? ['verdict', 'attestation', 'delegation', 'equivocation'] : ['verdict']
        const { signal, dispose } = interruption()
        let lastEventId: string | undefined
        let failures = 0
        try {
          while (!signal.aborted) {
            try {
              for await (const event of client.events({ types, signal, ...(lastEventId === undefined ? {} : { lastEventId }) })) {
                failures = 0
                lastEventId = event.id
                print(event, opts.json === true)
              }
            } catch (e) {
              if (!(e instanceof RbqError && e.code === 'API_UNAVAILABLE')) throw e
              // The first connection must work (withNode explains how to start a node); later drops are retried.
              if (lastEventId === undefined && failures === 0) throw e
              process.stderr.write(`rbq: ${e.message}; retrying\n`)
            }
            if (signal.aborted) break
            const pause = RETRY_MS[Math.min(failures++, RETRY_MS.length - 1)]!
            await new Promise<void>((r) => {
              const t = setTimeout(r, pause)
              signal.addEventListener('abort', () => (clearTimeout(t), r()), { once: true })
            })
          }
        } finally {
          dispose()
        }
      })
    })
}

function print(event: ApiEvent, json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify({ type: event.type, id: event.id, data: event.data }) + '\n')
    return
  }
  process.stdout.write(event.type === 'verdict' ? formatVerdictEvent(event.data) : formatFrameEvent(event.type, event.data))
}
