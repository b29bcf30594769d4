/**
 * A rebuilderd-format HTTP server on 127.0.0.1 for the bridge tests: the routes, JSON shapes,
 * paging and signatures of rebuilderd's daemon (kpcyrd/rebuilderd: common/src/api/v0 `PkgRelease`,
 * common/src/api/v1 `ResultPage<BinaryPackage>`, daemon/src/api/v1/util/pagination.rs,
 * daemon/src/attestation.rs with in-toto-rs Metablock links signed by Ed25519).
 *
 * The signing side is written here independently of client/bridge/in-toto-link.ts: canonical bytes
 * by a recursive key sort + JSON.stringify, the key id from the literal securesystemslib JSON,
 * and the public key PEM in in-toto-rs's SPKI form (with the NULL algorithm parameter, CRLF).
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'

export interface Record {
  id: number
  name: string
  version: string
  distribution: string
  release: string | null
  component: string | null
  architecture: string
  url: string
  status: 'GOOD' | 'BAD' | 'UNKWN' | null
  build_id: number | null
  artifact_id: number | null
  built_at: string | null
  /** The archive file's digest the rebuild reproduced (goes into the link's products). */
  sha256: string
  /** Whether rebuilderd stored an attestation for the artifact. */
  attested: boolean
}

export interface RebuilderdKeyPair {
  privateKey: KeyObject
  raw: Buffer
  /** in-toto key id (securesystemslib-compatible form, as rebuilderd signs). */
  keyid: string
  /** As /api/v1/meta/public-keys serves it. */
  pem: string
}

export function makeRebuilderdKey(): RebuilderdKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)
  const hex = raw.toString('hex')
  const keyid = createHash('sha256')
    .update(`{"keyid_hash_algorithms":["sha256","sha512"],"keytype":"ed25519","keyval":{"public":"${hex}"},"scheme":"ed25519"}`)
    .digest('hex')
  const der = Buffer.concat([Buffer.from('302c300706032b65700500032100', 'hex'), raw])
  const b64 = der.toString('base64')
  const pem = `-----BEGIN PUBLIC KEY-----\r\n${b64.match(/.{1,64}/g)!.join('\r\n')}\r\n-----END PUBLIC KEY-----\r\n`
  return { privateKey, raw, keyid, pem }
}

function sorted(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sorted)
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted((v as { [k: string]: unknown })[k])]))
  return v
}

/** An in-toto link as rebuilderd-worker writes it for one artifact, signed by `keys` in order. */
export function signedLink(file: string, sha256: string, keys: RebuilderdKeyPair[]): string {
  const signed = {
    _type: 'link',
    name: `rebuild ${file}`,
    materials: { [file.replace(/\.deb$/, '.buildinfo')]: { sha256: createHash('sha256').update(file).digest('hex') } },
    products: { [file]: { sha256, sha512: createHash('sha512').update(sha256).digest('hex') } },
    environment: null,
    byproducts: {},
    command: []
  }
  const message = Buffer.from(JSON.stringify(sorted(signed)))
  return JSON.stringify({ signatures: keys.map((k) => ({ keyid: k.keyid, sig: sign(null, message, k.privateKey).toString('hex') })), signed })
}

export interface RebuilderdServer {
  url: string
  key: RebuilderdKeyPair
  records: Record[]
  /** Attestation bodies served instead of the signed one, by "build/artifact". */
  tampered: Map<string, string>
  /** Answer If-None-Match / If-Modified-Since with 304 (rebuilderd's v0 does Last-Modified). */
  conditional: boolean
  requests: { path: string; status: number }[]
  close: () => Promise<void>
}

const fileOf = (r: Record) => r.url.split('/').pop()!

export async function startRebuilderdServer(records: Record[], key = makeRebuilderdKey()): Promise<RebuilderdServer> {
  const state: Omit<RebuilderdServer, 'url' | 'close'> = { key, records, tampered: new Map(), conditional: true, requests: [] }

  const pkgRelease = (r: Record) => ({
    name: r.name,
    version: r.version,
    status: r.status ?? 'UNKWN',
    distro: r.distribution,
    suite: r.component ?? '',
    architecture: r.architecture,
    artifact_url: r.url,
    build_id: r.build_id,
    built_at: r.built_at,
    has_diffoscope: false,
    has_attestation: r.attested
  })
  const binaryPackage = (r: Record) => ({
    id: r.id,
    name: r.name,
    version: r.version,
    distribution: r.distribution,
    release: r.release,
    component: r.component,
    architecture: r.architecture,
    url: r.url,
    status: r.status,
    build_id: r.build_id,
    artifact_id: r.artifact_id,
    diffoscope_log_id: null,
    attestation_log_id: r.attested ? r.id + 1000 : null,
    last_seen: '2026-01-01T00:00:00.000000',
    seen_in_last_sync: true
  })
  const link = (r: Record) => state.tampered.get(`${r.build_id}/${r.artifact_id}`) ?? signedLink(fileOf(r), r.sha256, [state.key])

  const handle = (req: IncomingMessage, res: ServerResponse): number => {
    const u = new URL(req.url ?? '/', 'http://x')
    const json = (body: unknown, headers: { [h: string]: string } = {}) => {
      res.writeHead(200, { 'content-type': 'application/json', ...headers })
      res.end(typeof body === 'string' ? body : JSON.stringify(body))
      return 200
    }
    const notFound = () => (res.writeHead(404).end(), 404)
    let m: RegExpExecArray | null
    if (u.pathname === '/api/v1/packages/binary') {
      const limit = Number(u.searchParams.get('limit') ?? 1000)
      const after = Number(u.searchParams.get('after') ?? 0)
      const dist = u.searchParams.get('distribution')
      const all = state.records.filter((r) => dist === null || r.distribution === dist).sort((a, b) => a.id - b.id)
      const page = all.filter((r) => r.id > after).slice(0, limit)
      const body = JSON.stringify({ total: all.length, records: page.map(binaryPackage) })
      const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`
      if (state.conditional && req.headers['if-none-match'] === etag) return res.writeHead(304, { etag }).end(), 304
      return json(body, { etag })
    }
    if (u.pathname === '/api/v0/pkgs/list') {
      // rebuilderd: Last-Modified = the newest built_at; If-Modified-Since at or after it → 304.
      const newest = Math.max(...state.records.map((r) => (r.built_at === null ? 0 : Date.parse(`${r.built_at}Z`))))
      const since = Date.parse(String(req.headers['if-modified-since'] ?? ''))
      if (state.conditional && !Number.isNaN(since) && since >= Math.floor(newest / 1000) * 1000) return res.writeHead(304).end(), 304
      return json(state.records.map(pkgRelease), { 'last-modified': new Date(newest).toUTCString() })
    }
    if ((m = /^\/api\/v1\/builds\/(\d+)\/artifacts\/(\d+)\/attestation$/.exec(u.pathname))) {
      const r = state.records.find((x) => x.attested && x.build_id === Number(m![1]) && x.artifact_id === Number(m![2]))
      return r === undefined ? notFound() : json(link(r), { 'content-type': 'application/json; charset=utf-8' })
    }
    if ((m = /^\/api\/v0\/builds\/(\d+)\/attestation$/.exec(u.pathname))) {
      // v0: the build's first artifact (lowest artifact id) with an attestation.
      const r = state.records.filter((x) => x.attested && x.build_id === Number(m![1])).sort((a, b) => a.artifact_id! - b.artifact_id!)[0]
      return r === undefined ? notFound() : json(link(r))
    }
    if (u.pathname === '/api/v1/meta/public-keys' || u.pathname === '/api/v0/public-keys') return json({ current: [state.key.pem] })
    return notFound()
  }

  const server: Server = createServer((req, res) => {
    const status = handle(req, res)
    state.requests.push({ path: req.url ?? '', status })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  })
}

/** A Debian binary package row of build `build`, artifact `artifact`, GOOD and attested unless said otherwise. */
export function debianRecord(id: number, name: string, version: string, source: string, over: Partial<Record> = {}): Record {
  const file = `${name}_${version.replace(/^\d+:/, '')}_amd64.deb`
  return {
    id,
    name,
    version,
    distribution: 'debian',
    release: 'sid',
    component: 'main',
    architecture: 'amd64',
    url: `https://deb.debian.org/debian/pool/main/${source[0]}/${source}/${file}`,
    status: 'GOOD',
    build_id: id,
    artifact_id: id,
    built_at: '2026-01-02T03:04:05.123456',
    sha256: createHash('sha256').update(file).digest('hex'),
    attested: true,
    ...over
  }
}

/** Rows of other distributions as real instances list them (they must be skipped, not abort). */
export function foreignRecords(firstId: number): Record[] {
  return [
    { id: firstId, name: 'pacman', version: '7.0.0-1', distribution: 'archlinux', release: 'core', component: null, architecture: 'x86_64', url: 'https://geo.mirror.pkgbuild.com/core/os/x86_64/pacman-7.0.0-1-x86_64.pkg.tar.zst', status: 'GOOD', build_id: 900, artifact_id: 900, built_at: null, sha256: '00'.repeat(32), attested: true },
    { id: firstId + 1, name: 'PackageKit', version: '1.2.8-6.fc41', distribution: 'fedora', release: 'f41', component: null, architecture: 'x86_64', url: 'https://dl.fedoraproject.org/pub/fedora/PackageKit-1.2.8-6.fc41.x86_64.rpm', status: 'BAD', build_id: 901, artifact_id: 901, built_at: null, sha256: '01'.repeat(32), attested: false }
  ]
}
