/**
 * Worker thread of the decode pool (decode-pool.ts). Loaded from the compiled build
 * (dist/node/ingest/decode-worker.js), never from TypeScript sources. Each worker keeps its
 * own protocol module state, including the KeyObject cache of protocol/keys.ts.
 */
import { parentPort } from 'node:worker_threads'
import { decodeOne, toWire, unpackFrames, type DecodeRequest, type WorkerMessage } from './decode-job.js'

const port = parentPort
if (port === null) throw new Error('decode-worker.js must run in a worker thread')

port.on('message', (request: DecodeRequest) => {
  const message: WorkerMessage = { type: 'decoded', id: request.id, outcomes: unpackFrames(request).map((bytes) => toWire(decodeOne(bytes))) }
  port.postMessage(message)
})
port.postMessage({ type: 'ready' } satisfies WorkerMessage)
