// The browser tests' harness: a real `bin/shopdesk serve` on free ports with a temp data dir
// (embedded, or MariaDB + Redis), a TCP proxy the test can cut, Debian's Chromium through
// playwright-core, console-error capture and screenshots.
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, mkdirSync, rmSync, openSync, readFileSync, existsSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve, extname, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import net from 'node:net'
import http from 'node:http'

const here = dirname(fileURLToPath(import.meta.url))
export const ROOT = resolve(here, '../../..')
export const DIST = resolve(ROOT, 'admin-ui/dist')
export const ARTIFACTS = resolve(ROOT, 'admin-ui/web/test-results')
export const BIN = process.env.SHOPDESK_BIN || resolve(ROOT, 'bin/shopdesk')
export const CHROMIUM = process.env.SHOPDESK_CHROMIUM || '/usr/bin/chromium'

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

export async function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer()
    s.once('error', rej)
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)) })
  })
}

export async function waitFor(what, f, timeoutMs = 15000, everyMs = 100) {
  const end = Date.now() + timeoutMs
  let last
  while (Date.now() < end) {
    try { const v = await f(); if (v) return v } catch (e) { last = e }
    await sleep(everyMs)
  }
  throw new Error(`timed out waiting for ${what}${last ? ': ' + last.message : ''}`)
}

/** CutProxy forwards TCP to a target; cut() drops every connection that carried a staff token (st1.) and refuses new ones. */
export class CutProxy {
  constructor(target) { this.target = target; this.cutting = false; this.conns = new Set() }
  async listen(port) {
    this.server = net.createServer((c) => this.handle(c))
    await new Promise((r) => this.server.listen(port, '127.0.0.1', r))
    this.port = this.server.address().port
  }
  handle(client) {
    const up = net.connect(this.target, '127.0.0.1')
    const conn = { client, up, staff: false }
    this.conns.add(conn)
    const done = () => { this.conns.delete(conn); client.destroy(); up.destroy() }
    client.on('data', (b) => {
      if (!conn.staff && b.includes('st1.')) conn.staff = true
      if (conn.staff && this.cutting) { done(); return }
      up.write(b)
    })
    up.on('data', (b) => client.write(b))
    client.on('close', done); up.on('close', done)
    client.on('error', done); up.on('error', done)
  }
  cut() {
    this.cutting = true
    for (const c of [...this.conns]) if (c.staff) { c.client.destroy(); c.up.destroy(); this.conns.delete(c) }
  }
  restore() { this.cutting = false }
  close() { for (const c of this.conns) { c.client.destroy(); c.up.destroy() } return new Promise((r) => this.server.close(r)) }
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png' }

/**
 * Front serves the built UI itself and passes everything else to the node, for a binary whose
 * app/http.go does not call mountUI yet. Once the binary serves the UI, the tests use it directly.
 */
export class Front {
  constructor(target) { this.target = target }
  file(path) {
    if (path === '/') return 'store/index.html'
    if (path === '/widget.js') return 'widget.js'
    if (path === '/app' || path.startsWith('/app/')) {
      const p = path.slice(1)
      return existsSync(join(DIST, p)) && statSync(join(DIST, p)).isFile() ? p : 'app/index.html'
    }
    if (path.startsWith('/store/') || path.startsWith('/assets/')) return path.slice(1)
    return null
  }
  async listen() {
    this.server = http.createServer((req, res) => {
      const f = req.method === 'GET' ? this.file(new URL(req.url, 'http://x').pathname) : null
      if (f) {
        try {
          const body = readFileSync(join(DIST, f))
          res.writeHead(200, { 'Content-Type': TYPES[extname(f)] || 'application/octet-stream', 'Cache-Control': 'no-cache' })
          res.end(body)
        } catch { res.writeHead(404); res.end('{"error":{"code":"ENOTFOUND","message":"no such file"}}') }
        return
      }
      const up = http.request({ host: '127.0.0.1', port: this.target, method: req.method, path: req.url, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode, ur.headers)
        ur.pipe(res)
      })
      up.on('error', () => { res.destroy() })
      req.pipe(up)
    })
    this.server.on('upgrade', (req, sock, head) => {
      const up = net.connect(this.target, '127.0.0.1', () => {
        let h = `${req.method} ${req.url} HTTP/1.1\r\n`
        for (let i = 0; i < req.rawHeaders.length; i += 2) h += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`
        up.write(h + '\r\n')
        if (head.length) up.write(head)
        sock.pipe(up); up.pipe(sock)
      })
      const done = () => { sock.destroy(); up.destroy() }
      up.on('error', done); sock.on('error', done); up.on('close', done); sock.on('close', done)
    })
    await new Promise((r) => this.server.listen(0, '127.0.0.1', r))
    this.port = this.server.address().port
  }
  close() { this.server.closeAllConnections?.(); return new Promise((r) => this.server.close(r)) }
}

function mysqlArgs(dsn) {
  const m = /^([^:@]+)(?::([^@]*))?@tcp\(([^:)]+):?(\d*)\)\//.exec(dsn)
  if (!m) throw new Error('cannot parse SHOPDESK_TEST_MYSQL_DSN ' + dsn)
  const a = ['-h', m[3], '-P', m[4] || '3306', '-u', m[1]]
  if (m[2]) a.push('-p' + m[2])
  return a
}

/** Backends: embedded, or a fresh MariaDB database and Redis prefix (dropped at close). */
export function backend(mode) {
  if (mode === 'embedded') return { args: [], close() {} }
  const base = process.env.SHOPDESK_TEST_MYSQL_DSN || 'root@tcp(127.0.0.1:3306)/'
  const redis = process.env.SHOPDESK_TEST_REDIS_ADDR || '127.0.0.1:6379'
  const [rh, rp] = redis.split(':')
  const id = Date.now().toString(36) + Math.random().toString(36).slice(2, 8)
  const db = 'shopdesk_e2e_' + id
  const prefix = 'sde2e' + id + ':'
  const my = mysqlArgs(base)
  try {
    execFileSync('mysql', [...my, '-e', `CREATE DATABASE ${db} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`], { stdio: 'pipe' })
    execFileSync('redis-cli', ['-h', rh, '-p', rp || '6379', 'ping'], { stdio: 'pipe' })
  } catch (e) {
    return { unavailable: `MariaDB or Redis unreachable (${String(e.stderr || e.message).trim().split('\n')[0]})` }
  }
  const i = base.lastIndexOf('/')
  const dsn = base.slice(0, i + 1) + db + '?parseTime=true'
  return {
    args: ['--mysql-dsn', dsn, '--redis-addr', redis, '--redis-prefix', prefix],
    close() {
      try { execFileSync('mysql', [...my, '-e', `DROP DATABASE IF EXISTS ${db}`], { stdio: 'pipe' }) } catch { /* best effort */ }
      try { execFileSync('sh', ['-c', `redis-cli -h ${rh} -p ${rp || 6379} --scan --pattern '${prefix}*' | xargs -r redis-cli -h ${rh} -p ${rp || 6379} del`], { stdio: 'pipe' }) } catch { /* best effort */ }
    },
  }
}

/**
 * startNode runs bin/shopdesk serve --demo behind a CutProxy whose address is the node's public URL.
 * opts.be shares a backend between the nodes of a cluster (its owner closes it); opts.extra are
 * more flags (e.g. --node-id).
 */
export async function startNode(mode, name, opts = {}) {
  const be = opts.be || backend(mode)
  if (be.unavailable) return { unavailable: be.unavailable }
  const data = mkdtempSync(join(tmpdir(), 'shopdesk-e2e-'))
  mkdirSync(ARTIFACTS, { recursive: true })
  // The proxy listens first, on a port of its own, so that its address can be the node's public URL;
  // its target is set once the node is up.
  const proxy = new CutProxy(0)
  await proxy.listen(0)
  const log = openSync(join(ARTIFACTS, `${name}-server.log`), 'w')
  // A port found free may be taken by another process before the node binds it: try another.
  let proc, exited, port, direct
  for (let attempt = 1; ; attempt++) {
    port = await freePort()
    const args = ['serve', '--addr', `127.0.0.1:${port}`, '--public-url', `http://127.0.0.1:${proxy.port}`, '--data', data, '--demo',
      '--bcrypt-cost', '4', '--operator-token', 'e2e-operator', ...be.args, ...(opts.extra || [])]
    const p = spawn(BIN, args, { stdio: ['ignore', log, log] })
    proc = p
    exited = null
    p.on('exit', (code) => { if (proc === p) exited = code })
    p.on('error', (e) => { if (proc === p) exited = 'error: ' + e.message })
    direct = `http://127.0.0.1:${port}`
    try {
      await waitFor('the node to be ready', async () => {
        if (exited !== null) throw new Error('shopdesk exited with ' + exited)
        const r = await fetch(direct + '/readyz'); return r.ok
      }, 30000)
      break
    } catch (e) {
      if (attempt >= 3 || exited === null) throw e
    }
  }
  const w = await fetch(direct + '/widget.js')
  const served = w.ok && (w.headers.get('content-type') || '').includes('javascript') && (await w.text()).includes('Shopdesk')
  let front = null
  let target = port
  if (!served) {
    front = new Front(port)
    await front.listen()
    target = front.port
  }
  proxy.target = target
  return {
    mode, direct, uiMounted: served,
    /** buyer pages load from here (not through the cut proxy; their WebSocket follows the gateway). */
    shop: `http://127.0.0.1:${target}`,
    /** the agent's pages, REST and WebSocket go through the cut proxy. */
    agent: `http://127.0.0.1:${proxy.port}`,
    proxy,
    async stop() {
      await proxy.close()
      if (front) await front.close()
      if (exited === null) {
        proc.kill('SIGTERM')
        await waitFor('the node to stop', () => exited !== null, 15000).catch(() => proc.kill('SIGKILL'))
      }
      if (!opts.be) be.close()
      rmSync(data, { recursive: true, force: true })
    },
  }
}

/** api calls the node's REST API directly (as the test's own manager or buyer). */
export async function api(base, method, path, token, body, shop) {
  const headers = { 'Content-Type': 'application/json' }
  if (token) headers.Authorization = 'Bearer ' + token
  if (shop) headers['X-Shop'] = shop
  const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const data = await r.json().catch(() => ({}))
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(data)}`)
  return data
}

export const CHROME_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']
