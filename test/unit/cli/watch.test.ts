import { describe, expect, it } from 'vitest'
import { formatVerdictEvent } from '../../../cli/commands/watch.js'
import type { VerdictEvent } from '../../../protocol/api.js'

const at = new Date('2026-06-01T00:00:00Z')
function event(from: VerdictEvent['from'], to: VerdictEvent['to'], reason = 'why'): VerdictEvent {
  return { package: 'pkg:deb/debian/sl@5.02-1?arch=source', artifact: 'sl_5.02-1_amd64.deb', sha256: 'a'.repeat(64), from, to, reason, evidenceHash: 'b'.repeat(64), previousEvidenceHash: null }
}

describe('rbq watch: verdict changes in words', () => {
  it('reproduced → unreproducible is reported as toolchain drift, not as an alarm', () => {
    const line = formatVerdictEvent(event('reproduced', 'unreproducible', "not reproducible with today's toolchain: 2 parties rebuilt other bytes (build-id)"), at)
    expect(line).toBe(
      "2026-06-01T00:00:00.000Z  pkg:deb/debian/sl@5.02-1?arch=source sl_5.02-1_amd64.deb  reproduced → unreproducible: not reproducible with today's toolchain: 2 parties rebuilt other bytes (build-id)  (was reproducible, now is not with today's toolchain; not a sign of tampering)\n"
    )
    expect(line).not.toContain('!!')
  })

  it('a change to mismatch is the tampering alarm; leaving reproduced otherwise is flagged', () => {
    expect(formatVerdictEvent(event('reproduced', 'mismatch'), at)).toContain('!! TAMPERING ALARM')
    expect(formatVerdictEvent(event(null, 'mismatch'), at)).toContain('!! TAMPERING ALARM')
    expect(formatVerdictEvent(event('unreproducible', 'mismatch'), at)).toContain('!! TAMPERING ALARM')
    expect(formatVerdictEvent(event('reproduced', 'conflict'), at)).toContain('!! was reproducible, now is not')
    expect(formatVerdictEvent(event('insufficient', 'reproduced'), at)).not.toContain('!!')
    expect(formatVerdictEvent(event('mismatch', 'mismatch'), at)).toContain('mismatch (evidence changed)')
    expect(formatVerdictEvent(event('mismatch', 'mismatch'), at)).not.toContain('!!')
  })
})
