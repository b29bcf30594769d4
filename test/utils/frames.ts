/** Signed frames for store and ingest tests (real keys, real signatures). */
import {
  buildDelegationStatement,
  buildRebuildStatement,
  canonicalBytes,
  signAttestation,
  signDelegation,
  type AttestationContent,
  type AttestationFrame,
  type DelegationFrame,
  type Frame,
  type SigningKey
} from '../../protocol/index.js'

export const PKG = 'pkg:deb/debian/hello@2.10-3?arch=source'

/** A sha256-shaped hex string for `n`. */
export function hex64(n: number): string {
  return n.toString(16).padStart(64, '0')
}

export interface AttestationOptions {
  pkg?: string
  /** Artifact names and output digests; default one artifact `hello_<seq>.deb`. */
  subjects?: { name: string; sha256: string }[]
  /** Distinguishes two statements with the same key and seq. */
  variant?: number
}

export function attestation(key: SigningKey, seq: number, options: AttestationOptions = {}): AttestationFrame {
  const subjects = options.subjects ?? [{ name: `hello_${seq}.deb`, sha256: hex64(seq) }]
  return signAttestation(
    key,
    buildRebuildStatement({
      package: options.pkg ?? PKG,
      subject: subjects,
      outcome: 'built',
      upstream: [],
      inputs: { sha256: hex64(options.variant ?? 0), materials: [] },
      builder: { id: key.publicKey.keyid, seq, backend: 'debian', software: 'rebuild-quorum/test' },
      startedOn: new Date('2026-01-01T00:00:00Z'),
      finishedOn: new Date('2026-01-01T00:01:00Z')
    })
  )
}

export function delegation(from: SigningKey, to: SigningKey, version = 1): DelegationFrame {
  return signDelegation(
    from,
    buildDelegationStatement({
      delegator: from.publicKey.keyid,
      delegate: { keyid: to.publicKey.keyid, publicKey: to.publicKey.text },
      name: 'build-server',
      scope: ['pkg:deb/debian/*'],
      maxDepth: 0,
      version,
      expires: new Date('2030-01-01T00:00:00Z'),
      revoked: false
    })
  )
}

/** The frame with `change` applied to its JSON object, re-encoded canonically (signature untouched). */
export function tampered(frame: Frame, change: (f: Record<string, any>) => void): Uint8Array {
  const copy = structuredClone(frame) as Record<string, any>
  change(copy)
  return canonicalBytes(copy)
}

/** The content of rebuild number `n` of PKG as a builder reports it (no key, no seq yet). */
export function rebuildContent(n: number, over: Partial<AttestationContent> = {}): AttestationContent {
  return {
    package: PKG,
    subject: [{ name: `hello_${n}.deb`, sha256: hex64(n) }],
    outcome: 'built',
    upstream: [],
    inputs: { sha256: hex64(n + 1000), materials: [] },
    backend: 'debian',
    startedOn: new Date('2026-01-01T00:00:00Z'),
    finishedOn: new Date('2026-01-01T00:05:00Z'),
    ...over
  }
}
