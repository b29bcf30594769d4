import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { aptListsDir, parseHookInput } from '../../../../client/apt/hook-input.js'
import { gateSettingsFrom, packageMatches, parseGateConfig, formatGateConfig } from '../../../../client/apt/gate-config.js'
import { originMatches, parseOriginPattern, releaseFileOf } from '../../../../client/apt/origin.js'
import { isRbqError } from '../../../../protocol/index.js'

/** Captured from apt 2.6.1 (Version "3"): an upgrade with an epoch and two first installs from a file: repository. */
const CAPTURED = readFileSync(new URL('./pre-install-pkgs-v3.txt', import.meta.url), 'utf8')

describe('apt hook input', () => {
  it('parses what apt sent in protocol 3: the .debs to unpack, announced precisely; the lists dir', () => {
    const input = parseHookInput(CAPTURED)
    expect(input.version).toBe(3)
    expect(input.config.get('APT::Architecture')).toBe('amd64')
    expect(input.config.get('Acquire::IndexTargets::deb::Packages::flatDescription')).toBe('$(RELEASE) Packages') // %20 decoded
    expect(aptListsDir(input.config)).toBe('/srv/repo-root/root/var/lib/apt/lists/')
    expect(input.debs.map((d) => d.path)).toEqual(['/srv/repo-root/repo/./hello-a_2.0-1_amd64.deb', '/srv/repo-root/repo/./hello-b_1.0_all.deb', '/srv/repo-root/repo/./libhello_1.0-1_amd64.deb'])
    expect(input.debs[0]?.announced).toEqual({ package: 'hello-a', oldVersion: '1.0', oldArchitecture: 'all', direction: '<', newVersion: '1:2.0-1', newArchitecture: 'amd64', action: 'unpack', path: '/srv/repo-root/repo/./hello-a_2.0-1_amd64.deb' })
    expect(input.debs[1]?.announced).toMatchObject({ oldVersion: null, oldArchitecture: null, newArchitecture: 'all' })
  })

  it('protocol 1: one absolute path per line', () => {
    expect(parseHookInput('/var/cache/apt/archives/a.deb\n\n/tmp/b c.deb\n')).toEqual({ version: 1, debs: [{ path: '/var/cache/apt/archives/a.deb' }, { path: '/tmp/b c.deb' }], config: new Map() })
    expect(parseHookInput('').debs).toEqual([])
  })

  it('refuses what does not fit, naming the line', () => {
    const head = 'VERSION 3\nAPT::Architecture=amd64\n\n'
    const bad: [string, RegExp][] = [
      ['VERSION 2\nA=b\n\n', /line 1: apt sent hook protocol "VERSION 2"/],
      ['VERSION 3\nAPT::Architecture=amd64\n', /does not end with a blank line/],
      ['VERSION 3\nnot a setting\n\n', /line 2: configuration line/],
      [head + 'hello - - none < 1.0 amd64 same\n', /line 4: expected 9 space-separated fields/],
      [head + 'hello - - none ? 1.0 amd64 same /x.deb\n', /direction "\?"/],
      [head + 'hello - - none < 1.0 amd64 weird /x.deb\n', /new multi-arch "weird"/],
      [head + 'hello - amd64 none < 1.0 amd64 same /x.deb\n', /old architecture "amd64" without a old version/],
      [head + 'hello - - none < 1.0 amd64 same relative.deb\n', /neither \*\*CONFIGURE\*\*, \*\*REMOVE\*\* nor the absolute path/],
      [head + 'Hello! - - none < 1.0 amd64 same /x.deb\n', /not a package name/],
      ['relative.deb\n', /not an absolute \.deb path/]
    ]
    for (const [text, re] of bad) {
      expect(() => parseHookInput(text), text).toThrow(re)
      try {
        parseHookInput(text)
      } catch (e) {
        expect(isRbqError(e, 'HOOK_INPUT_INVALID')).toBe(true)
      }
    }
    expect(parseHookInput(head + 'gone 1.0 amd64 same < - - none **REMOVE**\n').debs).toEqual([])
  })
})

describe('gate settings file and allowlists', () => {
  it('round-trips through the commented file', () => {
    const s = gateSettingsFrom({ mode: 'tampering-only', failed: 'refuse', allow_packages: ['linux-image-*'], allow_origins: ['origin=Debian,label=Debian-Security'], data: '/var/lib/rbq' }, 'cli')
    const text = formatGateConfig(s)
    expect(text).toContain('dpkg -i')
    expect(parseGateConfig(text, 'f')).toEqual(s)
    expect(() => parseGateConfig('mode = "strict"\nallow_package = []\n', '/etc/rbq/apt-gate.toml')).toThrow(/\/etc\/rbq\/apt-gate.toml: unknown setting "allow_package"/)
    expect(() => parseGateConfig('mode = \n', 'f')).toThrow(/^f:1:\d+: TOML syntax/)
    expect(() => parseGateConfig('data = "relative"\n', 'f')).toThrow(/absolute path/)
  })

  it('package patterns and origin patterns', () => {
    expect(packageMatches('linux-image-*', 'linux-image-6.1.0-18-amd64')).toBe(true)
    expect(packageMatches('libc6', 'libc6-dev')).toBe(false)
    expect(packageMatches('g++*', 'g++-12')).toBe(true)
    const security = { origin: 'Debian', label: 'Debian-Security', suite: 'stable-security', codename: 'bookworm-security', release: 'x' }
    expect(originMatches(parseOriginPattern('origin=Debian,label=Debian-Security', 'p'), security)).toBe(true)
    expect(originMatches(parseOriginPattern('o=Debian,n=bookworm-security', 'p'), security)).toBe(true)
    expect(originMatches(parseOriginPattern('Debian-Security', 'p'), security)).toBe(true)
    expect(originMatches(parseOriginPattern('origin=Debian,label=Debian-Security', 'p'), { ...security, label: 'Debian' })).toBe(false)
    expect(() => parseOriginPattern('colour=blue', 'allow_origins[0]')).toThrow(/allow_origins\[0\]: "colour=blue" has "colour=blue"/)
  })

  it("finds an index's Release file in apt's lists dir", () => {
    const releases = ['deb.debian.org_debian_dists_bookworm_InRelease', 'deb.debian.org_debian-security_dists_bookworm-security_InRelease', '_srv_repo_._Release']
    expect(releaseFileOf('deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages.lz4', releases)).toBe('deb.debian.org_debian-security_dists_bookworm-security_InRelease')
    expect(releaseFileOf('deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4', releases)).toBe('deb.debian.org_debian_dists_bookworm_InRelease')
    expect(releaseFileOf('_srv_repo_._Packages', releases)).toBe('_srv_repo_._Release')
    expect(releaseFileOf('elsewhere_Packages', releases)).toBeUndefined()
  })
})
