// The workspace's state: the signed-in staff member, the WebSocket, the conversations and their
// threads. Every change arrives as a push or is pulled by seq (on reconnect, on a gap, and by a
// periodic check of last_seq), so nothing shown depends on a push arriving.
import { reactive, markRaw } from 'vue'
import { Api, ApiError, clientMsgID } from '../shared/api'
import { Conn, type ConnState } from '../shared/conn'
import { Thread } from '../shared/thread'
import { pullAfter, loadLatest, loadOlder } from '../shared/sync'
import type { Body, Conversation, Message, Session, Shop, Staff } from '../shared/types'

export interface Pending { client_msg_id: string; body: Body; state: 'sending' | 'failed'; at: string }

export interface ConvView {
  id: number
  conv: Conversation
  session?: Session
  unread: number
  msgs: Message[]
  pending: Pending[]
  peerRead: number
  myRead: number
  typingUntil: number
  more: boolean
  note: string
}

interface Auth { token: string; staff: Staff; shop: Shop }

const AUTH_KEY = 'shopdesk.auth'

function loadAuth(): Auth | null {
  try { return JSON.parse(localStorage.getItem(AUTH_KEY) || 'null') } catch { return null }
}

export const state = reactive({
  auth: loadAuth() as Auth | null,
  conn: 'disconnected' as ConnState,
  /** node: the cluster node the WebSocket is connected to (from its hello). */
  node: '',
  status: 'offline',
  convs: {} as Record<number, ConvView>,
  selected: 0,
  /** focus: a message of the selected conversation to scroll to (from a search hit). */
  focus: { conv: 0, seq: 0 },
  now: Date.now(),
  error: '',
})

const threads = markRaw(new Map<number, Thread>())
let api: Api | null = null
let conn: Conn | null = null
let timers: any[] = []
let listed = false
let lastTyping = 0

export function getApi(): Api {
  if (!api) api = new Api({ base: location.origin, token: () => state.auth?.token || '' })
  return api
}

export function me(): number { return state.auth?.staff.id || 0 }
export function isManager(): boolean { return state.auth?.staff.role === 'manager' }

function thread(id: number): Thread {
  let t = threads.get(id)
  if (!t) { t = new Thread(); threads.set(id, t) }
  return t
}

function view(c: Conversation): ConvView {
  let v = state.convs[c.id]
  if (!v) {
    state.convs[c.id] = { id: c.id, conv: c, session: c.session, unread: c.unread || 0, msgs: [], pending: [], peerRead: 0, myRead: 0, typingUntil: 0, more: true, note: '' }
    v = state.convs[c.id]
  }
  return v
}

function publish(id: number) {
  const v = state.convs[id]
  if (!v) return
  const t = thread(id)
  v.msgs = t.list()
  v.more = t.oldest > 1
  v.pending = v.pending.filter((p) => !v.msgs.some((m) => m.client_msg_id === p.client_msg_id))
}

export async function login(shop: string, username: string, password: string) {
  const r = await new Api({ base: location.origin, token: () => '' }).post<Auth>('/api/login', { shop, username, password })
  state.auth = { token: r.token, staff: r.staff, shop: r.shop }
  localStorage.setItem(AUTH_KEY, JSON.stringify(state.auth))
  primeSound()
  if (typeof Notification !== 'undefined' && Notification.permission === 'default') {
    Notification.requestPermission().catch(() => {})
  }
  void start()
}

export async function logout() {
  stop()
  try { await getApi().post('/api/logout', {}) } catch { /* the token is forgotten anyway */ }
  state.auth = null
  localStorage.removeItem(AUTH_KEY)
  state.convs = {}
  threads.clear()
  state.selected = 0
}

export function stop() {
  conn?.stop()
  conn = null
  timers.forEach((t) => clearInterval(t))
  timers = []
  listed = false
}

/** start validates the stored token, connects and lists conversations. */
export async function start() {
  const a = getApi()
  try {
    const me = await a.get<{ staff: Staff; shop: Shop }>('/api/me')
    state.auth = { ...state.auth!, staff: me.staff, shop: me.shop }
    state.status = me.staff.status
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) { await logout(); return }
  }
  conn = new Conn({
    base: location.origin,
    token: () => state.auth?.token || '',
    onState: (s) => { state.conn = s; state.node = conn?.node || '' },
    onOpen: () => { void resync() },
    onEvent,
  })
  conn.start()
  await refresh()
  timers.push(setInterval(() => { state.now = Date.now() }, 1000))
  timers.push(setInterval(() => { void refresh() }, 10000))
}

async function resync() {
  await refresh()
  for (const id of Object.keys(state.convs).map(Number)) {
    if (threads.get(id)?.oldest) {
      try { if (await pullAfter(getApi(), id, thread(id))) publish(id) } catch { /* next check */ }
      // what arrived while disconnected is on screen in the open chat: it is read
      if (state.selected === id) markRead(id)
      void loadReads(id)
    }
  }
  await flushPending()
}

/** refresh lists conversations; it notices assignments missed while away and lost last messages. */
export async function refresh() {
  let r: { conversations: Conversation[] }
  try { r = await getApi().get('/api/conversations?limit=200') } catch { return }
  const first = !listed
  listed = true
  for (const c of r.conversations) {
    const known = state.convs[c.id]
    const wasMine = known ? mine(known.session) : false
    const v = view(c)
    v.conv = c
    // the list carries only a live session: once it closes, keep showing the last one, closed
    v.session = c.session || (v.session && v.session.state !== 'closed' ? { ...v.session, state: 'closed' } : v.session)
    v.unread = c.unread || 0
    if (!first && !wasMine && mine(c.session)) notify(c.session!)
    const t = thread(c.id)
    if (!t.oldest) {
      loadLatest(getApi(), c.id, c.last_seq, t).then(() => publish(c.id)).catch(() => {})
      void loadReads(c.id)
    } else if (c.last_seq > t.cursor) {
      pullAfter(getApi(), c.id, t).then(() => { publish(c.id); if (state.selected === c.id) markRead(c.id) }).catch(() => {})
    }
  }
}

/** loadReads fetches how far the buyer has read, so read receipts are right after a reload too (the
 *  `read` events only tell what happens while connected). */
async function loadReads(id: number) {
  try {
    const r = await getApi().get<{ reads: { buyer: number } }>(`/api/conversations/${id}/reads`)
    const v = state.convs[id]
    if (v) v.peerRead = Math.max(v.peerRead, r.reads.buyer)
  } catch { /* the next resync asks again */ }
}

function mine(s?: Session): boolean {
  return !!s && s.state === 'open' && s.agent_id === me()
}

function onEvent(f: any) {
  const id = f.conversation_id as number
  switch (f.type) {
    case 'message': {
      const v = state.convs[id]
      if (!v) { void refresh(); return }
      const t = thread(id)
      if (t.isGap(f.seq)) {
        t.add([f.message])
        pullAfter(getApi(), id, t).then(() => publish(id)).catch(() => {})
      } else {
        t.add([f.message])
      }
      publish(id)
      v.conv.last_seq = Math.max(v.conv.last_seq, f.seq)
      if (f.unread) v.unread = f.unread.count
      if (f.message.sender_kind === 'buyer') v.typingUntil = 0
      if (state.selected === id) markRead(id)
      break
    }
    case 'read':
      if (state.convs[id] && f.from?.kind === 'buyer') state.convs[id].peerRead = Math.max(state.convs[id].peerRead, f.seq)
      break
    case 'unread':
      if (state.convs[id]) { state.convs[id].unread = f.unread.count; state.convs[id].myRead = f.unread.read_seq }
      break
    case 'typing':
      if (state.convs[id]) state.convs[id].typingUntil = Date.now() + 4000
      break
    case 'session': {
      const s = f.session as Session
      const v = state.convs[id]
      if (!v) {
        // refresh lists it and notifies a new assignment; the transfer note only comes with the event
        void refresh().then(() => { const nv = state.convs[id]; if (nv && f.note) nv.note = f.note })
        return
      }
      const was = mine(v.session)
      v.session = s.state === 'closed' && v.session && v.session.id !== s.id ? v.session : s
      if (typeof f.note === 'string' && f.note) v.note = f.note
      if (!was && mine(s)) notify(s)
      break
    }
    case 'status':
      state.status = f.status
      break
  }
}

let audio: AudioContext | null = null
function primeSound() {
  try { audio = audio || new AudioContext() } catch { audio = null }
}

function notify(s: Session) {
  const hook = (window as any).__shopdeskNotify
  if (typeof hook === 'function') {
    try { hook({ type: 'assigned', session_id: s.id, conversation_id: s.conversation_id, kind: s.kind }) } catch { /* the hook is the page's */ }
  }
  try {
    if (audio) {
      const o = audio.createOscillator(); const g = audio.createGain()
      o.frequency.value = 880; g.gain.value = 0.05
      o.connect(g); g.connect(audio.destination); o.start(); o.stop(audio.currentTime + 0.15)
    }
  } catch { /* no sound device */ }
  try {
    if (typeof Notification !== 'undefined' && Notification.permission === 'granted' && document.hidden) {
      new Notification('Shopdesk', { body: `#${s.conversation_id} ${s.kind}` })
    }
  } catch { /* notifications unsupported */ }
}

export async function select(id: number) {
  state.selected = id
  const v = state.convs[id]
  if (!v) return
  const t = thread(id)
  if (!t.oldest) {
    try { await loadLatest(getApi(), id, v.conv.last_seq, t); publish(id) } catch { /* shown empty */ }
  }
  markRead(id)
}

/** focus selects a conversation and loads its history back to seq, for the chat to scroll to it. */
export async function focus(id: number, seq: number) {
  await select(id)
  const t = thread(id)
  for (let i = 0; i < 100 && t.oldest > seq && t.oldest > 1; i++) {
    if (!(await older(id))) break
  }
  state.focus = { conv: id, seq }
}

export async function older(id: number): Promise<number> {
  try {
    const n = await loadOlder(getApi(), id, thread(id))
    publish(id)
    return n
  } catch { return 0 }
}

export function markRead(id: number) {
  const v = state.convs[id]
  if (!v || document.hidden) return
  const last = thread(id).last
  if (last <= 0 || (last <= v.myRead && v.unread === 0)) return
  v.myRead = last
  const done = (r: any) => { if (r?.unread) v.unread = r.unread.count }
  if (conn?.connected) conn.request({ type: 'read', conversation_id: id, seq: last }).then(done).catch(() => { v.myRead = 0 })
  else getApi().post(`/api/conversations/${id}/read`, { seq: last }).then(done).catch(() => { v.myRead = 0 })
}

export async function send(id: number, body: Body) {
  const v = state.convs[id]
  if (!v) return
  const p: Pending = { client_msg_id: clientMsgID('a' + me()), body, state: 'sending', at: new Date().toISOString() }
  v.pending.push(p)
  await deliver(id, v.pending[v.pending.length - 1])
}

async function deliver(id: number, p: Pending) {
  const v = state.convs[id]
  try {
    if (!conn?.connected) throw new Error('not connected')
    const ack = await conn.request({ type: 'send', conversation_id: id, client_msg_id: p.client_msg_id, body: p.body })
    const t = thread(id)
    const m: Message = { conversation_id: id, seq: ack.seq, client_msg_id: p.client_msg_id, sender_kind: 'staff', sender_id: me(), body: p.body, server_time: ack.server_time }
    const gap = t.isGap(ack.seq)
    t.add([m])
    publish(id)
    if (gap) { await pullAfter(getApi(), id, t); publish(id) }
  } catch (e: any) {
    if (e?.code) { // refused by the server: drop it and say why
      v.pending = v.pending.filter((x) => x.client_msg_id !== p.client_msg_id)
      state.error = e.message
      return
    }
    p.state = 'failed'
  }
}

async function flushPending() {
  for (const v of Object.values(state.convs)) {
    for (const p of [...v.pending]) if (p.state === 'failed') { p.state = 'sending'; await deliver(v.id, p) }
  }
}

export function typing(id: number) {
  const now = Date.now()
  if (now - lastTyping < 3000) return
  lastTyping = now
  conn?.frame({ type: 'typing', conversation_id: id })
}

export async function closeSession(sessionId: number, outcome: string) {
  const r = await getApi().post<{ session: Session }>(`/api/sessions/${sessionId}/close`, { outcome })
  const v = state.convs[r.session.conversation_id]
  if (v) v.session = r.session
}

/** transfer moves an open session to an agent or to a group's best agent, with a note. */
export async function transfer(sessionId: number, to: { agent_id?: number; group?: string }, note: string) {
  const r = await getApi().post<{ session: Session }>(`/api/sessions/${sessionId}/transfer`, { ...to, note })
  const v = state.convs[r.session.conversation_id]
  if (v) v.session = r.session
}

export async function setStatus(s: string) {
  try {
    if (conn?.connected) await conn.request({ type: 'status', status: s })
    else await getApi().req('PUT', '/api/me/status', { status: s })
    state.status = s
  } catch (e: any) { state.error = e.message }
}

export function load(): number {
  return Object.values(state.convs).filter((v) => mine(v.session)).length
}

export async function upload(file: File): Promise<Body> {
  const r = await getApi().upload(file, file.name || 'pasted.png')
  return { type: r.type, blob_key: r.blob_key, name: r.name, mime: r.mime, size: r.size }
}
