/**
 * How the CLI reaches a running node: an API client from `--api URL` / `--data DIR` (else
 * $RBQ_API, else the data dir's api.url, else the default port), and the node-not-running
 * answer that names the command starting one with the same data dir. The API client is
 * imported on first use so `rbq --help` stays fast.
 */
import type { ApiClient } from './api-client.js'
import { RbqError } from '../protocol/errors.js'

/** Where to find the node: the flags every verb talking to a node takes. */
export interface NodeOptions {
  api?: string
  data?: string
}

export async function nodeClient(opts: NodeOptions): Promise<ApiClient> {
  const { ApiClient } = await import('./api-client.js')
  return new ApiClient({ ...(opts.api === undefined ? {} : { url: opts.api }), ...(opts.data === undefined ? {} : { dataDir: opts.data }) })
}

/**
 * Runs `fn` against the node. A node that is not running is API_UNAVAILABLE (exit 2 in the CLI)
 * with the command that starts one, with the same --data.
 */
export async function withNode<T>(opts: NodeOptions, fn: (client: ApiClient) => Promise<T>): Promise<T> {
  const client = await nodeClient(opts)
  try {
    return await fn(client)
  } catch (e) {
    if (e instanceof RbqError && e.code === 'API_UNAVAILABLE' && e.message.includes('rbq node start')) {
      const start = opts.data === undefined ? 'rbq node start' : `rbq node start --data ${opts.data}`
      throw new RbqError('API_UNAVAILABLE', e.message.replace('`rbq node start`', `\`${start}\``), { cause: e })
    }
    throw e
  }
}
