/**
 * `rbq init [--data DIR] [--systemd]`: prepares a data dir — signing key, libp2p peer key, API
 * token (all 0600, never overwritten) and a starter trust policy that explains itself — and,
 * with --systemd, a hardened unit for `rbq node start` (node/systemd-units.ts). Idempotent: what
 * exists is kept and reported.
 */
import { promises as fs } from 'node:fs'
import { realpathSync } from 'node:fs'
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { RbqError, type PublicKey } from '../../protocol/index.js'
import { printJson } from '../exit.js'
import { dataDirHelp } from '../options.js'

/**
 * The policy `rbq init` writes. It lists no root yet — the node says so until one is added —
 * and shows this node's own key as a commented-out root: a user who rebuilds packages
 * locally (`rbq rebuild PURL --publish`) can count as one of their own parties.
 */
export function starterPolicy(own: PublicKey): string {
  return `# rebuild-quorum trust policy: whom you trust, and how many must agree.
# A file is "reproduced" when \`threshold\` independent parties you trust rebuilt exactly its sha256.
# The node re-reads this file when it changes. Edit it by hand or with:
#   rbq trust add NAME ed25519:… [--scope 'pkg:deb/debian/*']    rbq trust remove NAME    rbq trust list

# k: parties (or keys, see \`count\`) that must have rebuilt exactly this digest
threshold = 2
# "party": each [[root]] counts once, with every key it delegates to (an institution's
# build servers are one party); "key": every trusted key counts
count = "party"
# trusted parties allowed to report another digest before the verdict is "conflict"
max_dissent = 0
# longest delegation chain followed below a root (0 = only the roots themselves)
max_depth = 3

# Each party you trust is a [[root]]: a name, its public key, and the packages it is trusted for.
# [[root]]
# name = "example-rebuilder"
# key = "ed25519:…"
# scope = ["pkg:deb/debian/*"]

# This node's own signing key. Uncomment it (or run \`rbq trust add me self\`) to count your own
# rebuilds (\`rbq rebuild PURL --publish\`) as one party: users reproducing builds is gold.
# [[root]]
# name = "me"
# key = "${own.text}"
# scope = ["*"]
`
}

interface InitOptions {
  data?: string
  systemd?: boolean
  unit?: string
  debianRebuilds?: boolean
  protectHome?: string
  force?: boolean
  json?: boolean
}

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('prepare a node data dir: signing key, peer key, API token and a starter trust policy (keeps what exists)')
    .option('--data <dir>', dataDirHelp('data directory'))
    .option('--systemd', 'also write a hardened systemd unit that runs `rbq node start`')
    .option('--unit <file>', 'where to write the systemd unit (default /etc/systemd/system/rbq.service)')
    .option('--debian-rebuilds', 'with --systemd: Debian rebuilds through a privileged build helper (rbq-build-helper.socket/.service, root) while the node stays unprivileged')
    .option('--protect-home <mode>', 'with --systemd: "yes" (default; refuses an rbq under /home, /root or /run/user) or "read-only"')
    .option('--force', 'with --systemd: replace an existing, different unit')
    .option('--json', 'print the result as JSON')
    .action(async (opts: InitOptions) => {
      const [{ defaultDataDir, dataDirLayout }, { loadOrCreateKey }, { loadOrCreatePeerKey }, { peerIdFromPrivateKey }, { loadOrCreateApiToken }, { policyPath }] = await Promise.all([
        import('../../common/data-dir.js'),
        import('../../identity/signing-key.js'),
        import('../../identity/peer-key.js'),
        import('@libp2p/peer-id'),
        import('../../identity/api-token.js'),
        import('../../node/trust/policy-file.js')
      ])
      const dataDir = resolve(opts.data ?? defaultDataDir())
      const layout = dataDirLayout(dataDir)
      await fs.mkdir(dataDir, { recursive: true, mode: 0o700 })
      const signing = await loadOrCreateKey(layout.signingKey)
      const peer = await loadOrCreatePeerKey(layout.peerKey)
      const token = await loadOrCreateApiToken(layout.apiToken)
      const policyFile = policyPath(dataDir)
      let policyCreated = true
      try {
        await fs.writeFile(policyFile, starterPolicy(signing.key.publicKey), { flag: 'wx', mode: 0o644 })
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
        policyCreated = false
      }
      let systemd: { path: string; written: boolean; next: string[] } | undefined
      let systemdNote: string | undefined
      let systemdFiles: { path: string; written: boolean }[] = []
      if (opts.systemd === true) {
        const { installSystemdUnit, DEFAULT_UNIT_PATH, SYSTEMD_STATE_DIR } = await import('../../node/systemd-units.js')
        const script = realpathSync(process.argv[1] ?? 'rbq')
        // The unit's node always uses systemd's state directory (node/systemd-units.ts).
        const protectHome = opts.protectHome ?? 'yes'
        if (protectHome !== 'yes' && protectHome !== 'read-only') throw new RbqError('USAGE', `--protect-home ${protectHome}: expected "yes" or "read-only"`)
        const unit = await installSystemdUnit(opts.unit ?? DEFAULT_UNIT_PATH, { rbq: [process.execPath, script], debianRebuilds: opts.debianRebuilds === true, force: opts.force === true, protectHome })
        systemd = { path: unit.path, written: unit.written, next: unit.next }
        systemdFiles = unit.files.slice(1)
        if (dataDir !== SYSTEMD_STATE_DIR) systemdNote = `the service keeps its data in ${SYSTEMD_STATE_DIR}, not ${dataDir}: run \`rbq init\` as root (or with --data ${SYSTEMD_STATE_DIR}) to prepare it`
      }
      const dataFlag = opts.data === undefined ? '' : ` --data ${dataDir}`
      const result = {
        dataDir,
        keyid: signing.key.publicKey.keyid,
        publicKey: signing.key.publicKey.text,
        peerId: peerIdFromPrivateKey(peer.key).toString(),
        created: {
          signingKey: signing.created,
          peerKey: peer.created,
          apiToken: token.created,
          policy: policyCreated,
          ...(systemd === undefined ? {} : { systemdUnit: systemd.written })
        },
        files: { signingKey: layout.signingKey, peerKey: layout.peerKey, apiToken: layout.apiToken, policy: policyFile, ...(systemd === undefined ? {} : { systemdUnit: systemd.path }) },
        ...(systemdFiles.length === 0 ? {} : { systemdFiles })
      }
      if (opts.json) return printJson(systemdNote === undefined ? result : { ...result, note: systemdNote })
      const state = (created: boolean) => (created ? 'created' : 'kept   ')
      let out = `rbq data dir ${dataDir}\n`
      out += `  ${state(signing.created)} ${layout.signingKey}  (key id ${result.keyid})\n`
      out += `  ${state(peer.created)} ${layout.peerKey}  (peer id ${result.peerId})\n`
      out += `  ${state(token.created)} ${layout.apiToken}\n`
      out += `  ${state(policyCreated)} ${policyFile}\n`
      if (systemd !== undefined) for (const f of [systemd, ...systemdFiles]) out += `  ${f.written ? 'wrote  ' : 'kept   '} ${f.path}\n`
      out += `\nyour public key: ${result.publicKey}\n\nnext:\n`
      out += `  rbq trust add NAME ed25519:… --scope 'pkg:deb/debian/*'${dataFlag}   # the parties you trust (threshold 2)\n`
      if (systemd !== undefined) for (const cmd of systemd.next) out += `  ${cmd}\n`
      else out += `  rbq node start${dataFlag}\n`
      out += `  rbq verify FILE.deb${dataFlag}\n`
      process.stdout.write(out)
      if (systemdNote !== undefined) process.stderr.write(`rbq: note: ${systemdNote}\n`)
    })
}
