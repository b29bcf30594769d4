/**
 * The Node versions package.json promises are the ones every locked dependency accepts, so
 * `npm ci` on the oldest promised Node prints no EBADENGINE warning, and the Node running the
 * suite is one of them (README "Requirements" names the version that is tested).
 */
import { readFileSync } from 'node:fs'
import semver from 'semver'
import { describe, expect, it } from 'vitest'

const read = (name: string) => JSON.parse(readFileSync(new URL(`../../${name}`, import.meta.url), 'utf8')) as unknown
const pkg = read('package.json') as { engines: { node: string } }
const lock = read('package-lock.json') as { packages: Record<string, { engines?: { node?: string } | string[] }> }

describe('supported Node versions', () => {
  const promised = pkg.engines.node
  const oldest = semver.minVersion(promised)

  it('package.json names a range with a lowest version', () => {
    expect(oldest).not.toBeNull()
  })

  it('the Node running the tests is in that range', () => {
    expect(semver.satisfies(process.version, promised), `${process.version} vs ${promised}`).toBe(true)
  })

  it('every locked package accepts the oldest promised Node (no EBADENGINE on npm ci)', () => {
    const refusing = Object.entries(lock.packages)
      .filter(([path]) => path !== '') // the root entry is package.json itself
      .map(([path, entry]) => [path, Array.isArray(entry.engines) ? undefined : entry.engines?.node] as const)
      .filter(([, range]) => range !== undefined && !semver.satisfies(oldest!, range))
      .map(([path, range]) => `${path} wants node ${range}`)
    expect(refusing).toEqual([])
  })
})
