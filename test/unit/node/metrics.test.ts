/**
 * The node's registry with process metrics and a real libp2p host in it: standard `process_*` /
 * `nodejs_*` names, no name clash with libp2p's metrics, and no gauge named like a counter.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { afterAll, describe, expect, it } from 'vitest'
import { gaugeName, Metrics } from '../../../node/metrics.js'
import { createHost, type Host } from '../../../node/p2p/host.js'

let host: Host | undefined
afterAll(async () => {
  await host?.stop()
})

describe('metrics', () => {
  it('process metrics keep their standard names next to libp2p\'s; gauges never end in _total', async () => {
    const metrics = new Metrics({ defaultMetrics: true })
    host = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], metricsRegistry: metrics.registry })
    await host.start()
    const text = await metrics.text()
    expect(text).toMatch(/^# TYPE process_cpu_seconds_total counter$/m)
    expect(text).toMatch(/^# TYPE process_resident_memory_bytes gauge$/m)
    expect(text).toMatch(/^# TYPE nodejs_heap_size_used_bytes gauge$/m)
    expect(text).not.toMatch(/^# TYPE rbq_(process|nodejs)_/m)
    expect(text).toMatch(/^# TYPE libp2p_tcp_inbound_connections gauge$/m)
    expect(text).toMatch(/^libp2p_tcp_inbound_connections\{address="127\.0\.0\.1:\d+"\} 0$/m)
    // prom-client's standard nodejs_active_*_total gauges keep the names stock Node.js dashboards query.
    const gaugesNamedTotal = [...text.matchAll(/^# TYPE (\S+_total) (?!counter)\S+$/gm)].map((m) => m[1]!)
    expect(gaugesNamedTotal.filter((n) => !/^nodejs_active_[a-z]+_total$/.test(n))).toEqual([])
    // Counters keep their names.
    expect(text).toMatch(/^# TYPE libp2p_data_transfer_bytes_total counter$/m)
  })

  it('gaugeName drops only a trailing _total', () => {
    expect(gaugeName('libp2p_tcp_inbound_connections_total')).toBe('libp2p_tcp_inbound_connections')
    expect(gaugeName('libp2p_total_things')).toBe('libp2p_total_things')
  })
})
