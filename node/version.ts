import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
/** package.json sits two levels up from both node/ (sources) and dist/node/ (build). */
function readVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = require(rel) as { name?: string; version?: string }
      if (pkg.name === 'rebuild-quorum' && pkg.version) return pkg.version
    } catch {
      // try the next location
    }
  }
  return '0.0.0'
}

export const VERSION = readVersion()
/** `builder.software` in attestations. */
export const SOFTWARE = `rebuild-quorum/${VERSION}`
