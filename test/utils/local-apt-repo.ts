/**
 * A real local apt repository (flat layout) made of real .deb files: the control fields read
 * with `dpkg-deb -f`, plus Filename, Size and SHA256, an unsigned Release listing the Packages
 * file. Used as `deb [trusted=yes] file:<dir> ./`.
 */
import { spawnSync } from 'node:child_process'
import { chmod, copyFile, mkdir, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { sha256File } from '../../common/files.js'

export interface LocalAptRepo {
  dir: string
  /** The apt source line for it. */
  line: string
}

export async function makeLocalAptRepo(dir: string, debs: string[]): Promise<LocalAptRepo> {
  await mkdir(dir, { recursive: true })
  await chmod(dir, 0o755) // apt's unprivileged _apt user reads it
  const paragraphs: string[] = []
  for (const deb of debs) {
    const name = basename(deb)
    await copyFile(deb, join(dir, name))
    const control = spawnSync('dpkg-deb', ['-f', deb], { encoding: 'utf8' })
    if (control.status !== 0) throw new Error(`dpkg-deb -f ${deb}: ${control.stderr}`)
    const { sha256, size } = await sha256File(deb)
    paragraphs.push(`${control.stdout.trimEnd()}\nFilename: ./${name}\nSize: ${size}\nSHA256: ${sha256}\n`)
  }
  await writeFile(join(dir, 'Packages'), paragraphs.join('\n'))
  const packages = await sha256File(join(dir, 'Packages'))
  const date = new Date().toUTCString()
  await writeFile(join(dir, 'Release'), `Date: ${date}\nSHA256:\n ${packages.sha256} ${packages.size} Packages\n`)
  return { dir, line: `deb [trusted=yes] file:${dir} ./` }
}
