/**
 * The run-wide Debian cache (see global-setup.ts): opens the archive and makes sure the build
 * root exists, with a cross-process lock so two test files never run mmdebstrap at once.
 */
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { openArchive, type DebianArchive } from '../../node/rebuild/debian/archive.js'
import { ensureBuildRoot } from '../../node/rebuild/debian/build-root.js'

export interface DebianTestCache {
  cacheDir: string
  archive: DebianArchive
}

export async function sharedDebianCache(): Promise<DebianTestCache> {
  const cacheDir = process.env.RBQ_DEBIAN_TEST_CACHE
  if (cacheDir === undefined) throw new Error('RBQ_DEBIAN_TEST_CACHE is not set (vitest globalSetup sets it)')
  await mkdir(cacheDir, { recursive: true })
  const lock = join(cacheDir, '.prepare.lock')
  // mkdir is atomic: whoever creates the lock prepares; the others wait for it to go away.
  for (;;) {
    try {
      await mkdir(lock)
      break
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
      await sleep(500)
    }
  }
  try {
    const archive = await openArchive({ cacheDir })
    await ensureBuildRoot({ cacheDir, location: archive.location, arch: archive.arch })
    return { cacheDir, archive }
  } finally {
    await rm(lock, { recursive: true, force: true })
  }
}
