/**
 * The node's trust policy file (`<data>/policy.toml` unless configured), re-read when it changes
 * on disk (`rbq trust add` edits it while the node runs). A stat per check is the whole cost
 * of noticing; the parsed policy is kept until the file's identity (inode, size, mtime) changes.
 * TrustState (trust-state.ts) owns the node's one PolicyFile and decides when to check it.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { API_MAX_POLICY_BYTES } from '../../protocol/api.js'
import { RbqError } from '../../protocol/index.js'
import { parsePolicy, type Policy, type PolicyParseOptions } from '../consensus/policy.js'
import { readFileBounded } from '../../common/files.js'
import { errorFields, silentLogger, type Logger } from '../../common/logger.js'

export const POLICY_FILE_NAME = 'policy.toml'

export function policyPath(dataDir: string): string {
  return join(dataDir, POLICY_FILE_NAME)
}

export type PolicyState =
  | { readonly file: string; readonly generation: number; readonly policy: Policy; readonly error?: undefined }
  | {
      readonly file: string
      readonly generation: number
      readonly policy?: undefined
      readonly error: RbqError
      /** The file parsed without the threshold check, when that is its only problem: enough to explain chains. */
      readonly explainable?: Policy
    }

/** Parses policy text from an API request, naming `policy` as the source in line references. */
export function parseRequestPolicy(text: string, options: PolicyParseOptions = {}): Policy {
  try {
    return parsePolicy(text, 'policy', options)
  } catch (e) {
    if (e instanceof RbqError) throw new RbqError(e.code, e.message, { field: 'policy', cause: e })
    throw e
  }
}

export async function readPolicyFile(file: string, options: PolicyParseOptions = {}): Promise<Policy> {
  const bytes = await readFileBounded(file, API_MAX_POLICY_BYTES, 'policy file')
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw new RbqError('POLICY_INVALID', `${file}: not valid UTF-8`)
  }
  return parsePolicy(text, file, options)
}

export class PolicyFile {
  private stamp = ''
  private state: PolicyState
  private loading: Promise<PolicyState> | undefined

  /** `logger`: each (re)load is logged, loaded or refused with its error. */
  constructor(
    readonly file: string,
    private readonly logger: Logger = silentLogger()
  ) {
    this.state = { file, generation: 0, error: new RbqError('POLICY_INVALID', `policy file ${file} not read yet`) }
  }

  /** The current policy or the reason there is none; `generation` grows on every change. */
  current(): Promise<PolicyState> {
    this.loading ??= this.refresh().finally(() => (this.loading = undefined))
    return this.loading
  }

  /** Like current(), but never answers from a check that began before this call (a change just announced is seen). */
  async recheck(): Promise<PolicyState> {
    await this.loading?.catch(() => undefined)
    return this.current()
  }

  private async refresh(): Promise<PolicyState> {
    let stamp: string
    try {
      const st = await fs.stat(this.file)
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`
    } catch (e) {
      stamp = `missing:${(e as NodeJS.ErrnoException).code ?? ''}`
    }
    if (stamp === this.stamp) return this.state
    const generation = this.state.generation + 1
    try {
      const policy = await readPolicyFile(this.file)
      this.state = { file: this.file, generation, policy }
      this.logger.info({ file: this.file, generation, threshold: policy.threshold, count: policy.count, roots: policy.roots.map((r) => r.name) }, generation === 1 ? 'policy loaded' : 'policy reloaded')
    } catch (e) {
      const error =
        e instanceof RbqError && e.code === 'FILE_NOT_FOUND'
          ? new RbqError('POLICY_INVALID', `the node has no trust policy: ${this.file} does not exist (create it with \`rbq init\` or \`rbq trust add\`, or send a policy with the request)`)
          : e instanceof RbqError
            ? e
            : new RbqError('POLICY_INVALID', `${this.file}: ${(e as Error).message}`, { cause: e })
      const explainable = await readPolicyFile(this.file, { requireReachableThreshold: false }).catch(() => undefined)
      this.state = { file: this.file, generation, error, ...(explainable === undefined ? {} : { explainable }) }
      this.logger.warn({ file: this.file, generation, ...errorFields(error) }, 'policy refused: no verdicts until it is fixed')
    }
    this.stamp = stamp
    return this.state
  }
}
