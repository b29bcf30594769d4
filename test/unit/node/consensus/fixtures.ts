/**
 * Real Ed25519 keys and frames for the consensus tests: deterministic keys (seed = sha256 of a
 * label) so a failing case reproduces, and small constructors for attestations, delegations
 * and policies.
 */
import {
  buildDelegationStatement,
  buildRebuildStatement,
  sha256Hex,
  signAttestation,
  signDelegation,
  signingKeyFromSeed,
  type AttestationFrame,
  type BuildEnvironment,
  type DelegationFrame,
  type Outcome,
  type SigningKey
} from '../../../../protocol/index.js'
import type { CountMode, Policy } from '../../../../node/consensus/index.js'

const keyCache = new Map<string, SigningKey>()
export function key(label: string): SigningKey {
  let k = keyCache.get(label)
  if (k === undefined) {
    k = signingKeyFromSeed(Buffer.from(sha256Hex(`rbq consensus test key: ${label}`), 'hex'))
    keyCache.set(label, k)
  }
  return k
}

export const PKG = 'pkg:deb/debian/hello@2.10-3?arch=source'
export const LIB_PKG = 'pkg:deb/debian/libfoo@1.0-1?arch=source'
export const DEB = 'hello_2.10-3_amd64.deb'
export const DSC = 'hello_2.10-3.dsc'
export const H = sha256Hex('the file in hand')
export const X = sha256Hex('another build output')
export const Y = sha256Hex('a third build output')
export const INPUTS = sha256Hex('inputs: buildinfo A')
export const INPUTS_B = sha256Hex('inputs: buildinfo B')
/** "now" for the trust graph; FUTURE/PAST are delegation expiries around it. */
export const NOW = Date.parse('2026-06-01T00:00:00Z')
export const FUTURE = new Date('2030-01-01T00:00:00Z')
export const PAST = new Date('2026-01-01T00:00:00Z')

export interface AttestInit {
  pkg?: string
  artifact?: string
  sha256?: string
  seq: number
  outcome?: Outcome
  inputs?: string
  /** For reproduced/mismatch: the upstream digest compared with (default: equal for reproduced, Y-ish for mismatch). */
  upstream?: string
  extraSubjects?: { name: string; sha256: string }[]
  /** predicate.environment (absent when not given: means current). */
  environment?: BuildEnvironment
  diff?: { tags: string[]; summary: string }
  /**
   * The rebuild made no file named `artifact` (a binNMU rebuilt without its +bN): the subject
   * names `<artifact>.rebuilt` instead and only the upstream names `artifact` (outcome mismatch).
   */
  upstreamOnly?: boolean
}

export function attest(signer: SigningKey, init: AttestInit): AttestationFrame {
  const outcome = init.outcome ?? 'reproduced'
  const artifact = init.artifact ?? DEB
  const digest = init.sha256 ?? H
  const subjectName = init.upstreamOnly === true ? `${artifact}.rebuilt` : artifact
  const subject = outcome === 'failed' ? [{ name: DSC, sha256: sha256Hex('hello dsc') }] : [{ name: subjectName, sha256: digest }, ...(init.extraSubjects ?? [])]
  let upstream: { name: string; sha256: string }[] = []
  if (outcome === 'reproduced') upstream = subject.map((s) => ({ ...s }))
  if (outcome === 'mismatch') upstream = [{ name: artifact, sha256: init.upstream ?? sha256Hex(`upstream other than ${digest}`) }]
  return signAttestation(
    signer,
    buildRebuildStatement({
      package: init.pkg ?? PKG,
      subject,
      outcome,
      upstream,
      inputs: { sha256: init.inputs ?? INPUTS, materials: [] },
      ...(init.environment === undefined ? {} : { environment: init.environment }),
      ...(init.diff === undefined ? {} : { diff: init.diff }),
      builder: { id: signer.publicKey.keyid, seq: init.seq, backend: 'debian', software: 'rebuild-quorum/test' },
      startedOn: new Date('2026-05-01T00:00:00Z'),
      finishedOn: new Date('2026-05-01T00:10:00Z')
    })
  )
}

export interface DelegateInit {
  scope?: string[]
  maxDepth?: number
  version?: number
  expires?: Date
  revoked?: boolean
  name?: string
}

export function delegate(from: SigningKey, to: SigningKey, init: DelegateInit = {}): DelegationFrame {
  return signDelegation(
    from,
    buildDelegationStatement({
      delegator: from.publicKey.keyid,
      delegate: { keyid: to.publicKey.keyid, publicKey: to.publicKey.text },
      name: init.name ?? `builder-${to.publicKey.keyid.slice(0, 8)}`,
      scope: init.scope ?? ['*'],
      maxDepth: init.maxDepth ?? 3,
      version: init.version ?? 1,
      expires: init.expires ?? FUTURE,
      revoked: init.revoked ?? false
    })
  )
}

export interface PolicyInit {
  threshold: number
  count?: CountMode
  maxDissent?: number
  maxDepth?: number
  roots: { name: string; key: SigningKey; scope?: string[] }[]
}

/** A Policy built directly (tests of the engine need not go through TOML). */
export function policy(init: PolicyInit): Policy {
  return {
    threshold: init.threshold,
    count: init.count ?? 'party',
    maxDissent: init.maxDissent ?? 0,
    maxDepth: init.maxDepth ?? 3,
    roots: init.roots.map((r) => ({ name: r.name, key: r.key.publicKey, scope: r.scope ?? ['*'] }))
  }
}

/** Fisher–Yates with a seeded LCG, for order tests outside fast-check. */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items]
  let s = seed >>> 0
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    const j = s % (i + 1)
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}
