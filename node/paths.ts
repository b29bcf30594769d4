/**
 * Default locations. The data dir holds the LevelDB store, keys and the API token:
 *   $RBQ_DATA_DIR, else /var/lib/rbq for root (system service), else
 *   $XDG_DATA_HOME/rbq or ~/.local/share/rbq.
 */
import { homedir } from 'node:os'
import { join } from 'node:path'

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RBQ_DATA_DIR) return env.RBQ_DATA_DIR
  if (typeof process.getuid === 'function' && process.getuid() === 0) return '/var/lib/rbq'
  const xdg = env.XDG_DATA_HOME
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.local', 'share'), 'rbq')
}

export interface DataDirLayout {
  root: string
  db: string // LevelDB directory
  signingKey: string // Ed25519 signing key (0600)
  bridgeKey: string // key that signs statements imported from rebuilderd (0600)
  peerKey: string // libp2p peer key (0600)
  apiToken: string // bearer token for write routes (0600)
  cache: string // archive indexes, build roots, downloads
}

export function dataDirLayout(root: string): DataDirLayout {
  return {
    root,
    db: join(root, 'db'),
    signingKey: join(root, 'signing.key'),
    bridgeKey: join(root, 'bridge.key'),
    peerKey: join(root, 'peer.key'),
    apiToken: join(root, 'api.token'),
    cache: join(root, 'cache')
  }
}
