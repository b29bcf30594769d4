/**
 * `rbq build-helper`: the privileged half of a node that rebuilds Debian packages. It listens
 * on a local Unix socket (0660, group rbq; or the socket systemd passes, LISTEN_FDS), reads one
 * strictly checked request per connection (protocol.ts), builds it with the same builders the
 * node uses in-process (local-builder.ts), streams progress, then the build log and the result,
 * and forgets the job. It holds no keys and signs nothing: the unprivileged node attests.
 *
 * What a request can make it do is bounded: a Debian source+version from the configured mirror
 * (signatures checked as always), or a recipe that lives in the helper's own recipes_dir with
 * the SHA-256 the node scheduled. Anything else gets a typed error and the helper keeps serving.
 * A connection that closes aborts its build.
 */
import { createReadStream, promises as fs } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { setPriority } from 'node:os'
import { join, sep } from 'node:path'
import { RbqError, type ErrorCode } from '../../protocol/index.js'
import { sha256File } from '../../common/files.js'
import { errorFields, silentLogger, type Logger } from '../../common/logger.js'
import type { RebuildConfig } from '../rebuild/rebuild-config.js'
import type { JobTarget } from '../rebuild/scheduler.js'
import { localBuilder, type TargetBuilder } from './local-builder.js'
import { encodeMessage, LineSplitter, LOG_CHUNK_BYTES, MAX_REQUEST_BYTES, parseBuildRequest, toWire, type HelperMessage } from './helper-protocol.js'

export interface BuildHelperInit {
  /** Socket path to create; ignored when systemd passes a socket (`listenFd`). */
  socket?: string
  /** A listening socket inherited from systemd (fd 3 with LISTEN_FDS=1). */
  listenFd?: number
  /** Group that may connect (name or gid); the socket is 0660. Unset: the helper's own group. */
  group?: string
  /** Build cache: Debian indexes and build roots under `debian/`, recipe work under `rebuild/`. */
  cacheDir: string
  rebuild: Pick<RebuildConfig, 'concurrency' | 'requireNetworkIsolation' | 'debian' | 'recipesDir'>
  logger?: Logger
}

/** The socket systemd handed over (sd_listen_fds): fd 3 when LISTEN_PID is us and LISTEN_FDS ≥ 1. */
export function systemdListenFd(env: NodeJS.ProcessEnv = process.env): number | undefined {
  if (env.LISTEN_PID !== String(process.pid)) return undefined
  return Number(env.LISTEN_FDS ?? '0') >= 1 ? 3 : undefined
}

/** A group name from /etc/group, or a numeric gid. */
export async function resolveGroup(group: string): Promise<number> {
  if (/^[0-9]+$/.test(group)) return Number(group)
  const lines = (await fs.readFile('/etc/group', 'utf8')).split('\n')
  for (const line of lines) {
    const [name, , gid] = line.split(':')
    if (name === group && gid !== undefined && /^[0-9]+$/.test(gid)) return Number(gid)
  }
  throw new RbqError('USAGE', `group ${JSON.stringify(group)} does not exist (create it, e.g. with \`rbq init --systemd --debian-rebuilds\`, or pass --group)`)
}

export class BuildHelper {
  private readonly server: Server
  private readonly build: TargetBuilder
  private readonly logger: Logger
  private readonly sockets = new Set<Socket>()
  private running = 0
  private readonly waiting: (() => void)[] = []
  private recipesRoot: string | undefined

  private constructor(private readonly init: BuildHelperInit) {
    this.logger = init.logger ?? silentLogger()
    this.build = localBuilder({ cacheDir: init.cacheDir, debianCacheDir: init.rebuild.debian.cacheDir ?? join(init.cacheDir, 'debian'), rebuild: init.rebuild })
    this.server = createServer({ allowHalfOpen: false }, (socket) => this.serve(socket))
  }

  static async start(init: BuildHelperInit): Promise<BuildHelper> {
    const helper = new BuildHelper(init)
    await helper.listen()
    return helper
  }

  /** The socket path (or `fd:N`). */
  get address(): string {
    return this.init.listenFd === undefined ? (this.init.socket as string) : `fd:${this.init.listenFd}`
  }

  private async listen(): Promise<void> {
    const { init } = this
    for (const dir of ['work', 'sources', 'helper-jobs']) await fs.mkdir(join(init.cacheDir, 'rebuild', dir), { recursive: true, mode: 0o700 })
    await fs.rm(join(init.cacheDir, 'rebuild', 'helper-jobs'), { recursive: true, force: true }) // a crash's
    await fs.mkdir(join(init.cacheDir, 'rebuild', 'helper-jobs'), { recursive: true, mode: 0o700 })
    if (init.rebuild.recipesDir !== undefined) this.recipesRoot = await fs.realpath(init.rebuild.recipesDir).catch(() => undefined)
    // Builds yield to everything else on the machine (the unit adds CPU/IO idle scheduling).
    try {
      setPriority(19)
    } catch {
      // not allowed: keep the inherited priority
    }
    const listening = new Promise<void>((resolve, reject) => {
      this.server.once('error', (e) => reject(new RbqError('BUILDER_UNAVAILABLE', `build helper cannot listen on ${this.address}: ${e.message}`, { cause: e })))
      this.server.once('listening', () => resolve())
    })
    if (init.listenFd !== undefined) {
      this.server.listen({ fd: init.listenFd })
      await listening
      return
    }
    if (init.socket === undefined) throw new RbqError('USAGE', 'the build helper needs a socket path (--socket) or a socket from systemd')
    await fs.mkdir(join(init.socket, '..'), { recursive: true, mode: 0o755 })
    await fs.rm(init.socket, { force: true }) // a previous run's
    this.server.listen(init.socket)
    await listening
    const gid = init.group === undefined ? undefined : await resolveGroup(init.group)
    if (gid !== undefined) await fs.chown(init.socket, process.getuid?.() ?? 0, gid)
    await fs.chmod(init.socket, 0o660)
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket)
    const splitter = new LineSplitter(MAX_REQUEST_BYTES)
    const abort = new AbortController()
    let started = false
    socket.on('close', () => {
      this.sockets.delete(socket)
      abort.abort(new RbqError('BUILDER_UNAVAILABLE', 'the node closed the build connection'))
    })
    socket.on('error', () => {}) // a client gone mid-write; 'close' follows
    socket.setTimeout(10_000, () => {
      if (!started) this.refuse(socket, 'HELPER_REQUEST_INVALID', 'build helper request: no complete request line within 10 s')
    })
    socket.on('data', (chunk: Buffer) => {
      if (started) return // one request per connection; anything after it is ignored
      let lines: Buffer[]
      try {
        lines = splitter.push(chunk)
      } catch (e) {
        return this.refuse(socket, 'HELPER_REQUEST_INVALID', `build helper request: ${(e as Error).message}`)
      }
      const line = lines[0]
      if (line === undefined) return
      started = true
      socket.setTimeout(0)
      void this.handle(line, socket, abort.signal)
    })
  }

  private refuse(socket: Socket, code: ErrorCode, message: string): void {
    this.logger.warn({ code, err: message }, 'build helper refused a request')
    socket.end(encodeMessage({ type: 'error', code, message }))
  }

  private async handle(line: Buffer, socket: Socket, signal: AbortSignal): Promise<void> {
    let target: JobTarget
    let timeoutSeconds: number
    try {
      ;({ target, timeoutSeconds } = parseBuildRequest(line))
      if (target.backend === 'recipe') await this.checkRecipe(target)
    } catch (e) {
      const code = e instanceof RbqError ? e.code : 'HELPER_REQUEST_INVALID'
      return this.refuse(socket, code, (e as Error).message)
    }
    const send = (m: HelperMessage): Promise<void> =>
      new Promise((resolve) => {
        if (socket.destroyed || !socket.write(encodeMessage(m))) socket.once('drain', resolve).once('close', resolve)
        else resolve()
      })
    await this.acquire()
    const outDir = await fs.mkdtemp(join(this.init.cacheDir, 'rebuild', 'helper-jobs', 'job-'))
    const what = target.backend === 'recipe' ? target.recipe : `${target.source} ${target.version}`
    try {
      if (signal.aborted) return
      void send({ type: 'accepted' })
      this.logger.info({ target: what }, 'build started')
      const result = await this.build(target, {
        outDir,
        signal,
        timeoutMs: timeoutSeconds * 1000,
        onProgress: (e) => {
          if (e.logLine === undefined) void send({ type: 'progress', phase: e.phase, message: e.message })
        }
      })
      for await (const chunk of createReadStream(result.log.path, { highWaterMark: LOG_CHUNK_BYTES })) await send({ type: 'log', data: (chunk as Buffer).toString('base64') })
      this.logger.info({ target: what, package: result.package, outcome: result.outcome }, 'build finished')
      socket.end(encodeMessage({ type: 'result', result: toWire(result) }))
    } catch (e) {
      if (signal.aborted) {
        this.logger.info({ target: what }, 'build aborted: the node closed the connection')
        return
      }
      const code: ErrorCode = e instanceof RbqError ? e.code : 'INTERNAL'
      this.logger.warn({ target: what, ...errorFields(e) }, 'build failed without a result')
      socket.end(encodeMessage({ type: 'error', code, message: (e as Error).message }))
    } finally {
      await fs.rm(outDir, { recursive: true, force: true })
      this.release()
    }
  }

  /** A recipe is built only from the helper's own recipes_dir, and only the version the node scheduled. */
  private async checkRecipe(target: Extract<JobTarget, { backend: 'recipe' }>): Promise<void> {
    if (this.recipesRoot === undefined) throw new RbqError('HELPER_REQUEST_INVALID', 'build helper request: this helper builds no recipes ([rebuild] recipes_dir is not set in its config)')
    const real = await fs.realpath(target.recipe).catch(() => undefined)
    if (real === undefined || !real.startsWith(this.recipesRoot + sep)) {
      throw new RbqError('HELPER_REQUEST_INVALID', `build helper request: ${target.recipe} is not a recipe in ${this.recipesRoot}`)
    }
    const { sha256 } = await sha256File(real)
    if (sha256 !== target.sha256) throw new RbqError('HELPER_REQUEST_INVALID', `build helper request: ${target.recipe} changed since the node scheduled it (SHA-256 differs)`)
  }

  private async acquire(): Promise<void> {
    if (this.running < this.init.rebuild.concurrency) {
      this.running++
      return
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve))
    this.running++
  }

  private release(): void {
    this.running--
    this.waiting.shift()?.()
  }
}
