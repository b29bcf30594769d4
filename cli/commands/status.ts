/** `rbq status`: what the local node is doing. */
import type { Command } from 'commander'
import { withNode, type NodeOptions } from '../../client/node-session.js'
import type { StatusResponse } from '../../protocol/api.js'
import { printJson } from '../exit.js'
import { withNodeOptions } from '../options.js'

function duration(seconds: number): string {
  const d = Math.floor(seconds / 86400)
  const h = Math.floor((seconds % 86400) / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${seconds % 60}s` : `${seconds}s`
}

/** ", ETA 2h 5m (recent rebuilds 4m 10s each)": what the queue will take at the recent pace. */
function eta(sch: NonNullable<StatusResponse['scheduler']>): string {
  if (sch.etaSeconds === undefined || sch.queued + sch.running === 0) return ''
  if (sch.etaSeconds === null) return ', ETA known once a rebuild has finished'
  return `, ETA ${duration(sch.etaSeconds)}${sch.recentSeconds == null ? '' : ` (recent rebuilds ${duration(sch.recentSeconds)} each)`}`
}

const row = (label: string, value: string) => `  ${label.padEnd(10)} ${value}\n`
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

export function formatStatus(s: StatusResponse): string {
  let out = `rbq node ${s.version} at ${s.api}, up ${duration(s.uptimeSeconds)}\n`
  out += row('key', s.keyid === null ? '(none)' : `${s.keyid}  ${s.publicKey ?? ''}`)
  out += row('peer id', s.peerId ?? '(no network)')
  for (const [i, a] of s.listen.entries()) out += row(i === 0 ? 'listen' : '', a)
  out += row('peers', `${s.peers} connected`)
  out += row('frames', `${plural(s.frames.attestation, 'attestation')}, ${plural(s.frames.delegation, 'delegation')}, ${plural(s.frames.equivocation, 'equivocation proof')}`)
  const progress = s.sync.progress === undefined ? '' : ` (${s.sync.progress.done}/${s.sync.progress.total})`
  const sync = s.sync.state === 'catching-up' ? `catching up${progress}` : s.sync.state === 'idle' ? 'up to date with connected peers' : 'off'
  out += row('sync', sync + (s.sync.detail === undefined ? '' : ` — ${s.sync.detail}`))
  out += row('rebuilds', s.scheduler === null ? 'this node does not rebuild' : `${s.scheduler.queued} queued, ${s.scheduler.running} running${eta(s.scheduler)}${s.scheduler.detail === undefined ? '' : ` — ${s.scheduler.detail}`}`)
  for (const f of s.scheduler?.feeds ?? []) out += row('', `feed ${f.feed}: ${plural(f.entries, 'package')}, ${f.sampled} sampled for this node (read ${f.polledAt})`)
  const done = s.scheduler?.done
  if (done !== undefined) {
    const total = done.reproduced + done.mismatch + done.failed + done.built
    out += row('', `done: ${total} (${done.reproduced} reproduced, ${done.mismatch} other bytes, ${done.failed} failed, ${done.built} built)${done.error === 0 ? '' : `, ${done.error} given up unattested`}`)
  }
  // Builds take minutes: name each running one, where it is and for how long.
  for (const j of s.scheduler?.jobs ?? []) {
    const attempt = j.attempt > 1 ? `, attempt ${j.attempt}` : ''
    out += row('', `${j.purl}: ${j.phase}, building for ${duration(j.elapsedSeconds)}${attempt}${j.message === undefined ? '' : ` — ${j.message.slice(0, 120)}`}`)
  }
  if (s.policy.loaded) {
    const roots = s.policy.roots ?? []
    out += row('policy', `${s.policy.file}: ${s.policy.threshold} ${s.policy.count === 'key' ? 'keys' : 'parties'} of ${plural(roots.length, 'root')} (${roots.map((r) => r.name).join(', ')})`)
  } else {
    out += row('policy', `NOT USABLE — ${s.policy.error ?? 'not loaded'}`)
  }
  out += row('watched', plural(s.watched, 'artifact'))
  out += row('data', s.dataDir)
  return out
}

export function registerStatus(program: Command): void {
  withNodeOptions(program.command('status').description('show what the local node is doing: identity, peers, stored frames, catch-up, rebuild queue, policy'))
    .option('--json', 'print the status as JSON')
    .action(async (opts: NodeOptions & { json?: boolean }) => {
      const status = await withNode(opts, (c) => c.status())
      if (opts.json) printJson(status)
      else process.stdout.write(formatStatus(status))
    })
}
