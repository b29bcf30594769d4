import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The version in the nearest package.json above this module: the package's own, whether this
 * runs from node/ (sources) or dist/node/ (build), installed globally or not. Never climbs past
 * the first package.json found, so it never reads outside the package.
 */
function readVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const file = join(dir, 'package.json')
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string }
      return pkg.name === 'rebuild-quorum' && pkg.version ? pkg.version : '0.0.0'
    }
    const up = dirname(dir)
    if (up === dir) return '0.0.0'
    dir = up
  }
}

export const VERSION = readVersion()
/** `builder.software` in attestations. */
export const SOFTWARE = `rebuild-quorum/${VERSION}`
