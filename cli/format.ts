/** Human-readable renderings shared by the verbs. */
import type { VerifiedFrame } from '../protocol/index.js'

const row = (label: string, value: string) => `  ${label.padEnd(10)} ${value}\n`

/** Summary of a verified frame for `rbq inspect` and friends. */
export function formatFrame(f: VerifiedFrame): string {
  let out = `valid ${f.kind}\n` + row('frame id', f.id) + row('signer', `${f.signer.keyid}`) + row('publicKey', f.signer.text)
  switch (f.kind) {
    case 'attestation': {
      const p = f.statement.predicate
      out += row('package', p.package) + row('outcome', p.outcome)
      out += row('builder', `seq ${p.builder.seq}, backend ${p.builder.backend}, ${p.builder.software}`)
      for (const s of f.statement.subject) out += row('subject', `${s.name} sha256:${s.digest.sha256}`)
      for (const u of p.upstream) out += row('upstream', `${u.name} sha256:${u.digest.sha256}`)
      out += row('inputs', `sha256:${p.inputs.digest.sha256}`)
      out += row('built', `${p.startedOn} .. ${p.finishedOn}`)
      if (p.diff) out += row('diff', `[${p.diff.tags.join(', ')}] ${p.diff.summary.split('\n')[0] ?? ''}`)
      break
    }
    case 'delegation': {
      const s = f.statement
      out += row('delegate', `${s.delegate.keyid} "${s.name}"`) + row('scope', s.scope.join(' '))
      out += row('version', String(s.version)) + row('maxDepth', String(s.maxDepth)) + row('expires', s.expires)
      if (s.revoked) out += row('revoked', 'yes')
      break
    }
    case 'equivocation': {
      out += row('accused', f.proof.keyid) + row('seq', String(f.proof.seq))
      out += row('frame a', f.proof.a.id) + row('frame b', f.proof.b.id)
      break
    }
  }
  return out
}
