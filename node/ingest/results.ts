/**
 * An ingest result from an error. The status a code gives (`rejected`: the bytes are invalid;
 * `duplicate`; `ignored`: everything else) is the gossip REJECT/IGNORE rule, decided in one place:
 * node/p2p/gossip-decision.ts.
 */
import { asRbqError, type ErrorCode } from '../../protocol/index.js'
import { gossipResultOfCode } from '../p2p/gossip-decision.js'
import type { IngestResult, IngestStatus } from './ingest-types.js'

function statusOfCode(code: ErrorCode): Exclude<IngestStatus, 'stored'> {
  if (code === 'DUPLICATE') return 'duplicate'
  return gossipResultOfCode(code) === 'reject' ? 'rejected' : 'ignored'
}

export function failure(e: unknown, id?: string): IngestResult {
  const error = asRbqError(e)
  return id === undefined ? { status: statusOfCode(error.code), error } : { status: statusOfCode(error.code), id, error }
}
