/**
 * The rebuilderd bridge: records what a rebuilderd instance reports as rebuild attestations
 * signed by a local *bridge key* (`<data>/bridge.key`, separate from the node's signing key), so
 * a curator can decide to trust that bridge as one party — or not — like any other builder.
 * The whole story, with the decisions: client/bridge/README.md.
 *
 * - GOOD rows of Debian become `reproduced` statements (subject = upstream = the file's name and
 *   digest). BAD/FAIL/UNKWN rows, other distributions and rows that do not validate are counted
 *   and skipped: a `mismatch` must name the archive's digest, which rebuilderd does not publish.
 * - Evidence: where the instance publishes a signed in-toto link for the row, it is verified with
 *   the keys the user pinned; its product digest is the subject's digest, and the statement
 *   carries the link as a material (uri + sha256 of its bytes) and the tag `source-verified`.
 *   Rows without a verified link are imported only with `allowUnsigned`, tagged
 *   `unauthenticated-source`; their digest is the row's own `sha256` or the (unverified) link's.
 *   The importer's apt lists are never consulted: a stable machine imports a sid rebuilder fine.
 * - Idempotence: records already imported (state.ts) are skipped before anything is fetched.
 * - Rows of one source package and one kind of evidence are grouped into statements of at most
 *   32 subjects.
 *
 * Signing: the CLI signs `importContents(plan)` with a StatementSigner over the bridge key
 * (identity/statement-signer.ts), which fills in `builder` and reserves the seqs as one block under
 * the seq file's lock, so two imports can never share a seq (which would be an equivocation and
 * get the bridge key dropped everywhere). The node never holds the bridge key: it is another party.
 */
import { canonicalJson, sha256Hex, type AttestationContent } from '../../protocol/index.js'
import { mapLimit } from '../../common/concurrency.js'
import { debArtifactName, sourcePurlOf, type BinaryControl } from '../../debian/binary-package.js'
import { dataDirLayout } from '../../common/data-dir.js'
import { unverifiedLinkProducts, verifyRebuilderdLink, type RebuilderdKey } from './in-toto-link.js'
import { AttestationFetcher, attestationUrl, type Endpoint } from './instance.js'
import type { RebuilderdArtifact } from './rebuilderd.js'
import type { BridgeState, RecordKey } from './bridge-state.js'
import { join } from 'node:path'

export const BRIDGE_BACKEND = 'rebuilderd'
/** Subjects per statement: 32 subjects + their upstream copies stay well under the 16 KiB payload limit. */
export const MAX_SUBJECTS_PER_STATEMENT = 32
export const TAG_VERIFIED = 'source-verified'
export const TAG_UNAUTHENTICATED = 'unauthenticated-source'
const ATTESTATION_CONCURRENCY = 8

export function bridgeKeyPath(dataDir: string): string {
  return dataDirLayout(dataDir).bridgeKey
}

export function bridgeStatePath(dataDir: string): string {
  return join(dataDir, 'bridge-state')
}

export const SKIP_REASONS = [
  'other-distribution',
  'invalid-row',
  'bad',
  'failed',
  'unknown',
  'already-imported',
  'unsigned',
  'attestation-invalid',
  'no-digest',
  'conflicting-digest',
  'duplicate'
] as const
export type SkipReason = (typeof SKIP_REASONS)[number]
export type Skipped = Partial<Record<SkipReason, number>>

export function addSkipped(into: Skipped, from: Partial<Record<string, number>>): void {
  for (const [k, n] of Object.entries(from)) into[k as SkipReason] = (into[k as SkipReason] ?? 0) + (n ?? 0)
}

/** A row with what we know about its digest and where that knowledge came from. */
export interface EvidencedRow {
  artifact: RebuilderdArtifact
  file: string
  sha256: string
  authenticated: boolean
  /** The link the digest came from (verified or not). */
  attestation: { uri: string; sha256: string } | undefined
  /** The pinned key that verified it. */
  keyid: string | undefined
  record: RecordKey
}

export interface GatherOptions {
  /** Names the instance (its root URL) or the list file: part of every record key. */
  origin: string
  /** Where attestations live; undefined for a list read from a file. */
  endpoint: Endpoint | undefined
  /** Keys the user pinned; empty: nothing can be verified. */
  keys: readonly RebuilderdKey[]
  allowUnsigned: boolean
  allowHttp: boolean
  state: BridgeState
}

export interface Gathered {
  rows: EvidencedRow[]
  skipped: Skipped
  /** The first few attestations refused, each naming its URL and why. */
  refused: string[]
  /** How many attestations were fetched. */
  fetched: number
}

const POOL_DIR_RE = /\/pool\/[^/]+\/[^/]+\/([a-z0-9][a-z0-9+.-]*)\/[^/]+\.deb$/

function controlOf(a: RebuilderdArtifact): BinaryControl {
  const poolSource = a.url === undefined ? undefined : POOL_DIR_RE.exec(a.url)?.[1]
  return { package: a.name, version: a.version, architecture: a.architecture, source: poolSource }
}

/** The archive's file name: the URL's last segment when it is a .deb, else the pool's naming rule. */
export function artifactFileName(a: RebuilderdArtifact): string {
  const last = a.url === undefined ? undefined : decodeURIComponent(a.url.split(/[?#]/)[0]!.split('/').pop() ?? '')
  return last !== undefined && /^[^/\\\x00-\x1f]{1,250}\.deb$/.test(last) ? last : debArtifactName(controlOf(a))
}

/**
 * From parsed rows to rows with a digest and its evidence: status filter, already-imported
 * filter (before any fetch), then each remaining row's attestation fetched and verified.
 */
export async function gatherEvidence(artifacts: readonly RebuilderdArtifact[], options: GatherOptions): Promise<Gathered> {
  const skipped: Skipped = {}
  const skip = (r: SkipReason) => (skipped[r] = (skipped[r] ?? 0) + 1)
  const refused: string[] = []
  const good: RebuilderdArtifact[] = []
  for (const a of artifacts) {
    if (a.status === 'GOOD') good.push(a)
    else skip(a.status === 'BAD' ? 'bad' : a.status === 'FAIL' ? 'failed' : 'unknown')
  }
  const recordOf = (a: RebuilderdArtifact): RecordKey => ({
    origin: options.origin,
    buildId: a.buildId,
    artifact: a.buildId === undefined ? `${artifactFileName(a)}\0${a.sha256 ?? ''}` : artifactFileName(a)
  })
  const linkOf = (a: RebuilderdArtifact) => (options.endpoint === undefined ? undefined : attestationUrl(options.endpoint, a))
  const known = await options.state.imported(good.map(recordOf))
  const todo = good.filter((a, i) => {
    const seen = known[i]
    // An unauthenticated import is redone once the row can be verified.
    if (seen !== undefined && (seen.authenticated || options.keys.length === 0 || linkOf(a) === undefined)) {
      skip('already-imported')
      return false
    }
    return true
  })

  const fetcher = new AttestationFetcher(options.allowHttp)
  let fetched = 0
  const results = await mapLimit(todo, ATTESTATION_CONCURRENCY, async (a): Promise<EvidencedRow | SkipReason> => {
    const file = artifactFileName(a)
    const record = recordOf(a)
    const uri = linkOf(a)
    const wantLink = uri !== undefined && (options.keys.length > 0 || (options.allowUnsigned && a.sha256 === undefined))
    const bytes = wantLink ? await fetcher.get(uri) : undefined
    if (bytes !== undefined) fetched++
    const linkDigest = bytes === undefined ? undefined : sha256Hex(bytes)
    if (bytes !== undefined && options.keys.length > 0) {
      try {
        const link = verifyRebuilderdLink(bytes, options.keys, uri!)
        const sha256 = link.products.get(file)
        // v0 serves the build's first artifact's link: other rows of the build are not in it.
        if (sha256 !== undefined) {
          if (a.sha256 !== undefined && a.sha256 !== sha256) return 'conflicting-digest'
          return { artifact: a, file, sha256, authenticated: true, attestation: { uri: uri!, sha256: linkDigest! }, keyid: link.keyid, record }
        }
      } catch (e) {
        if (refused.length < 5) refused.push((e as Error).message)
        return 'attestation-invalid'
      }
    }
    if (!options.allowUnsigned) return 'unsigned'
    const fromLink = bytes === undefined ? undefined : unverifiedLinkProducts(bytes, uri!).get(file)
    const sha256 = a.sha256 ?? fromLink
    if (sha256 === undefined) return 'no-digest'
    const attestation = fromLink !== undefined && a.sha256 === undefined ? { uri: uri!, sha256: linkDigest! } : undefined
    return { artifact: a, file, sha256, authenticated: false, attestation, keyid: undefined, record }
  })
  const rows: EvidencedRow[] = []
  for (const r of results) {
    if (typeof r === 'string') skip(r)
    else rows.push(r)
  }
  return { rows, skipped, refused, fetched }
}

/** One statement to sign. */
export interface ImportStatement {
  package: string
  subjects: { name: string; sha256: string }[]
  builtAt: Date
  /** Identifies "the same build" (SPEC §5): bridge, origin, package, rebuilderd build ids, links. */
  inputs: string
  authenticated: boolean
  materials: { uri: string; sha256: string }[]
  diff: { tags: string[]; summary: string }
  /** The upstream records this statement covers (remembered once the node stored it). */
  records: (RecordKey & { sha256: string; authenticated: boolean })[]
}

export interface ImportPlan {
  statements: ImportStatement[]
  artifacts: number
  skipped: Skipped
}

const clip = (s: string, n: number) => (s.length <= n ? s : `${s.slice(0, n - 1)}…`)

export function planRebuilderdImport(rows: readonly EvidencedRow[], options: { origin: string; now?: Date }): ImportPlan {
  const skipped: Skipped = {}
  const skip = (r: SkipReason) => (skipped[r] = (skipped[r] ?? 0) + 1)
  interface Group {
    purl: string
    authenticated: boolean
    rows: Map<string, EvidencedRow>
  }
  const groups = new Map<string, Group>()
  for (const r of rows) {
    const purl = sourcePurlOf(controlOf(r.artifact))
    const gk = `${purl}\0${r.authenticated}`
    let g = groups.get(gk)
    if (g === undefined) groups.set(gk, (g = { purl, authenticated: r.authenticated, rows: new Map() }))
    const seen = g.rows.get(r.file)
    if (seen !== undefined) {
      skip(seen.sha256 === r.sha256 ? 'duplicate' : 'conflicting-digest')
      continue
    }
    g.rows.set(r.file, r)
  }

  const now = options.now ?? new Date()
  const statements: ImportStatement[] = []
  let count = 0
  for (const g of [...groups.values()].sort((a, b) => (a.purl < b.purl ? -1 : a.purl > b.purl ? 1 : a.authenticated ? -1 : 1))) {
    const sorted = [...g.rows.values()].sort((a, b) => (a.file < b.file ? -1 : 1))
    for (let i = 0; i < sorted.length; i += MAX_SUBJECTS_PER_STATEMENT) {
      const chunk = sorted.slice(i, i + MAX_SUBJECTS_PER_STATEMENT)
      const materials = [...new Map(chunk.flatMap((r) => (r.attestation === undefined ? [] : [[r.attestation.uri, r.attestation] as const]))).values()].sort((a, b) =>
        a.uri < b.uri ? -1 : 1
      )
      const keyids = [...new Set(chunk.flatMap((r) => (r.keyid === undefined ? [] : [r.keyid])))].sort()
      const builds = [...new Set(chunk.flatMap((r) => (r.artifact.buildId === undefined ? [] : [r.artifact.buildId])))].sort((a, b) => a - b)
      const inputs = sha256Hex(
        canonicalJson({ bridge: BRIDGE_BACKEND, origin: options.origin, package: g.purl, builds, links: materials.map((m) => m.sha256), authenticated: g.authenticated })
      )
      // A build date in the future (clock skew at the source) would be refused by nobody but is a lie: clamp.
      const latest = chunk.reduce<Date | undefined>((m, r) => (r.artifact.builtAt !== undefined && (m === undefined || r.artifact.builtAt > m) ? r.artifact.builtAt : m), undefined)
      const builtAt = latest === undefined || latest > now ? now : latest
      const diff = g.authenticated
        ? { tags: [TAG_VERIFIED], summary: clip(`rebuilderd ${options.origin}: signed in-toto links verified with the pinned key ${keyids.join(', ')}`, 2048) }
        : { tags: [TAG_UNAUTHENTICATED], summary: clip(`rebuilderd ${options.origin}: no verified attestation; the list was imported with --allow-unsigned`, 2048) }
      statements.push({
        package: g.purl,
        subjects: chunk.map((r) => ({ name: r.file, sha256: r.sha256 })),
        builtAt,
        inputs,
        authenticated: g.authenticated,
        materials,
        diff,
        records: chunk.map((r) => ({ ...r.record, sha256: r.sha256, authenticated: r.authenticated }))
      })
      count += chunk.length
    }
  }
  return { statements, artifacts: count, skipped }
}

/** The statements to sign, in plan order (the signer adds `builder`: the bridge key, its seqs, the software). */
export function importContents(plan: ImportPlan): AttestationContent[] {
  return plan.statements.map((s) => ({
    package: s.package,
    subject: s.subjects,
    outcome: 'reproduced',
    upstream: s.subjects,
    inputs: { sha256: s.inputs, materials: s.materials },
    backend: BRIDGE_BACKEND,
    startedOn: s.builtAt,
    finishedOn: s.builtAt,
    diff: s.diff
  }))
}
