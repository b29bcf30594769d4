/** `rbq inspect FRAME`: verify a frame file and print what it says. Exit 0 valid, 1 invalid. */
import type { Command } from 'commander'
import { readFrameFile } from '../../common/files.js'
import { decodeFrame, frameText, RbqError } from '../../protocol/index.js'
import { CliExit, EXIT_NEGATIVE, printJson } from '../exit.js'
import { formatFrame } from '../format.js'

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('verify a frame file (signature, schema, canonical form) and print its statement')
    .argument('<frame>', 'frame file written by rbq attest / rbq delegate')
    .option('--json', 'print the decoded statement as JSON')
    .option('--envelope', 'print only the DSSE envelope (for other DSSE/in-toto tools)')
    .action(async (path: string, opts: { json?: boolean; envelope?: boolean }) => {
      const bytes = await readFrameFile(path).catch((e: unknown) => {
        // An oversized file is an invalid frame, not an I/O problem.
        if (e instanceof RbqError && e.code === 'INPUT_TOO_LARGE') return e
        throw e
      })
      let frame
      try {
        if (bytes instanceof RbqError) throw bytes
        frame = decodeFrame(bytes)
      } catch (e) {
        if (!(e instanceof RbqError)) throw e
        if (opts.json) printJson({ valid: false, error: e.toJSON() })
        throw new CliExit(EXIT_NEGATIVE, `invalid: ${e.message} [${e.code}]`)
      }
      if (opts.envelope) {
        process.stdout.write(JSON.stringify(frame.frame.envelope) + '\n')
      } else if (opts.json) {
        printJson({
          valid: true,
          kind: frame.kind,
          id: frame.id,
          signer: { keyid: frame.signer.keyid, publicKey: frame.signer.text },
          statement: frame.statement,
          frame: JSON.parse(frameText(frame.bytes)) as unknown
        })
      } else {
        process.stdout.write(formatFrame(frame))
      }
    })
}
