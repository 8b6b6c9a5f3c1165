// Conn is one device's WebSocket: it asks /api/gateway which node to use, connects, pings every
// heartbeat_seconds, matches replies to frames by ref, and reconnects with backoff after any close
// (or a `reconnect` frame). The owner syncs by seq on every (re)connect: pushes are at most once.
export type ConnState = 'connecting' | 'connected' | 'disconnected'

export interface ConnOptions {
  base: string
  token: () => string
  shop?: string
  onEvent: (frame: any) => void
  onState: (state: ConnState) => void
  onOpen: () => void
}

interface Pending { resolve: (f: any) => void; reject: (e: Error) => void; timer: any }

export class Conn {
  private ws: WebSocket | null = null
  private pending = new Map<string, Pending>()
  private refs = 0
  private ping: any = null
  private retry: any = null
  private attempts = 0
  private stopped = false
  state: ConnState = 'disconnected'
  /** node is the id of the node this device is connected to (from its hello), '' before. */
  node = ''

  constructor(private opts: ConnOptions) {}

  start() { this.stopped = false; this.connect() }

  stop() {
    this.stopped = true
    clearTimeout(this.retry)
    this.ws?.close()
    this.ws = null
  }

  private setState(s: ConnState) {
    if (this.state !== s) { this.state = s; this.opts.onState(s) }
  }

  private async connect() {
    if (this.stopped) return
    this.setState(this.attempts === 0 ? 'connecting' : 'disconnected')
    let url: string
    try {
      const res = await fetch(this.opts.base + '/api/gateway', { credentials: 'omit' })
      if (!res.ok) throw new Error('gateway ' + res.status)
      url = (await res.json()).url
    } catch {
      this.schedule()
      return
    }
    if (this.stopped) return
    const q = new URLSearchParams({ token: this.opts.token() })
    if (this.opts.shop) q.set('shop', this.opts.shop)
    let ws: WebSocket
    try {
      ws = new WebSocket(url + '?' + q.toString())
    } catch {
      this.schedule()
      return
    }
    this.ws = ws
    ws.onmessage = (ev) => {
      let f: any
      try { f = JSON.parse(String(ev.data)) } catch { return }
      if (f.type === 'hello') {
        this.attempts = 0
        this.node = f.node || ''
        this.setState('connected')
        clearInterval(this.ping)
        this.ping = setInterval(() => this.frame({ type: 'ping' }), Math.max(1, (f.heartbeat_seconds || 10) - 1) * 1000)
        this.opts.onOpen()
        return
      }
      if (f.type === 'reconnect') { ws.close(); return }
      if (f.ref && this.pending.has(f.ref)) {
        const p = this.pending.get(f.ref)!
        this.pending.delete(f.ref)
        clearTimeout(p.timer)
        if (f.type === 'error') p.reject(Object.assign(new Error(f.error?.message || 'error'), { code: f.error?.code }))
        else p.resolve(f)
        return
      }
      if (f.type === 'pong') return
      this.opts.onEvent(f)
    }
    ws.onclose = () => {
      if (this.ws !== ws) return
      this.ws = null
      clearInterval(this.ping)
      for (const [, p] of this.pending) { clearTimeout(p.timer); p.reject(new Error('connection closed')) }
      this.pending.clear()
      this.setState('disconnected')
      this.schedule()
    }
    ws.onerror = () => { /* onclose follows */ }
  }

  private schedule() {
    if (this.stopped) return
    this.setState('disconnected')
    this.attempts++
    const delay = Math.min(5000, 300 * 2 ** Math.min(this.attempts - 1, 5)) * (0.75 + Math.random() / 2)
    clearTimeout(this.retry)
    this.retry = setTimeout(() => this.connect(), delay)
  }

  get connected() { return this.state === 'connected' && this.ws?.readyState === WebSocket.OPEN }

  /** frame sends a frame without waiting for a reply; false when not connected. */
  frame(f: Record<string, unknown>): boolean {
    if (!this.connected) return false
    this.ws!.send(JSON.stringify(f))
    return true
  }

  /** request sends a frame with a ref and resolves with its reply (ack, messages, ok) or rejects. */
  request(f: Record<string, unknown>, timeoutMs = 10000): Promise<any> {
    return new Promise((resolve, reject) => {
      if (!this.connected) { reject(new Error('not connected')); return }
      const ref = 'r' + (++this.refs)
      const timer = setTimeout(() => { this.pending.delete(ref); reject(new Error('timeout')) }, timeoutMs)
      this.pending.set(ref, { resolve, reject, timer })
      this.ws!.send(JSON.stringify({ ...f, ref }))
    })
  }
}
