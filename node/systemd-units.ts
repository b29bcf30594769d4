/**
 * Hardened systemd units for a node (`rbq init --systemd` writes them).
 *
 * Default: `rbq.service` runs the node as a dedicated user `rbq` (DynamicUser: systemd
 * allocates it and owns /var/lib/rbq for it), with no capabilities, no new privileges, a
 * read-only view of the system (ProtectSystem=strict) where only its state directory is
 * writable, no access to home directories, a private /tmp and /dev, and only IPv4/IPv6/Unix
 * sockets. It rebuilds recipes; Debian rebuilds need root.
 *
 * Debian rebuilds (`debianRebuilds: true`), split as rebuilderd splits daemon and worker: the
 * libp2p-facing node keeps the same sandbox as a static system user `rbq` (sysusers.d), and
 * the privileged part is `rbq-build-helper.service`, socket-activated by
 * `rbq-build-helper.socket` (/run/rbq/build.sock, 0660 root:rbq). The helper runs as root
 * because build roots need chroot, mounts, namespaces and device nodes; it listens to nothing
 * but that socket, accepts only build requests (node/build-helper/helper-protocol.ts), holds no keys,
 * and builds at idle CPU and I/O priority with its cache in /var/cache/rbq (CacheDirectory=).
 * The node finds it through `[rebuild] build_helper` in /etc/rbq/config.toml.
 */
import { promises as fs } from 'node:fs'
import { dirname, join } from 'node:path'
import { RbqError } from '../protocol/index.js'
import { DEFAULT_BUILD_SOCKET } from './build-helper/helper-protocol.js'

export const DEFAULT_UNIT_PATH = '/etc/systemd/system/rbq.service'
export const SYSTEMD_STATE_DIR = '/var/lib/rbq'
export const SYSTEMD_CACHE_DIR = '/var/cache/rbq'
export const SYSTEMD_CONFIG_FILE = '/etc/rbq/config.toml'
export const SYSUSERS_PATH = '/etc/sysusers.d/rbq.conf'
export const HELPER_SOCKET_UNIT = 'rbq-build-helper.socket'
export const HELPER_SERVICE_UNIT = 'rbq-build-helper.service'

export interface SystemdUnitOptions {
  /** argv that starts rbq: absolute node binary + dist/cli/main.js, or the rbq bin path. */
  rbq: readonly string[]
  /** Extra arguments for `rbq node start` (e.g. `--config /etc/rbq/config.toml`). */
  startArgs?: readonly string[]
  /** Unprivileged node + privileged build helper (see the module comment). */
  debianRebuilds?: boolean
  /**
   * The executable lives under /home, /root or /run/user, which ProtectHome=yes hides:
   * `read-only` writes ProtectHome=read-only instead (the files must be readable by the units'
   * users). Unset: such a path is refused (checkExecPaths).
   */
  protectHome?: 'yes' | 'read-only'
}

const HOME_DIRS = ['/home', '/root', '/run/user']

/**
 * ProtectHome=yes makes /home, /root and /run/user empty for the service: a node binary under
 * them (nvm, a checkout in a home directory) would fail at start with a bare 203/EXEC. Refused
 * here with what to do instead, unless the caller chose ProtectHome=read-only.
 */
export function checkExecPaths(paths: readonly string[], protectHome: 'yes' | 'read-only' = 'yes'): void {
  if (protectHome === 'read-only') return
  for (const path of paths) {
    const home = HOME_DIRS.find((d) => path === d || path.startsWith(`${d}/`))
    if (home === undefined) continue
    throw new RbqError(
      'USAGE',
      `${path} is under ${home}, which the unit's ProtectHome=yes hides from the service (it would fail with 203/EXEC): ` +
        'install rbq system-wide (Debian\'s nodejs and `npm install -g`, giving /usr/local/bin/rbq) and run `rbq init --systemd` from there, ' +
        'or pass --protect-home read-only (the files must then be readable by the service users)'
    )
  }
}

/** systemd's own quoting for ExecStart= words ("…" with \\ and \" escaped). */
export function systemdQuote(arg: string): string {
  if (/[\u0000-\u001f\u007f]/.test(arg)) throw new RbqError('USAGE', `cannot put ${JSON.stringify(arg)} in a systemd unit (control characters)`)
  if (/^[A-Za-z0-9_/.:=@+,-]+$/.test(arg)) return arg
  return `"${arg.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%').replace(/\$/g, '$$$$')}"`
}

function execLine(opts: SystemdUnitOptions, args: readonly string[]): string {
  if (opts.rbq.length === 0 || !(opts.rbq[0] as string).startsWith('/')) {
    throw new RbqError('USAGE', 'the unit needs an absolute path to the rbq (or node) executable')
  }
  checkExecPaths(opts.rbq.filter((a) => a.startsWith('/')), opts.protectHome)
  return `ExecStart=${[...opts.rbq, ...args].map(systemdQuote).join(' ')}`
}

/** Sandbox lines both the node and the helper keep. */
function commonSandbox(opts: SystemdUnitOptions): string[] {
  return [
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    `ProtectHome=${opts.protectHome ?? 'yes'}`,
    'PrivateTmp=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectHostname=yes',
    'RestrictSUIDSGID=yes',
    'RestrictRealtime=yes',
    'LockPersonality=yes',
    'SystemCallArchitectures=native',
    '# MemoryDenyWriteExecute is left off: V8 JIT-compiles JavaScript into executable memory.'
  ]
}

/** The node's unit: never root. */
export function systemdUnit(opts: SystemdUnitOptions): string {
  const exec = execLine(opts, ['node', 'start', '--data', SYSTEMD_STATE_DIR, ...(opts.startArgs ?? [])])
  const split = opts.debianRebuilds === true
  const lines = [
    '# rebuild-quorum node. Written by `rbq init --systemd`.',
    '# Enable: systemctl daemon-reload && systemctl enable --now rbq',
    split
      ? `# Mode: Debian rebuilds through ${HELPER_SERVICE_UNIT} (root, socket-activated); this node runs as the system user rbq.`
      : '# Mode: recipes only (Debian rebuilds need root: rbq init --systemd --debian-rebuilds adds a build helper). Runs as the dynamic user rbq.',
    '[Unit]',
    'Description=rebuild-quorum node: reproducible-build attestations and verdicts',
    'Documentation=man:rbq(1)',
    'Wants=network-online.target',
    'After=network-online.target',
    ...(split ? [`Wants=${HELPER_SOCKET_UNIT}`, `After=${HELPER_SOCKET_UNIT}`] : []),
    '',
    '[Service]',
    'Type=simple',
    exec,
    `Environment=RBQ_DATA_DIR=${SYSTEMD_STATE_DIR}`,
    'Restart=on-failure',
    'RestartSec=5s',
    'TimeoutStopSec=60s',
    'StateDirectory=rbq',
    'StateDirectoryMode=0700',
    // /etc/rbq, where the node reads config.toml ($CONFIGURATION_DIRECTORY, common/data-dir.ts).
    'ConfigurationDirectory=rbq',
    'UMask=0077',
    'LimitNOFILE=65536',
    '# Sandbox',
    ...commonSandbox(opts),
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
    ...(split ? ['# The static system user rbq (sysusers.d/rbq.conf): its group may connect to the build helper socket.', 'User=rbq', 'Group=rbq'] : ['DynamicUser=yes', 'User=rbq', 'Group=rbq']),
    'CapabilityBoundingSet=',
    'AmbientCapabilities=',
    'PrivateDevices=yes',
    'ProtectClock=yes',
    ...(split ? [] : ['PrivateUsers=yes']),
    'ProtectKernelTunables=yes',
    'ProtectControlGroups=yes',
    'ProtectProc=invisible',
    'ProcSubset=pid',
    'RestrictNamespaces=yes',
    'SystemCallFilter=@system-service',
    'SystemCallFilter=~@privileged @resources',
    'SystemCallErrorNumber=EPERM',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    ''
  ]
  return lines.join('\n')
}

/** The socket the node connects to; systemd starts the helper on the first connection. */
export function buildHelperSocketUnit(): string {
  return [
    '# rebuild-quorum build helper socket. Written by `rbq init --systemd --debian-rebuilds`.',
    '[Unit]',
    'Description=rebuild-quorum build helper socket (the node asks for builds here)',
    '',
    '[Socket]',
    `ListenStream=${DEFAULT_BUILD_SOCKET}`,
    'SocketUser=root',
    'SocketGroup=rbq',
    'SocketMode=0660',
    'DirectoryMode=0755',
    'Accept=no',
    '',
    '[Install]',
    'WantedBy=sockets.target',
    ''
  ].join('\n')
}

/** The privileged build helper: root (build roots), idle priority, nothing but its socket. */
export function buildHelperServiceUnit(opts: SystemdUnitOptions): string {
  return [
    '# rebuild-quorum build helper. Written by `rbq init --systemd --debian-rebuilds`.',
    '# Root: build roots need chroot, mounts, namespaces and device nodes. It holds no keys and',
    '# accepts only build requests on its socket (node/build-helper/helper-protocol.ts).',
    '[Unit]',
    'Description=rebuild-quorum build helper: runs the builds an unprivileged node asks for',
    'Documentation=man:rbq(1)',
    `Requires=${HELPER_SOCKET_UNIT}`,
    `After=${HELPER_SOCKET_UNIT} network-online.target`,
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    execLine(opts, ['build-helper', '--cache', SYSTEMD_CACHE_DIR]),
    'User=root',
    'Restart=on-failure',
    'RestartSec=5s',
    'TimeoutStopSec=60s',
    '# Builds yield to everything else on the machine.',
    'CPUSchedulingPolicy=idle',
    'IOSchedulingClass=idle',
    'Nice=19',
    '# ~0.5 GB: Debian indexes, pool files, build roots; recipe work dirs.',
    'CacheDirectory=rbq',
    'CacheDirectoryMode=0700',
    'ConfigurationDirectory=rbq',
    'UMask=0022',
    '# Sandbox: what does not break build roots',
    ...commonSandbox(opts),
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
    'RestrictNamespaces=no',
    'ProtectControlGroups=yes',
    'CapabilityBoundingSet=CAP_SYS_ADMIN CAP_SYS_CHROOT CAP_MKNOD CAP_CHOWN CAP_FOWNER CAP_FSETID CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_SETUID CAP_SETGID CAP_SETPCAP CAP_KILL CAP_NET_ADMIN CAP_SYS_PTRACE',
    ''
  ].join('\n')
}

/** The static system user the split node runs as (systemd-sysusers creates it). */
export function sysusersConfig(): string {
  return '# rebuild-quorum: the node (rbq.service) runs as rbq; group rbq may use the build helper socket.\nu rbq - "rebuild-quorum node" /var/lib/rbq\n'
}

/** Config the split node needs: where the build helper is. Written only when no config exists. */
export function helperNodeConfig(): string {
  return `# rebuild-quorum configuration (rbq node start and rbq build-helper read it). Every option: rbq node start --help, README.
data_dir = "${SYSTEMD_STATE_DIR}"

[rebuild]
# The node builds through the privileged build helper (rbq-build-helper.service).
build_helper = "${DEFAULT_BUILD_SOCKET}"
`
}

export interface InstalledFile {
  path: string
  written: boolean
}

async function writeIfChanged(path: string, text: string, mode: number, force: boolean, keepExisting = false): Promise<InstalledFile> {
  let existing: string | undefined
  try {
    existing = await fs.readFile(path, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new RbqError('FILE_UNREADABLE', `${path}: ${(e as Error).message}`, { cause: e })
  }
  if (existing === text || (existing !== undefined && keepExisting)) return { path, written: false }
  if (existing !== undefined && !force) throw new RbqError('FILE_EXISTS', `${path} exists with other contents; refusing to overwrite it (use --force)`)
  try {
    await fs.mkdir(dirname(path), { recursive: true })
    const tmp = `${path}.rbq-tmp-${process.pid}`
    await fs.writeFile(tmp, text, { mode })
    await fs.chmod(tmp, mode)
    await fs.rename(tmp, path)
  } catch (e) {
    throw new RbqError('FILE_UNREADABLE', `cannot write ${path}: ${(e as Error).message}`, { cause: e })
  }
  return { path, written: true }
}

/**
 * Writes the node unit at `path` (0644) and, for Debian rebuilds, the helper's socket and
 * service units beside it, the sysusers.d entry and (when none exists) /etc/rbq/config.toml
 * naming the helper socket. Refuses to overwrite a different existing unit unless `force`; an
 * identical one is left as is; an existing config is never touched. Returns what to run next.
 */
export async function installSystemdUnit(
  path: string,
  opts: SystemdUnitOptions & { force?: boolean; sysusersPath?: string; configPath?: string }
): Promise<{ path: string; written: boolean; files: InstalledFile[]; next: string[] }> {
  const force = opts.force === true
  const files = [await writeIfChanged(path, systemdUnit(opts), 0o644, force)]
  const next = ['systemctl daemon-reload', 'systemctl enable --now rbq', 'systemctl status rbq']
  if (opts.debianRebuilds === true) {
    const dir = dirname(path)
    files.push(await writeIfChanged(join(dir, HELPER_SOCKET_UNIT), buildHelperSocketUnit(), 0o644, force))
    files.push(await writeIfChanged(join(dir, HELPER_SERVICE_UNIT), buildHelperServiceUnit(opts), 0o644, force))
    files.push(await writeIfChanged(opts.sysusersPath ?? SYSUSERS_PATH, sysusersConfig(), 0o644, force))
    files.push(await writeIfChanged(opts.configPath ?? SYSTEMD_CONFIG_FILE, helperNodeConfig(), 0o644, false, true))
    next.splice(0, 2, 'systemd-sysusers', 'systemctl daemon-reload', `systemctl enable --now ${HELPER_SOCKET_UNIT} rbq`)
  }
  return { path, written: files[0]?.written === true, files, next }
}
