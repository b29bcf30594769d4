/**
 * How a recipe build is cut off from the network on this machine, detected once per process
 * by running the real thing:
 *   root       `unshare --net`                       (a new network namespace: only a down loopback)
 *   non-root   `unshare --net --map-root-user`       (same, inside an unprivileged user namespace)
 *   neither    no isolation: the build runs anyway and the log and result say so
 * Containers may deny namespaces even to root, hence the probe rather than a uid check.
 */
import { run } from '../../../common/subprocess.js'

export type NetworkIsolation =
  | { mode: 'netns' | 'userns-netns'; prefix: string[]; detail: string }
  | { mode: 'none'; prefix: []; detail: string }

const PROBE_TIMEOUT_MS = 10_000
let detected: Promise<NetworkIsolation> | undefined

export function detectNetworkIsolation(): Promise<NetworkIsolation> {
  detected ??= probe()
  return detected
}

async function probe(): Promise<NetworkIsolation> {
  const candidates: { mode: 'netns' | 'userns-netns'; prefix: string[] }[] = []
  if (process.getuid?.() === 0) candidates.push({ mode: 'netns', prefix: ['unshare', '--net', '--'] })
  candidates.push({ mode: 'userns-netns', prefix: ['unshare', '--net', '--map-root-user', '--'] })
  const failures: string[] = []
  for (const c of candidates) {
    try {
      const [cmd, ...args] = c.prefix
      const r = await run(cmd as string, [...args, 'true'], { timeoutMs: PROBE_TIMEOUT_MS })
      if (r.code === 0) return { ...c, detail: `${c.prefix.slice(0, -1).join(' ')}: builds have no network` }
      failures.push(`${c.prefix.slice(0, -1).join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`)
    } catch (e) {
      failures.push(`unshare: ${(e as Error).message} (apt-get install util-linux)`)
      break
    }
  }
  return { mode: 'none', prefix: [], detail: `builds run WITH network: ${failures.join('; ')}` }
}
