/**
 * Strict readers for TOML config tables: every option read is typed and range-checked, errors
 * name the option (`CONFIG_INVALID`), and any option nobody read is reported as unknown.
 * Shared by node/node-config.ts and the subsystems that own a section (node/rebuild/rebuild-config.ts).
 */
import { homedir } from 'node:os'
import { isAbsolute, join, resolve } from 'node:path'
import { RbqError } from '../protocol/index.js'

/** Reads one TOML table, recording which keys were read so the rest can be reported unknown. */
export class TableReader {
  private readonly seen = new Set<string>()

  constructor(
    private readonly table: Record<string, unknown>,
    private readonly prefix: string
  ) {}

  private field(key: string): string {
    return this.prefix === '' ? key : `${this.prefix}.${key}`
  }

  private fail(key: string, what: string): never {
    throw new RbqError('CONFIG_INVALID', `config ${this.field(key)}: ${what}`, { field: this.field(key) })
  }

  private take(key: string): unknown {
    this.seen.add(key)
    return this.table[key]
  }

  section(key: string): TableReader {
    const value = this.take(key)
    if (value === undefined) return new TableReader({}, this.field(key))
    if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Date) this.fail(key, 'expected a table')
    return new TableReader(value as Record<string, unknown>, this.field(key))
  }

  string(key: string, fallback: string): string
  string(key: string, fallback: undefined): string | undefined
  string(key: string, fallback: string | undefined): string | undefined {
    const value = this.take(key)
    if (value === undefined) return fallback
    if (typeof value !== 'string' || value === '') this.fail(key, 'expected a non-empty string')
    return value
  }

  oneOf<T extends string>(key: string, allowed: readonly T[], fallback: T): T {
    const value = this.string(key, fallback)
    if (!(allowed as readonly string[]).includes(value)) this.fail(key, `expected one of ${allowed.join(', ')}, got "${value}"`)
    return value as T
  }

  bool(key: string, fallback: boolean): boolean {
    const value = this.take(key)
    if (value === undefined) return fallback
    if (typeof value !== 'boolean') this.fail(key, 'expected true or false')
    return value
  }

  int(key: string, fallback: number, min: number, max: number): number {
    const raw = this.take(key)
    if (raw === undefined) return fallback
    const value = typeof raw === 'bigint' ? Number(raw) : raw
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.fail(key, `expected an integer from ${min} to ${max}`)
    }
    return value
  }

  /** A number in [min, max] (integers allowed). */
  number(key: string, fallback: number, min: number, max: number): number {
    const raw = this.take(key)
    if (raw === undefined) return fallback
    const value = typeof raw === 'bigint' ? Number(raw) : raw
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) this.fail(key, `expected a number from ${min} to ${max}`)
    return value
  }

  optionalInt(key: string, min: number, max: number): number | undefined {
    return this.table[key] === undefined ? (this.seen.add(key), undefined) : this.int(key, min, min, max)
  }

  strings(key: string, fallback: string[], check: (s: string, field: string) => void = () => {}): string[] {
    const value = this.take(key)
    if (value === undefined) return [...fallback]
    if (!Array.isArray(value)) this.fail(key, 'expected an array of strings')
    return value.map((s, i) => {
      if (typeof s !== 'string' || s === '') this.fail(`${key}[${i}]`, 'expected a non-empty string')
      check(s, this.field(`${key}[${i}]`))
      return s
    })
  }

  /** Throws for any key nobody read: almost always a typo. */
  done(): void {
    for (const key of Object.keys(this.table)) {
      if (!this.seen.has(key)) this.fail(key, 'unknown option')
    }
  }
}

/** `~/x` and relative paths (against the config file's directory) to absolute paths. */
export function expandPath(path: string, baseDir: string): string {
  if (path === '~' || path.startsWith('~/')) return join(homedir(), path.slice(1))
  return isAbsolute(path) ? path : resolve(baseDir, path)
}
