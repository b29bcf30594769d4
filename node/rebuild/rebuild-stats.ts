/**
 * Statistics of the network (`rbq stats`, GET /v1/stats): for a distribution (and a suite), from
 * the attestations this node holds — how many source packages were rebuilt, by how many
 * parties, how many reproduced, were not reproducible (by cause tag), failed. Counts and cause
 * tags only: no severity score.
 *
 * Unit: a Debian *source package name*. Of its versions with stored attestations (in the suite
 * when one is given), the newest is the one counted; older versions are superseded uploads.
 * Per (package, signer key) only the key's latest statement (highest seq) counts, as in verdicts.
 * A package is
 *   reproduced      some key reproduced it, none got other bytes
 *   unreproducible  some key got other bytes (outcome mismatch), none reproduced it
 *   disputed        keys disagree: some reproduced it, some got other bytes
 *   failed          every key's build failed
 *   built           built, nothing to compare with (no upstream; every other key failed)
 * Cost: one scan of the (package, signer) index over `pkg:deb/<distribution>/`, and the frames
 * of the counted version only (read in one getMany per package).
 */
import type { BuilderSet } from '../consensus/delegation-graph.js'
import type { Store } from '../db/store.js'
import { openStoredFrame, parsePurl, RbqError, type BuildEnvironment, type Outcome } from '../../protocol/index.js'
import type { NetworkStats } from '../../protocol/api.js'
import { compareVersions } from '../../debian/debian-version.js'

export const PACKAGE_STATES = ['reproduced', 'unreproducible', 'disputed', 'failed', 'built'] as const
export type PackageState = (typeof PACKAGE_STATES)[number]

/** Which versions a suite holds (node: the suite's signed Sources indexes, debian/archive.ts). */
export interface SuiteVersions {
  /** e.g. "http://deb.debian.org/debian bookworm, bookworm-updates, bookworm-security main/amd64" */
  describe: string
  has(name: string, version: string): Promise<boolean>
}

export interface NetworkStatsInit {
  distribution: string
  suite?: SuiteVersions & { name: string }
  /** The node policy's builder sets: parties are counted under it when given. */
  buildersFor?: (purl: string) => BuilderSet
  /** Why the node policy is not usable (stats then carry `policy: null`). */
  policyError?: string
}

interface Claim {
  seq: number
  outcome: Outcome
  environment: BuildEnvironment
  tags: readonly string[]
}

const DISTRIBUTION = /^[a-z0-9][a-z0-9.+-]{0,63}$/

export async function networkStats(store: Pick<Store, 'packageSignerEntries' | 'getFrames'>, init: NetworkStatsInit): Promise<NetworkStats> {
  if (!DISTRIBUTION.test(init.distribution)) {
    throw new RbqError('USAGE', `distribution "${init.distribution.slice(0, 80)}" is not a purl namespace like "debian"`)
  }
  const stats: NetworkStats = {
    distribution: init.distribution,
    suite: init.suite?.name ?? null,
    scope: init.suite?.describe ?? `every version of pkg:deb/${init.distribution}/*?arch=source this node holds (no suite given)`,
    packages: { rebuilt: 0, reproduced: 0, unreproducible: 0, disputed: 0, failed: 0, built: 0 },
    versionsSkipped: 0,
    parties: { keys: 0, byCount: [] },
    trustedParties: init.buildersFor === undefined ? null : { byCount: [] },
    ...(init.buildersFor === undefined && init.policyError !== undefined ? { policyError: init.policyError } : {}),
    claims: { reproduced: 0, mismatch: 0, failed: 0, built: 0 },
    unreproducible: { faithful: 0, current: 0, untagged: 0, causes: [] },
    attestations: 0
  }
  const keys = new Set<string>()
  const byCount = new Map<number, number>()
  const trustedByCount = new Map<number, number>()
  const causes = new Map<string, number>()

  // Versions of one package name, collected from the index before any frame is read.
  let current: string | undefined
  let versions = new Map<string, { purl: string; ids: string[] }>()

  const finish = async (): Promise<void> => {
    if (current === undefined) return
    const name = current
    const ordered = [...versions.entries()].sort((a, b) => compareVersions(b[0], a[0]))
    let chosen: { purl: string; ids: string[] } | undefined
    for (const [version, entry] of ordered) {
      if (init.suite === undefined || (await init.suite.has(name, version))) {
        chosen = entry
        break
      }
    }
    stats.versionsSkipped += ordered.length - (chosen === undefined ? 0 : 1)
    if (chosen === undefined) return
    const claims = new Map<string, Claim>()
    for (const bytes of await store.getFrames(chosen.ids)) {
      const frame = openStoredFrame(bytes)
      if (frame.kind !== 'attestation') continue
      stats.attestations++
      const p = frame.statement.predicate
      const known = claims.get(frame.signer.keyid)
      if (known !== undefined && known.seq >= p.builder.seq) continue
      claims.set(frame.signer.keyid, { seq: p.builder.seq, outcome: p.outcome, environment: p.environment ?? 'current', tags: p.diff?.tags ?? [] })
    }
    if (claims.size === 0) return
    const state = packageState([...claims.values()])
    stats.packages.rebuilt++
    stats.packages[state]++
    for (const [keyid, c] of claims) {
      keys.add(keyid)
      stats.claims[c.outcome]++
    }
    byCount.set(claims.size, (byCount.get(claims.size) ?? 0) + 1)
    if (init.buildersFor !== undefined) {
      const builders = init.buildersFor(chosen.purl).builders
      const parties = new Set<string>()
      for (const keyid of claims.keys()) {
        const b = builders.get(keyid)
        if (b !== undefined) parties.add(b.party)
      }
      trustedByCount.set(parties.size, (trustedByCount.get(parties.size) ?? 0) + 1)
    }
    if (state === 'unreproducible' || state === 'disputed') {
      const mismatches = [...claims.values()].filter((c) => c.outcome === 'mismatch')
      const tags = new Set(mismatches.flatMap((c) => c.tags))
      for (const t of tags) causes.set(t, (causes.get(t) ?? 0) + 1)
      if (tags.size === 0) stats.unreproducible.untagged++
      if (mismatches.some((c) => c.environment === 'faithful')) stats.unreproducible.faithful++
      if (mismatches.some((c) => c.environment === 'current')) stats.unreproducible.current++
    }
  }

  for await (const e of store.packageSignerEntries(`pkg:deb/${init.distribution}/`)) {
    const source = sourceOf(e.package, init.distribution)
    if (source === undefined) continue
    if (source.name !== current) {
      await finish()
      current = source.name
      versions = new Map()
    }
    const entry = versions.get(source.version) ?? { purl: e.package, ids: [] }
    entry.ids.push(e.id)
    versions.set(source.version, entry)
  }
  await finish()

  stats.parties.keys = keys.size
  stats.parties.byCount = histogram(byCount)
  if (stats.trustedParties !== null) stats.trustedParties.byCount = histogram(trustedByCount)
  stats.unreproducible.causes = [...causes.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([tag, packages]) => ({ tag, packages }))
  return stats
}

/** The state of a package from its keys' latest claims (see the module comment). */
export function packageState(claims: readonly Pick<Claim, 'outcome'>[]): PackageState {
  const has = (o: Outcome) => claims.some((c) => c.outcome === o)
  if (has('reproduced')) return has('mismatch') ? 'disputed' : 'reproduced'
  if (has('mismatch')) return 'unreproducible'
  return has('built') ? 'built' : 'failed'
}

/** A source purl `pkg:deb/<distribution>/NAME@VERSION?arch=source` (nothing else counts). */
function sourceOf(purl: string, distribution: string): { name: string; version: string } | undefined {
  let p
  try {
    p = parsePurl(purl)
  } catch {
    return undefined // stored purls are canonical; never fail the whole answer on one
  }
  if (p.type !== 'deb' || p.namespace !== distribution || p.version === undefined || p.qualifiers.arch !== 'source') return undefined
  return { name: p.name, version: p.version }
}

function histogram(counts: Map<number, number>): { parties: number; packages: number }[] {
  return [...counts.entries()].sort((a, b) => a[0] - b[0]).map(([parties, packages]) => ({ parties, packages }))
}

/**
 * A suite's versions from its signed Sources indexes (the suite and the `-updates`/`-security`
 * companions the host's apt sources list for it), through the Debian builder's archive reader
 * and its cache: a version is in the suite when one of those indexes lists it.
 */
export function archiveSuites(opts: { cacheDir: string; mirror?: string }): (suite: string, signal?: AbortSignal) => Promise<SuiteVersions & { name: string }> {
  return async (suite, signal) => {
    const { openArchive } = await import('./debian/archive.js')
    const archive = await openArchive({ cacheDir: opts.cacheDir, suite, ...(opts.mirror === undefined ? {} : { mirror: opts.mirror }), ...(signal === undefined ? {} : { signal }) })
    return {
      name: suite,
      describe: `source packages listed by ${archive.describe()}`,
      has: async (name, version) => {
        try {
          await archive.sourcePackage(name, version, signal)
          return true
        } catch (e) {
          if (e instanceof RbqError && e.code === 'FEED_ERROR' && e.message.startsWith(`source package ${name} `)) return false
          throw e
        }
      }
    }
  }
}
