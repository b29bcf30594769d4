import { describe, expect, it } from 'vitest'
import { BatchGate, DEFAULT_API_LIMITS, effectiveConnectionCap, HostCheck } from '../../../../node/api/limits.js'
import { configFromToml } from '../../../../node/node-config.js'
import { RbqError } from '../../../../protocol/index.js'

describe('HostCheck', () => {
  const check = new HostCheck('127.0.0.1', ['rbq.example.org', 'proxy.example:8443'])

  it('answers loopback names on the listen port only', () => {
    for (const h of ['127.0.0.1:4778', 'localhost:4778', 'LocalHost:4778', '[::1]:4778']) expect(check.allows(h, 4778), h).toBe(true)
    for (const h of ['127.0.0.1:4779', 'localhost', '127.0.0.1', 'evil.example:4778', 'localhost.evil.example:4778', '127.0.0.1.nip.io:4778', '', 'a b', '[::1'])
      expect(check.allows(h, 4778), h).toBe(false)
    expect(check.allows(undefined, 4778)).toBe(false)
  })

  it('answers configured names: any port without one, that port with one', () => {
    expect(check.allows('rbq.example.org', 4778)).toBe(true)
    expect(check.allows('rbq.example.org:443', 4778)).toBe(true)
    expect(check.allows('proxy.example:8443', 4778)).toBe(true)
    expect(check.allows('proxy.example:8444', 4778)).toBe(false)
    expect(check.allows('proxy.example', 4778)).toBe(false)
  })

  it('answers the listen address when it is not a wildcard', () => {
    expect(new HostCheck('192.0.2.7', []).allows('192.0.2.7:4778', 4778)).toBe(true)
    expect(new HostCheck('0.0.0.0', []).allows('0.0.0.0:4778', 4778)).toBe(false)
    expect(new HostCheck('fd00::1', []).allows('[fd00::1]:4778', 4778)).toBe(true)
  })

  it('accepts only origins on those names', () => {
    expect(check.allowsOrigin('http://127.0.0.1:4778', 4778)).toBe(true)
    expect(check.allowsOrigin('https://rbq.example.org', 4778)).toBe(true)
    for (const o of ['null', 'http://evil.example', 'http://localhost:4779', 'file://', 'chrome-extension://abc', 'http://127.0.0.1']) expect(check.allowsOrigin(o, 4778), o).toBe(false)
  })
})

describe('connection cap', () => {
  it('stays below half of what the open-files limit leaves', () => {
    expect(effectiveConnectionCap(1024, 20_000)).toBe(1024)
    expect(effectiveConnectionCap(1024, 1024)).toBe(384)
    expect(effectiveConnectionCap(1024, undefined)).toBe(1024)
    expect(effectiveConnectionCap(1024, 100)).toBe(16)
  })
})

describe('BatchGate', () => {
  it('runs `running` at once, queues `queued`, refuses the rest with QUEUE_FULL; a release hands the slot on', async () => {
    const gate = new BatchGate(1, 1)
    const first = await gate.enter()
    const second = gate.enter()
    await expect(gate.enter()).rejects.toSatisfy((e) => e instanceof RbqError && e.code === 'QUEUE_FULL')
    expect(gate.waitingCount).toBe(1)
    first()
    first() // idempotent
    const release = await second
    expect(gate.inFlight).toBe(1)
    release()
    expect(gate.inFlight).toBe(0)
  })
})

describe('[api] limits in the config', () => {
  it('defaults, and every key read', () => {
    expect(configFromToml({ toml: {} }).api.limits).toEqual(DEFAULT_API_LIMITS)
    const limits = configFromToml({
      toml: {
        api: {
          allowed_hosts: ['rbq.example.org', '[fd00::1]:4778'],
          max_connections: 64,
          headers_timeout_seconds: 5,
          request_timeout_seconds: 20,
          keep_alive_timeout_seconds: 2,
          min_body_bytes_per_second: 0,
          max_batches: 1,
          max_queued_batches: 0
        }
      }
    }).api.limits
    expect(limits).toEqual({
      allowedHosts: ['rbq.example.org', '[fd00::1]:4778'],
      maxConnections: 64,
      headersTimeoutSeconds: 5,
      requestTimeoutSeconds: 20,
      keepAliveTimeoutSeconds: 2,
      minBodyBytesPerSecond: 0,
      maxBatches: 1,
      maxQueuedBatches: 0
    })
  })

  it('names the field of a mistake', () => {
    const fieldOf = (api: Record<string, unknown>) => {
      try {
        configFromToml({ toml: { api } })
      } catch (e) {
        return (e as RbqError).field
      }
      return undefined
    }
    expect(fieldOf({ allowed_hosts: ['http://x'] })).toBe('api.allowed_hosts[0]')
    expect(fieldOf({ headers_timeout_seconds: 30, request_timeout_seconds: 10 })).toBe('api.headers_timeout_seconds')
    expect(fieldOf({ max_batches: 0 })).toBe('api.max_batches')
  })
})
