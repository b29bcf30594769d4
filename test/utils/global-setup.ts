/**
 * Runs once per `vitest run`: names ONE Debian cache dir for the whole run (signed indexes, pool
 * files and the ~0.5 GB mmdebstrap build root) and removes it at the end. Test files that
 * rebuild Debian packages fill it through test/utils/debian-cache.ts, so the build root is made
 * once per run, not once per file. A developer may set RBQ_DEBIAN_TEST_CACHE to keep a cache
 * between runs; it is then left alone.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  if (process.env.RBQ_DEBIAN_TEST_CACHE !== undefined) return undefined
  const cacheDir = await mkdtemp(join(tmpdir(), 'rbq-test-debian-cache-'))
  process.env.RBQ_DEBIAN_TEST_CACHE = cacheDir // inherited by the test worker processes
  return () => rm(cacheDir, { recursive: true, force: true })
}
