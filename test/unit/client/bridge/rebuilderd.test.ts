import { describe, expect, it } from 'vitest'
import { parseRebuilderdList } from '../../../../client/bridge/rebuilderd.js'
import { isRbqError } from '../../../../protocol/index.js'

/** Rows as rebuilderd's v0 `GET /api/v0/pkgs/list` serialises `PkgRelease`. */
const V0 = [
  { name: 'mount', version: '2.38.1-5+b1', status: 'GOOD', distro: 'debian', suite: 'main', architecture: 'amd64', artifact_url: 'https://deb.debian.org/debian/pool/main/u/util-linux/mount_2.38.1-5+b1_amd64.deb', build_id: 7, built_at: '2024-11-20T12:34:56.123456', has_diffoscope: false, has_attestation: true },
  { name: 'ncurses-bin', version: '6.4-4', status: 'UNKWN', distro: 'debian', suite: 'main', architecture: 'amd64', artifact_url: 'https://x/ncurses-bin_6.4-4_amd64.deb', build_id: null, built_at: null, has_diffoscope: false, has_attestation: false },
  { name: 'hello', version: '2.10-3', status: 'BAD', distro: 'debian', suite: 'main', architecture: 'amd64', url: 'https://x/hello_2.10-3_amd64.deb' }
]

/** A page as v1 `GET /api/v1/packages/binary` serialises `ResultPage<BinaryPackage>`. */
const V1 = {
  total: 3,
  records: [
    { id: 1, name: 'base-files', version: '12.4+deb12u5', distribution: 'debian', release: 'bookworm', component: 'main', architecture: 'amd64', url: 'https://x/base-files_12.4+deb12u5_amd64.deb', status: 'GOOD', build_id: 3, artifact_id: 9, diffoscope_log_id: null, attestation_log_id: null, last_seen: '2025-01-01T00:00:00', seen_in_last_sync: true, sha256: 'AB'.repeat(32) },
    { id: 2, name: 'tzdata', version: '2024a-0+deb12u1', distribution: 'debian', release: 'bookworm', component: 'main', architecture: 'all', url: 'https://x/tzdata.deb', status: null, build_id: null }
  ]
}

describe('rebuilderd lists', () => {
  it('parses v0 pkgs/list rows', () => {
    const l = parseRebuilderdList(JSON.stringify(V0))
    expect(l.api).toBe('v0')
    expect(l.artifacts.map((a) => [a.name, a.status])).toEqual([['mount', 'GOOD'], ['ncurses-bin', 'UNKWN'], ['hello', 'BAD']])
    expect(l.artifacts[0]).toMatchObject({ distribution: 'debian', suite: 'main', buildId: 7, hasAttestation: true, url: V0[0]?.artifact_url, sha256: undefined })
    expect(l.artifacts[1]?.hasAttestation).toBe(false)
    expect(l.artifacts[0]?.builtAt?.toISOString()).toBe('2024-11-20T12:34:56.123Z')
    expect(l.artifacts[2]?.url).toBe('https://x/hello_2.10-3_amd64.deb')
  })

  it('parses a v1 page; null status is UNKWN, and a digest column is honoured', () => {
    const l = parseRebuilderdList(JSON.stringify(V1))
    expect(l.api).toBe('v1')
    expect(l.total).toBe(3)
    expect(l.artifacts.map((a) => [a.name, a.status, a.suite])).toEqual([['base-files', 'GOOD', 'bookworm'], ['tzdata', 'UNKWN', 'bookworm']])
    expect(l.artifacts[0]?.sha256).toBe('ab'.repeat(32))
  })

  it('skips other distributions before validating them, and counts them', () => {
    // As rebuilderd instances serve them: Arch (x86_64) and Fedora (PackageKit) beside Debian.
    const arch = { name: 'pacman', version: '7.0.0-1', status: 'GOOD', distro: 'archlinux', suite: 'core', architecture: 'x86_64', artifact_url: 'https://geo.mirror.pkgbuild.com/core/os/x86_64/pacman-7.0.0-1-x86_64.pkg.tar.zst', build_id: 8, built_at: null, has_diffoscope: false, has_attestation: true }
    const fedora = { name: 'PackageKit', version: '1.2.8-6.fc41', status: 'BAD', distro: 'fedora', suite: 'f41', architecture: 'x86_64', artifact_url: 'https://x/PackageKit-1.2.8-6.fc41.x86_64.rpm', build_id: 9, built_at: null, has_diffoscope: true, has_attestation: false }
    const l = parseRebuilderdList(JSON.stringify([arch, V0[0], fedora]))
    expect(l.artifacts.map((a) => a.name)).toEqual(['mount'])
    expect(l).toMatchObject({ rows: 3, skipped: { 'other-distribution': 2 }, problems: [] })
    const v1 = parseRebuilderdList(JSON.stringify({ total: 9, records: [{ ...V1.records[0], id: 4 }, { id: 7, name: 'PackageKit', version: '1.2.8-6.fc41', distribution: 'fedora', architecture: 'x86_64', url: 'https://x/p.rpm', status: 'GOOD', build_id: 5 }] }))
    expect(v1).toMatchObject({ api: 'v1', rows: 2, total: 9, lastId: 7, skipped: { 'other-distribution': 1 } })
  })

  it('skips and counts Debian rows that do not validate, naming the row and field; the rest is kept', () => {
    const cases: [unknown, RegExp][] = [
      [{ records: [V1.records[0], { ...V1.records[0], status: 'MAYBE' }] }, /records\[1\]\.status: unknown status/],
      [[V0[0], { ...V0[1], name: '../../etc' }], /\[1\]\.name/],
      [[V0[0], { ...V0[0], version: 42 }], /\[1\]\.version: expected a non-empty string/],
      [[V0[0], { ...V0[0], sha256: 'xyz' }], /\[1\]\.sha256: expected 64 hex/],
      [[V0[0], { ...V0[0], built_at: 'yesterday' }], /\[1\]\.built_at/],
      [[V0[0], 7], /\[1\]: expected an object/]
    ]
    for (const [value, message] of cases) {
      const l = parseRebuilderdList(JSON.stringify(value))
      expect(l.artifacts).toHaveLength(1)
      expect(l.skipped).toEqual({ 'invalid-row': 1 })
      expect(l.problems[0]).toMatch(message)
    }
  })

  it('refuses a body that is not a rebuilderd list at all', () => {
    let err: unknown
    try {
      parseRebuilderdList(JSON.stringify({ packages: [] }))
    } catch (e) {
      err = e
    }
    expect(isRbqError(err, 'SCHEMA_INVALID')).toBe(true)
    expect((err as Error).message).toMatch(/expected a rebuilderd v0 package list/)
  })

  it('rejects malformed and absurdly deep JSON', () => {
    expect(() => parseRebuilderdList('[{"name": ')).toThrow(/malformed JSON/)
    expect(() => parseRebuilderdList('['.repeat(100) + ']'.repeat(100))).toThrow(/nested deeper/)
  })
})
