/**
 * Which packages this node rebuilds (node/rebuild/README.md, "Sampler seed"): a package is in the sample when
 * HMAC-SHA256(seed, purl), its first 8 bytes read as a big-endian uint64 / 2^64, is below
 * `share`. The seed is secret and per node, so others cannot predict (and so cannot target)
 * what a node checks, while the node's own choice is stable. The purl includes the version:
 * each new version is a fresh draw. A package filter (purl scope patterns) narrows the feed
 * before sampling.
 *
 * The seed lives in `<data dir>/sampler.seed` (0600, hex), like the other secrets of the node,
 * and not in the store: store dumps and backups should never carry secrets.
 */
import { createHmac, randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { checkPattern, parsePurl, RbqError, scopeMatches } from '../../protocol/index.js'
import { checkSecretFileMode, writeSecretFile } from '../../identity/signing-key.js'

export const SAMPLER_SEED_BYTES = 32
const TWO_POW_64 = 2 ** 64

export interface SamplerInit {
  /** Fraction of the feed to rebuild, 0..1 (1 = everything the filter lets through). */
  share: number
  /** Purl scope patterns (protocol/purl.ts); empty or absent = every package. */
  filter?: string[]
}

export class Sampler {
  readonly share: number
  readonly filter: readonly string[]
  private readonly seed: Buffer

  constructor(seed: Uint8Array, init: SamplerInit) {
    if (seed.length !== SAMPLER_SEED_BYTES) throw new RbqError('CONFIG_INVALID', `sampler seed must be ${SAMPLER_SEED_BYTES} bytes, got ${seed.length}`)
    if (!(init.share >= 0 && init.share <= 1)) throw new RbqError('CONFIG_INVALID', `sampler share must be from 0 to 1, got ${init.share}`, { field: 'share' })
    this.seed = Buffer.from(seed)
    this.share = init.share
    this.filter = (init.filter ?? []).map((p, i) => checkPattern(p, `filter[${i}]`))
  }

  /** The package's draw in [0, 1): uniform, stable for this seed, unpredictable without it. */
  fraction(purl: string): number {
    const mac = createHmac('sha256', this.seed).update(purl, 'utf8').digest()
    return Number(mac.readBigUInt64BE(0)) / TWO_POW_64
  }

  passesFilter(purl: string): boolean {
    return this.filter.length === 0 || scopeMatches(this.filter, parsePurl(purl))
  }

  /**
   * In the filter and drawn below `share` (`share` = 1 takes everything, 0 nothing); `share`
   * defaults to the sampler's, a feed with its own default (the archive's) passes its own.
   */
  includes(purl: string, share = this.share): boolean {
    if (!this.passesFilter(purl)) return false
    if (share >= 1) return true
    return this.fraction(purl) < share
  }
}

export function samplerSeedPath(dataDir: string): string {
  return join(dataDir, 'sampler.seed')
}

/** Loads the node's seed, creating it (0600) on first start. */
export async function loadOrCreateSamplerSeed(dataDir: string): Promise<Uint8Array> {
  const path = samplerSeedPath(dataDir)
  try {
    return await readSeed(path)
  } catch (e) {
    if (!(e instanceof RbqError && e.code === 'FILE_NOT_FOUND')) throw e
  }
  try {
    await writeSecretFile(path, `${randomBytes(SAMPLER_SEED_BYTES).toString('hex')}\n`, 'sampler seed')
  } catch (e) {
    if (!(e instanceof RbqError && e.code === 'FILE_EXISTS')) throw e // else: created concurrently
  }
  return readSeed(path)
}

async function readSeed(path: string): Promise<Uint8Array> {
  await checkSecretFileMode(path, 'sampler seed')
  const text = (await fs.readFile(path, 'utf8')).trim()
  if (!/^[0-9a-f]{64}$/.test(text)) throw new RbqError('FILE_UNREADABLE', `sampler seed ${path} is not 64 hex characters; delete it to draw a new sample`)
  return new Uint8Array(Buffer.from(text, 'hex'))
}
