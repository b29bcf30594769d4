/**
 * What the recipe builder needs on this machine: /bin/sh, and unshare with a usable network
 * namespace for isolation (optional: without it builds run with network, and say so).
 */
import { access, constants } from 'node:fs/promises'
import type { DoctorCheck } from '../debian/debian-doctor.js'
import { hasCommand } from '../../../common/subprocess.js'
import { detectNetworkIsolation } from './network-isolation.js'

export interface RecipeDoctorReport {
  backend: 'recipe'
  ready: boolean
  checks: DoctorCheck[]
  install: string[]
  suggest: string[]
}

export async function recipeDoctor(): Promise<RecipeDoctorReport> {
  const sh = await access('/bin/sh', constants.X_OK).then(() => true, () => false)
  const checks: DoctorCheck[] = [{ name: '/bin/sh', ok: sh, required: true, detail: sh ? 'found (runs recipe commands)' : 'missing: recipe commands run with /bin/sh', aptPackage: 'dash' }]
  const isolation = await detectNetworkIsolation()
  const hasUnshare = await hasCommand('unshare')
  checks.push({
    name: 'network isolation',
    ok: isolation.mode !== 'none',
    required: false,
    detail: isolation.mode === 'none' ? `${isolation.detail}${hasUnshare ? ' (namespaces are denied here: run as root, or allow unprivileged user namespaces)' : ''}` : isolation.detail,
    ...(hasUnshare ? {} : { aptPackage: 'util-linux' })
  })
  const missing = (required: boolean): string[] =>
    [...new Set(checks.filter((c) => !c.ok && c.required === required && c.aptPackage !== undefined).map((c) => c.aptPackage as string))]
  return { backend: 'recipe', ready: checks.every((c) => c.ok || !c.required), checks, install: missing(true), suggest: missing(false) }
}
