/**
 * A hardened systemd unit for `rbq node start` (`rbq init --systemd` writes it).
 *
 * Default: the node runs as a dedicated user `rbq` (DynamicUser: systemd allocates it and owns
 * /var/lib/rbq for it; no useradd needed), with no capabilities, no new privileges, a read-only
 * view of the system (ProtectSystem=strict) where only its state directory is writable, no
 * access to home directories, a private /tmp and /dev, and only IPv4/IPv6/Unix sockets.
 *
 * Trade-off for Debian rebuilds (`debianRebuilds: true`): the Debian builder unpacks build roots
 * (device nodes, file owners), mounts /proc and devpts in new mount/PID/network namespaces and
 * chroots into them — that needs root and CAP_SYS_ADMIN, so that unit runs as root and allows
 * namespaces, mounts and device nodes. It keeps everything that does not break builds:
 * NoNewPrivileges, ProtectSystem=strict (writes only under /var/lib/rbq and the private /tmp),
 * ProtectHome, kernel modules/logs protection, SUID/SGID creation refused. Builds
 * themselves run as an unprivileged user without network inside the build root. A volunteer
 * who wants the strict unit can rebuild with recipes only, or run Debian rebuilds in a
 * separate VM.
 */
import { promises as fs } from 'node:fs'
import { dirname } from 'node:path'
import { RbqError } from '../protocol/index.js'

export const DEFAULT_UNIT_PATH = '/etc/systemd/system/rbq.service'
export const SYSTEMD_STATE_DIR = '/var/lib/rbq'

export interface SystemdUnitOptions {
  /** argv that starts rbq: absolute node binary + dist/cli/main.js, or the rbq bin path. */
  rbq: readonly string[]
  /** Extra arguments for `rbq node start` (e.g. `--config /etc/rbq/config.toml`). */
  startArgs?: readonly string[]
  /** Run as root with what the Debian builder needs (see the module comment). */
  debianRebuilds?: boolean
}

/** systemd's own quoting for ExecStart= words ("…" with \\ and \" escaped). */
export function systemdQuote(arg: string): string {
  if (/[\u0000-\u001f\u007f]/.test(arg)) throw new RbqError('USAGE', `cannot put ${JSON.stringify(arg)} in a systemd unit (control characters)`)
  if (/^[A-Za-z0-9_/.:=@+,-]+$/.test(arg)) return arg
  return `"${arg.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%').replace(/\$/g, '$$$$')}"`
}

export function systemdUnit(opts: SystemdUnitOptions): string {
  if (opts.rbq.length === 0 || !(opts.rbq[0] as string).startsWith('/')) {
    throw new RbqError('USAGE', 'the unit needs an absolute path to the rbq (or node) executable')
  }
  const exec = [...opts.rbq, 'node', 'start', '--data', SYSTEMD_STATE_DIR, ...(opts.startArgs ?? [])].map(systemdQuote).join(' ')
  const debian = opts.debianRebuilds === true
  const lines = [
    '# rebuild-quorum node. Written by `rbq init --systemd`.',
    '# Enable: systemctl daemon-reload && systemctl enable --now rbq',
    debian
      ? '# Mode: Debian rebuilds. Runs as root: build roots need chroot, mounts and namespaces (see node/systemd.ts).'
      : '# Mode: no Debian rebuilds (root would be needed). Runs as the dynamic user rbq with no capabilities.',
    '[Unit]',
    'Description=rebuild-quorum node: reproducible-build attestations and verdicts',
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${exec}`,
    `Environment=RBQ_DATA_DIR=${SYSTEMD_STATE_DIR}`,
    'Restart=on-failure',
    'RestartSec=5s',
    'TimeoutStopSec=60s',
    'StateDirectory=rbq',
    'StateDirectoryMode=0700',
    'UMask=0077',
    'LimitNOFILE=65536',
    '# Sandbox (both modes)',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectHostname=yes',
    'RestrictSUIDSGID=yes',
    'RestrictRealtime=yes',
    'LockPersonality=yes',
    'SystemCallArchitectures=native',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
    '# MemoryDenyWriteExecute is left off: V8 JIT-compiles JavaScript into executable memory.'
  ]
  if (debian) {
    lines.push(
      '# Debian rebuilds: root, namespaces, mounts and device nodes are needed (see the header).',
      'User=root',
      'RestrictNamespaces=no'
    )
  } else {
    lines.push(
      'DynamicUser=yes',
      'User=rbq',
      'Group=rbq',
      'CapabilityBoundingSet=',
      'AmbientCapabilities=',
      'PrivateDevices=yes',
      '# ProtectClock installs a device allow-list; the Debian mode leaves it off so build roots keep their /dev nodes.',
      'ProtectClock=yes',
      'PrivateUsers=yes',
      'ProtectKernelTunables=yes',
      'ProtectControlGroups=yes',
      'ProtectProc=invisible',
      'RestrictNamespaces=yes',
      'SystemCallFilter=@system-service',
      'SystemCallFilter=~@privileged @resources',
      'SystemCallErrorNumber=EPERM'
    )
  }
  lines.push('', '[Install]', 'WantedBy=multi-user.target', '')
  return lines.join('\n')
}

/**
 * Writes the unit (mode 0644). Refuses to overwrite a different existing unit unless `force`;
 * an identical one is left as is. Returns what to run next.
 */
export async function installSystemdUnit(
  path: string,
  opts: SystemdUnitOptions & { force?: boolean }
): Promise<{ path: string; written: boolean; next: string[] }> {
  const text = systemdUnit(opts)
  let existing: string | undefined
  try {
    existing = await fs.readFile(path, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new RbqError('FILE_UNREADABLE', `${path}: ${(e as Error).message}`, { cause: e })
  }
  const next = ['systemctl daemon-reload', 'systemctl enable --now rbq', 'systemctl status rbq']
  if (existing === text) return { path, written: false, next }
  if (existing !== undefined && opts.force !== true) {
    throw new RbqError('FILE_EXISTS', `${path} exists with other contents; refusing to overwrite it (use --force)`)
  }
  try {
    await fs.mkdir(dirname(path), { recursive: true })
    const tmp = `${path}.rbq-tmp-${process.pid}`
    await fs.writeFile(tmp, text, { mode: 0o644 })
    await fs.chmod(tmp, 0o644)
    await fs.rename(tmp, path)
  } catch (e) {
    throw new RbqError('FILE_UNREADABLE', `cannot write ${path}: ${(e as Error).message}`, { cause: e })
  }
  return { path, written: true, next }
}
