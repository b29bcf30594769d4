/**
 * Default locations. The data dir holds the LevelDB store, keys and the API token:
 *   $RBQ_DATA_DIR, else /var/lib/rbq for root (system service), else
 *   $XDG_DATA_HOME/rbq or ~/.local/share/rbq.
 * The system config file (node/node-config.ts has the precedence): $CONFIGURATION_DIRECTORY (set by
 * systemd's ConfigurationDirectory=rbq, i.e. /etc/rbq) or /etc/rbq for root, else
 * $XDG_CONFIG_HOME/rbq or ~/.config/rbq; the file is config.toml there.
 */
import { homedir } from 'node:os'
import { join } from 'node:path'

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RBQ_DATA_DIR) return env.RBQ_DATA_DIR
  if (isRoot()) return '/var/lib/rbq'
  const xdg = env.XDG_DATA_HOME
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.local', 'share'), 'rbq')
}

export function systemConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  const systemd = env.CONFIGURATION_DIRECTORY?.split(':')[0]
  if (systemd) return systemd
  if (isRoot()) return '/etc/rbq'
  const xdg = env.XDG_CONFIG_HOME
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.config'), 'rbq')
}

export function systemConfigFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(systemConfigDir(env), 'config.toml')
}

/**
 * The default data dir for this user and why, for help texts: as root it is /var/lib/rbq
 * whatever $HOME is, which a help text claiming "~/.local/share/rbq" would hide.
 */
export function defaultDataDirDescription(env: NodeJS.ProcessEnv = process.env): string {
  const dir = defaultDataDir(env)
  if (env.RBQ_DATA_DIR) return `${dir}, from $RBQ_DATA_DIR`
  if (isRoot()) return `${dir} as root, whatever $HOME is; $RBQ_DATA_DIR overrides`
  return `${dir}; /var/lib/rbq as root; $RBQ_DATA_DIR overrides`
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
