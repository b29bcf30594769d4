import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Store } from '../../../../node/db/store.js'
import { createLogger } from '../../../../common/logger.js'
import { PolicyFile } from '../../../../node/trust/policy-file.js'
import { TrustedKeys } from '../../../../node/trust/trusted-keys.js'
import { generateSigningKey, signEquivocationProof, type SigningKey } from '../../../../protocol/index.js'
import { attestation, delegation } from '../../../utils/frames.js'
import { makeTempDir } from '../../../utils/tmp.js'

let dir: string
let cleanup: () => Promise<void>
let store: Store
beforeEach(async () => {
  ;({ dir, cleanup } = await makeTempDir('rbq-trusted-'))
  store = await Store.open(join(dir, 'db'))
})
afterEach(async () => {
  await store.close()
  await cleanup()
})

const policyText = (roots: SigningKey[]) =>
  `threshold = 1\n${roots.map((k, i) => `[[root]]\nname = "root-${i}"\nkey = "${k.publicKey.text}"\n`).join('')}`

describe('TrustedKeys (the quota exemption)', () => {
  it('trusts the roots and every key delegated from them, nobody else; follows policy edits and proofs', async () => {
    const [org, server, sub, stranger, other] = [1, 2, 3, 4, 5].map(() => generateSigningKey()) as [SigningKey, SigningKey, SigningKey, SigningKey, SigningKey]
    const file = join(dir, 'policy.toml')
    await writeFile(file, policyText([org]))
    await store.putFrames([delegation(org, server), delegation(server, sub), delegation(stranger, other)])
    const trusted = new TrustedKeys({ store, policy: new PolicyFile(file), logger: createLogger({ level: 'silent' }) })
    await trusted.start()
    try {
      const ids = (...keys: SigningKey[]) => keys.map((k) => trusted.isTrusted(k.publicKey.keyid))
      expect(ids(org, server, sub, stranger, other)).toEqual([true, true, true, false, false])

      // A new policy naming only the stranger: the organisation's chain is a stranger now.
      await writeFile(file, policyText([stranger]) + '# edited\n')
      await trusted.refresh()
      expect(ids(org, server, sub, stranger, other)).toEqual([false, false, false, true, true])

      // An equivocation proof against `other` removes it.
      const a = attestation(other, 1)
      const b = attestation(other, 1, { variant: 2 })
      await store.putFrames([signEquivocationProof(org, a, b)])
      await trusted.refresh()
      expect(ids(stranger, other)).toEqual([true, false])

      // A broken policy file: nobody is trusted (strangers' quotas apply to all).
      await writeFile(file, 'threshold = "two"\n')
      await trusted.refresh()
      expect(ids(org, stranger)).toEqual([false, false])
    } finally {
      trusted.stop()
    }
  })
})
