/** Builds tiny real .deb files with `dpkg-deb --build` for the apt gate and health tests. */
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

export interface TinyDeb {
  package: string
  version: string
  architecture?: string
  /** Raw Source: field, e.g. "hello-src (1.0-1)". */
  source?: string
  /** Contents of the one file the package installs (/usr/share/<package>/README). */
  content?: string
}

export function hasDpkgDeb(): boolean {
  return spawnSync('dpkg-deb', ['--version'], { stdio: 'ignore' }).status === 0
}

/** Builds `<dir>/<package>_<version>_<arch>.deb` and returns its path. */
export function makeDeb(dir: string, deb: TinyDeb): string {
  const arch = deb.architecture ?? 'all'
  const tree = join(dir, `tree-${deb.package}-${deb.version.replace(/:/g, '_')}`)
  mkdirSync(join(tree, 'DEBIAN'), { recursive: true })
  mkdirSync(join(tree, 'usr', 'share', deb.package), { recursive: true })
  writeFileSync(join(tree, 'usr', 'share', deb.package, 'README'), deb.content ?? `${deb.package} ${deb.version}\n`)
  const control = [
    `Package: ${deb.package}`,
    `Version: ${deb.version}`,
    `Architecture: ${arch}`,
    ...(deb.source ? [`Source: ${deb.source}`] : []),
    'Maintainer: rbq tests <tests@example.invalid>',
    'Priority: optional',
    'Section: misc',
    `Description: rbq test package ${deb.package}`,
    ''
  ].join('\n')
  writeFileSync(join(tree, 'DEBIAN', 'control'), control)
  chmodSync(join(tree, 'DEBIAN'), 0o755)
  const out = join(dir, `${deb.package}_${deb.version.replace(/^\d+:/, '')}_${arch}.deb`)
  // Fixed mtimes and root ownership: the same input gives the same bytes.
  const r = spawnSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', tree, out], {
    env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000' },
    encoding: 'utf8'
  })
  if (r.status !== 0) throw new Error(`dpkg-deb --build failed: ${r.stderr}`)
  return out
}

/**
 * Copies a .deb to `dest` with one byte flipped near the end (inside data.tar, so dpkg-deb still
 * reads the control fields): same name and version, another digest.
 */
export function tamperedCopy(src: string, dest: string): string {
  const bytes = readFileSync(src)
  const at = bytes.length - 20
  bytes.writeUInt8((bytes.readUInt8(at) ^ 0x01) & 0xff, at)
  mkdirSync(dirname(dest), { recursive: true })
  writeFileSync(dest, bytes)
  return dest
}
