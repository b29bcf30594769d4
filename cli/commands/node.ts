/**
 * `rbq node start [--config FILE] [--data DIR]`: runs the node until SIGINT or SIGTERM, then
 * stops it cleanly (reverse start order, store flushed). Prints nothing on stdout; structured
 * logs go to stderr. A second signal during shutdown ends the process at once (default action).
 */
import type { Command } from 'commander'
import { loadConfig } from '../../node/node-config.js'
import { createLogger } from '../../common/logger.js'
import type { RbqNode } from '../../node/node.js'
import { dataDirHelp } from '../options.js'
import { VERSION } from '../../common/version.js'

const SIGNALS = ['SIGINT', 'SIGTERM'] as const

/** Resolves on the first SIGINT/SIGTERM; later signals get the default action again. */
function nextSignal(): { received: Promise<NodeJS.Signals>; cancel: () => void } {
  let cancel = (): void => {}
  const received = new Promise<NodeJS.Signals>((resolve) => {
    const handler = (signal: NodeJS.Signals): void => {
      cancel()
      resolve(signal)
    }
    cancel = () => {
      for (const s of SIGNALS) process.off(s, handler)
    }
    for (const s of SIGNALS) process.on(s, handler)
  })
  return { received, cancel }
}

export function registerNode(program: Command): void {
  const node = program.command('node').description('run a rebuild-quorum node')

  node
    .command('start')
    .description('start the node in the foreground until SIGINT/SIGTERM (logs on stderr: readable on a terminal, else JSON lines)')
    .option('--config <file>', 'TOML config file (default: $RBQ_CONFIG, else /etc/rbq/config.toml as root or ~/.config/rbq/config.toml, else <data dir>/config.toml, when present)')
    .option('--data <dir>', dataDirHelp('data directory (overrides data_dir in --config)'))
    .action(async (opts: { config?: string; data?: string }) => {
      const config = await loadConfig({ ...(opts.config === undefined ? {} : { file: opts.config }), ...(opts.data === undefined ? {} : { dataDir: opts.data }) })
      // Say what is starting before the slow steps (loading libp2p, first-start key creation),
      // so the first line appears at once; 'node started' follows with the addresses.
      const logger = createLogger({ level: config.log.level, format: config.log.format })
      logger.info(
        { version: VERSION, dataDir: config.dataDir, config: config.configFile ?? 'built-in defaults', listen: config.p2p.listen },
        `starting rbq ${VERSION} with data dir ${config.dataDir}`
      )
      for (const ignored of config.ignoredConfigFiles ?? []) {
        logger.warn({ ignored, config: config.configFile }, `${ignored} is not read: ${config.configFile} takes precedence (merge it there, or pass --config ${ignored})`)
      }
      // Listen before starting, so a signal during a slow start still shuts down cleanly.
      const signal = nextSignal()
      let running: RbqNode
      try {
        // Imported here: libp2p takes ~1 s to load, and every other verb should start fast.
        const { RbqNode } = await import('../../node/node.js')
        running = await RbqNode.start({ config, logger })
      } catch (e) {
        signal.cancel()
        throw e
      }
      running.logger.info({ signal: await signal.received }, 'shutting down')
      await running.stop()
    })
}
