/**
 * The rebuilderd bridge: records what a rebuilderd instance reports as rebuild attestations
 * signed by a local *bridge key* (`<data>/bridge.key`, separate from the node's signing key), so
 * a curator can decide to trust that bridge as one party — or not — like any other builder.
 *
 * What is recorded, and why:
 *   - GOOD rows become `reproduced` statements: rebuilderd rebuilt the package and got exactly
 *     the archive's file. Subject = upstream = that file's name and digest.
 *   - BAD, FAIL and UNKWN rows are counted and skipped. A BAD row says "the rebuild differed",
 *     but rebuilderd's list does not say what it built, and a `mismatch` statement must name the
 *     rebuilt digest: we will not invent one. FAIL/UNKWN say nothing about any file.
 *   - rebuilderd's lists carry no digests. A row's digest is its own `sha256` when an exporter
 *     added one, else the SHA256 of that exact package/version/arch in the Packages indexes apt
 *     verified on this machine (/var/lib/apt/lists) — the file rebuilderd compared with, as the
 *     archive publishes it. Rows found in neither are skipped (`no-digest`): run `apt-get update`
 *     for the suite rebuilderd covers, or import on a machine that tracks it.
 *   - The package purl is the source package's: from the index's `Source:` field, else the pool
 *     directory of the row's URL (dak names it after the source), else the binary name; the
 *     version is the binary's without a binNMU suffix unless the index says otherwise.
 *   - Rows of one source package are grouped into statements of at most 32 subjects.
 *
 * Seqs for the bridge key are reserved as one block under a lock file, so two imports can never
 * share a seq (which would be an equivocation and get the bridge key dropped everywhere).
 */
import {
  buildRebuildStatement,
  canonicalJson,
  sha256Hex,
  signAttestation,
  type AttestationFrame,
  type SigningKey
} from '../../protocol/index.js'
import { debArtifactName, sourceOf, type BinaryControl } from '../apt/binary-package.js'
import { binaryKey, lookupIndexedBinaries, type IndexedBinary } from '../health/packages-index.js'
import { dataDirLayout } from '../paths.js'
import { debianSourcePurl } from '../rebuild/debian/builder.js'
import { SOFTWARE } from '../version.js'
import type { RebuilderdArtifact } from './rebuilderd.js'

export const BRIDGE_BACKEND = 'rebuilderd'
/** Subjects per statement: 32 subjects + their upstream copies stay well under the 16 KiB payload limit. */
export const MAX_SUBJECTS_PER_STATEMENT = 32

export function bridgeKeyPath(dataDir: string): string {
  return dataDirLayout(dataDir).bridgeKey
}

export const SKIP_REASONS = ['bad', 'failed', 'unknown', 'no-digest', 'other-distribution', 'conflicting-digest', 'duplicate'] as const
export type SkipReason = (typeof SKIP_REASONS)[number]

export interface ImportSubject {
  name: string
  sha256: string
}

/** One statement to sign. */
export interface ImportStatement {
  package: string
  subjects: ImportSubject[]
  builtAt: Date
  /** Identifies "the same build" (DESIGN §3): bridge, origin, package, rebuilderd build ids. */
  inputs: string
}

export interface ImportPlan {
  statements: ImportStatement[]
  artifacts: number
  skipped: Partial<Record<SkipReason, number>>
}

export interface PlanOptions {
  /** Where the list came from (URL or file name): part of the inputs digest. */
  origin: string
  /** Packages index lookup; default: this machine's /var/lib/apt/lists. */
  lookup?: (keys: Set<string>) => Promise<Map<string, IndexedBinary[]>>
  now?: Date
}

const POOL_DIR_RE = /\/pool\/[^/]+\/[^/]+\/([a-z0-9][a-z0-9+.-]*)\/[^/]+\.deb$/

function controlOf(a: RebuilderdArtifact, indexed: IndexedBinary | undefined): BinaryControl {
  const poolSource = a.url === undefined ? undefined : POOL_DIR_RE.exec(a.url)?.[1]
  return { package: a.name, version: a.version, architecture: a.architecture, source: indexed?.source ?? poolSource }
}

export async function planRebuilderdImport(artifacts: readonly RebuilderdArtifact[], options: PlanOptions): Promise<ImportPlan> {
  const skipped: Partial<Record<SkipReason, number>> = {}
  const skip = (r: SkipReason) => (skipped[r] = (skipped[r] ?? 0) + 1)
  const good: RebuilderdArtifact[] = []
  for (const a of artifacts) {
    if (a.distribution !== '' && a.distribution.toLowerCase() !== 'debian') skip('other-distribution')
    else if (a.status === 'GOOD') good.push(a)
    else skip(a.status === 'BAD' ? 'bad' : a.status === 'FAIL' ? 'failed' : 'unknown')
  }
  const keys = new Set(good.map((a) => binaryKey({ package: a.name, version: a.version, architecture: a.architecture })))
  const lookup = options.lookup ?? ((k: Set<string>) => lookupIndexedBinaries(k))
  const indexed = await lookup(keys)

  interface Group {
    subjects: Map<string, string>
    builtAt: Date | undefined
    buildIds: Set<number>
  }
  const groups = new Map<string, Group>()
  for (const a of good) {
    const entries = indexed.get(binaryKey({ package: a.name, version: a.version, architecture: a.architecture })) ?? []
    const fromIndex = entries.length === 1 ? entries[0] : undefined
    const sha256 = a.sha256 ?? fromIndex?.sha256
    if (sha256 === undefined) {
      skip(entries.length > 1 ? 'conflicting-digest' : 'no-digest')
      continue
    }
    const control = controlOf(a, fromIndex)
    const src = sourceOf(control)
    const purl = debianSourcePurl(src.name, src.version)
    const name = debArtifactName(control)
    let g = groups.get(purl)
    if (g === undefined) groups.set(purl, (g = { subjects: new Map(), builtAt: undefined, buildIds: new Set() }))
    const seen = g.subjects.get(name)
    if (seen !== undefined) {
      skip(seen === sha256 ? 'duplicate' : 'conflicting-digest')
      continue
    }
    g.subjects.set(name, sha256)
    if (a.builtAt !== undefined && (g.builtAt === undefined || a.builtAt > g.builtAt)) g.builtAt = a.builtAt
    if (a.buildId !== undefined) g.buildIds.add(a.buildId)
  }

  const now = options.now ?? new Date()
  const statements: ImportStatement[] = []
  let count = 0
  for (const [purl, g] of [...groups].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const subjects = [...g.subjects].map(([name, sha256]) => ({ name, sha256 })).sort((a, b) => (a.name < b.name ? -1 : 1))
    const inputs = sha256Hex(canonicalJson({ bridge: BRIDGE_BACKEND, origin: options.origin, package: purl, builds: [...g.buildIds].sort((a, b) => a - b) }))
    // A build date in the future (clock skew at the source) would be refused by nobody but is a lie: clamp.
    const builtAt = g.builtAt === undefined || g.builtAt > now ? now : g.builtAt
    for (let i = 0; i < subjects.length; i += MAX_SUBJECTS_PER_STATEMENT) {
      const chunk = subjects.slice(i, i + MAX_SUBJECTS_PER_STATEMENT)
      statements.push({ package: purl, subjects: chunk, builtAt, inputs })
      count += chunk.length
    }
  }
  return { statements, artifacts: count, skipped }
}

/** Signs statement i with seq firstSeq + i. */
export function signImport(plan: ImportPlan, key: SigningKey, firstSeq: number): AttestationFrame[] {
  return plan.statements.map((s, i) =>
    signAttestation(
      key,
      buildRebuildStatement({
        package: s.package,
        subject: s.subjects,
        outcome: 'reproduced',
        upstream: s.subjects,
        inputs: { sha256: s.inputs, materials: [] },
        builder: { id: key.publicKey.keyid, seq: firstSeq + i, backend: BRIDGE_BACKEND, software: SOFTWARE },
        startedOn: s.builtAt,
        finishedOn: s.builtAt
      })
    )
  )
}

