/**
 * `rbq build-helper`: the privileged build helper (node/build-helper/helper-server.ts) that an
 * unprivileged node asks to build, over a local Unix socket. Runs until SIGINT/SIGTERM.
 * Its build options come from the same config file as the node's ([rebuild] section).
 */
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { DEFAULT_BUILD_SOCKET } from '../../node/build-helper/helper-protocol.js'

export const DEFAULT_BUILD_CACHE = '/var/cache/rbq'

export function registerBuildHelper(program: Command): void {
  program
    .command('build-helper')
    .description('run the privileged build helper: builds what the node asks over a local Unix socket (see rbq init --systemd --debian-rebuilds)')
    .option('--socket <path>', 'Unix socket to listen on (ignored when systemd passes one)', DEFAULT_BUILD_SOCKET)
    .option('--group <name>', 'group allowed to connect (socket mode 0660)')
    .option('--cache <dir>', `build cache: Debian indexes, build roots, recipe work (default $CACHE_DIRECTORY, else ${DEFAULT_BUILD_CACHE})`)
    .option('--config <file>', 'config file whose [rebuild] section sets the build options (default: as for rbq node start)')
    .action(async (opts: { socket: string; group?: string; cache?: string; config?: string }) => {
      const [{ loadConfig }, { createLogger }, { BuildHelper, systemdListenFd }] = await Promise.all([
        import('../../node/node-config.js'),
        import('../../common/logger.js'),
        import('../../node/build-helper/helper-server.js')
      ])
      const config = await loadConfig(opts.config === undefined ? {} : { file: opts.config })
      const logger = createLogger({ level: config.log.level, format: config.log.format }).child({ component: 'build-helper' })
      const cacheDir = resolve(opts.cache ?? process.env.CACHE_DIRECTORY?.split(':')[0] ?? DEFAULT_BUILD_CACHE)
      const listenFd = systemdListenFd()
      const helper = await BuildHelper.start({
        socket: resolve(opts.socket),
        ...(listenFd === undefined ? {} : { listenFd }),
        ...(opts.group === undefined ? {} : { group: opts.group }),
        cacheDir,
        rebuild: config.rebuild,
        logger
      })
      logger.info({ socket: helper.address, cacheDir, config: config.configFile ?? 'built-in defaults' }, `build helper listening on ${helper.address}`)
      const signal = await new Promise<NodeJS.Signals>((done) => {
        process.once('SIGINT', done)
        process.once('SIGTERM', done)
      })
      logger.info({ signal }, 'build helper stopping')
      await helper.stop()
    })
}
