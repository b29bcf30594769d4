/**
 * Domain types of the rebuild pipeline (names after rebuilderd). A builder turns a
 * `BuildInput` into a `RebuildResult`; signing it into an attestation happens elsewhere
 * (node/rebuild/rebuild-statement.ts), so builders never touch keys.
 */
import type { ErrorCode } from '../../protocol/errors.js'

/** The four outcomes an attestation can carry; fixed wire strings. */
export type RebuildOutcome = 'reproduced' | 'mismatch' | 'failed' | 'built'

export interface Digest {
  sha256: string // lowercase hex
}

/** A file the builder produced. */
export interface RebuildArtifact {
  name: string // e.g. hello_2.10-3_amd64.deb
  sha256: string
  size: number
  path: string // absolute path on this machine (not part of the attestation)
}

/** What the builder compared against (e.g. the archive's .deb from Packages). */
export interface UpstreamArtifact {
  name: string
  sha256: string
}

export interface Material {
  uri: string
  sha256: string
}

export interface RebuildResult {
  /** purl of what was rebuilt, e.g. pkg:deb/debian/hello@2.10-3?arch=source */
  package: string
  outcome: RebuildOutcome
  /** Produced artifacts; for `failed`, the source descriptor (e.g. the .dsc). */
  artifacts: RebuildArtifact[]
  upstream: UpstreamArtifact[]
  inputs: { sha256: string; materials: Material[] }
  backend: 'debian' | 'recipe'
  startedOn: Date
  finishedOn: Date
  log: { path: string; sha256: string; size: number }
  diff?: { tags: string[]; summary: string }
  /**
   * The build environment (Debian builder): `faithful` = exactly the official build's recorded
   * environment (its .buildinfo); `current` = today's archive. Absent (recipes) = not stated,
   * which the protocol reads as `current`. A builder never claims `faithful` unless checked.
   */
  environment?: 'faithful' | 'current'
  /** Why a rebuild is `current` when a faithful one was attempted (e.g. a missing exact version). */
  environmentNote?: string
  /**
   * Set when outcome is `failed`: why, whether a retry may help (download errors), and the
   * typed code behind it when the builder knows one (BUILD_FAILED, BUILD_TIMEOUT, ...).
   */
  failure?: { reason: string; transient: boolean; code?: ErrorCode }
}

/** Progress callback for long phases (the CLI shows it live). */
export type ProgressPhase = 'fetch' | 'verify' | 'buildroot' | 'build' | 'compare' | 'diff' | 'done'
export interface ProgressEvent {
  phase: ProgressPhase
  message: string
  logLine?: string
}
export type OnProgress = (e: ProgressEvent) => void
