/**
 * One builder function type for the rebuild pipeline: a job's target in, a RebuildResult out.
 * Two implementations share it: `localBuilder` builds in this process (root dev machines,
 * tests, the build helper itself) and `helperBuilder` (client.ts) asks the privileged build
 * helper over its Unix socket. The pipeline does not know which one it has.
 */
import { join } from 'node:path'
import type { RebuildConfig } from '../rebuild/rebuild-config.js'
import { defaultParallel, rebuildDebian } from '../rebuild/debian/debian-builder.js'
import { rebuildRecipe } from '../rebuild/recipe/recipe-builder.js'
import { loadRecipe } from '../rebuild/recipe/recipe.js'
import type { JobTarget } from '../rebuild/scheduler.js'
import type { OnProgress, RebuildResult } from '../rebuild/rebuild-types.js'

export interface BuildRun {
  /** Kept after the build: `build.log` (and artifacts for the local builder). */
  outDir: string
  signal: AbortSignal
  onProgress: OnProgress
  /** Whole job; the Debian builder kills the build at the deadline. */
  timeoutMs: number
}

export type TargetBuilder = (target: JobTarget, run: BuildRun) => Promise<RebuildResult>

export interface LocalBuilderInit {
  /** Recipe work dirs and source cache live under `<cacheDir>/rebuild`. */
  cacheDir: string
  /** Debian indexes, pool files, build roots. */
  debianCacheDir: string
  rebuild: Pick<RebuildConfig, 'concurrency' | 'requireNetworkIsolation' | 'debian'>
}

export function localBuilder(init: LocalBuilderInit): TargetBuilder {
  const { rebuild } = init
  return async (t, run) => {
    if (t.backend === 'recipe') {
      const recipe = await loadRecipe(t.recipe)
      return rebuildRecipe(recipe, {
        outDir: run.outDir,
        workRoot: join(init.cacheDir, 'rebuild', 'work'),
        sourceCacheDir: join(init.cacheDir, 'rebuild', 'sources'),
        requireNetworkIsolation: rebuild.requireNetworkIsolation,
        signal: run.signal,
        onProgress: run.onProgress
      })
    }
    return rebuildDebian(
      { source: t.source, version: t.version },
      {
        cacheDir: init.debianCacheDir,
        outDir: run.outDir,
        parallel: defaultParallel(rebuild.concurrency),
        signal: run.signal,
        timeoutMs: run.timeoutMs,
        onProgress: run.onProgress,
        faithful: { buildinfoSources: rebuild.debian.buildinfoSources, repositories: rebuild.debian.exactRepositories },
        ...(rebuild.debian.mirror === undefined ? {} : { mirror: rebuild.debian.mirror }),
        ...(rebuild.debian.suite === undefined ? {} : { suite: rebuild.debian.suite })
      }
    )
  }
}
