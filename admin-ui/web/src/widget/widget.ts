// The buyer widget: <script src="https://<host>/widget.js" data-shop="<id>" async></script>, then
// Shopdesk.identify(token) and Shopdesk.open({product} | {order}). Framework-free; its UI lives in a
// shadow root so the shop's CSS cannot reach it. The visitor token is kept in the shop page's own
// localStorage (no third-party cookies); messages are pulled by seq on every (re)connect, on a gap
// and by a periodic check, so none is lost when a push is.
import { Api, clientMsgID } from '../shared/api'
import { Conn, type ConnState } from '../shared/conn'
import { Thread } from '../shared/thread'
import { pullAfter, loadLatest } from '../shared/sync'
import type { Body, Card, Conversation, EntryContext, Message, Session } from '../shared/types'
import { CSS } from './style'

interface OpenArg { product?: Card & { category?: string }; order?: Card }
interface Outbox { client_msg_id: string; body: Body; failed: boolean }

const zh = {
  title: '在线客服', send: '发送', ph: '输入消息…', queued: '正在为您分配客服，请稍候', nobody: '暂时没有客服在线，您可以留言，我们会在这里回复',
  position: '您排在第 {0} 位，预计等待 {1} 分钟', positionNoEta: '您排在第 {0} 位，请稍候', serving: '{0} 为您服务', closed: '会话已结束，感谢您的咨询', read: '已读', unread: '未读',
  recalled: '消息已撤回', typing: '客服正在输入…', disconnected: '连接已断开，正在重连…', ask: '咨询这个', product: '商品', order: '订单',
  unavailable: '本站暂不支持在线客服', assigned: '客服 {0} 已接入', sysclosed: '会话已结束', image: '图片', file: '文件', sending: '发送中…', welcome: '您好，有什么可以帮您？',
  picks: '商品咨询|我的订单|物流配送|售后与退款', pick: '您想咨询什么？', emoji: '表情',
  rate: '请为本次服务评分', rateComment: '补充评价（可选）', rateSend: '提交评价', rateThanks: '感谢您的评价！', rateFail: '评价提交失败：{0}',
}
const en: typeof zh = {
  title: 'Customer service', send: 'Send', ph: 'Type a message…', queued: 'Finding an agent for you…', nobody: 'Nobody is available right now: leave a message and we will answer here',
  position: 'You are number {0} in line, about {1} min', positionNoEta: 'You are number {0} in line', serving: '{0} is helping you', closed: 'This session has ended. Thank you!', read: 'Read', unread: 'Unread',
  recalled: 'Message recalled', typing: 'Agent is typing…', disconnected: 'Disconnected, reconnecting…', ask: 'Ask about this', product: 'Product', order: 'Order',
  unavailable: 'Chat is not available on this site', assigned: '{0} joined', sysclosed: 'Session closed', image: 'Image', file: 'File', sending: 'Sending…', welcome: 'Hello! How can we help?',
  picks: 'A question about a product|About my order|Shipping and delivery|Returns and refunds', pick: 'What can we help you with?', emoji: 'Emoji',
  rate: 'How did we do?', rateComment: 'Comment (optional)', rateSend: 'Submit rating', rateThanks: 'Thank you for your rating!', rateFail: 'Could not submit the rating: {0}',
}
const L = (navigator.language || '').toLowerCase().startsWith('zh') ? zh : en
function tr(k: keyof typeof zh, ...a: (string | number)[]) { return L[k].replace(/\{(\d)\}/g, (_, i) => String(a[Number(i)] ?? '')) }

const script = document.currentScript as HTMLScriptElement | null
const SHOP = script?.dataset.shop || ''
const BASE = script?.src ? new URL(script.src).origin : location.origin
const KEY = `shopdesk:${SHOP}:visitor`

let identified = ''
let token = ''
let ctx: EntryContext = {}
let card: { kind: 'product' | 'order'; card: Card } | null = null
let conv: Conversation | null = null
let session: Session | null = null
let started: Promise<void> | null = null
let failure: '' | 'refused' | 'error' = ''
let conn: Conn | null = null
let connState: ConnState = 'disconnected'
let isOpen = false
let unread = 0
let peerRead = 0
let typingUntil = 0
let agentName = ''
/** available: whether anyone of the shop is at work (GET /api/availability); when not, the buyer is
 *  invited to leave a message, which waits in the queue for the next agent. */
let available = true
let queueInfo: { position: number; total: number; eta_seconds: number } | null = null
const thread = new Thread()
const outbox: Outbox[] = []
const api = new Api({ base: BASE, token: () => token, shop: SHOP })

// ---------- DOM ----------
const host = document.createElement('div')
host.id = 'shopdesk-widget'
const root = host.attachShadow({ mode: 'open' })
root.innerHTML = `<style>${CSS}</style>
<button class="bubble" data-testid="sd-bubble" aria-label="chat">💬<span class="badge" data-testid="sd-badge" hidden></span></button>
<div class="panel" data-testid="sd-panel" hidden>
  <header><span class="title"></span><span class="conn" data-testid="sd-conn"></span><button class="x" aria-label="close">✕</button></header>
  <div class="status" data-testid="sd-status"></div>
  <div class="ctx" data-testid="sd-context" hidden></div>
  <div class="list" data-testid="sd-list"></div>
  <div class="picker" data-testid="sd-picker" hidden></div>
  <div class="emojis" data-testid="sd-emojis" hidden></div>
  <div class="typing"></div>
  <div class="rate" data-testid="sd-rate" hidden><div class="rate-q"></div><div class="stars"></div><textarea class="rate-c" data-testid="sd-rate-comment" rows="2" maxlength="500"></textarea><button class="rate-send" data-testid="sd-rate-submit"></button><div class="rate-err" data-testid="sd-rate-error"></div></div>
  <div class="rate-ok" data-testid="sd-rate-thanks" hidden></div>
  <footer><button class="emo" data-testid="sd-emoji-btn">😊</button><label class="attach">📎<input type="file" accept="image/*,application/pdf,text/plain,application/zip" hidden data-testid="sd-file"></label>
  <textarea data-testid="sd-input" rows="1"></textarea><button class="send" data-testid="sd-send"></button></footer>
</div>`
const $ = <T extends Element>(s: string) => root.querySelector(s) as T
const bubble = $<HTMLButtonElement>('.bubble'), badge = $<HTMLElement>('.badge'), panel = $<HTMLElement>('.panel')
const list = $<HTMLElement>('.list'), statusEl = $<HTMLElement>('.status'), ctxEl = $<HTMLElement>('.ctx')
const input = $<HTMLTextAreaElement>('footer textarea'), typingEl = $<HTMLElement>('.typing'), connEl = $<HTMLElement>('.conn')
$<HTMLElement>('.title').textContent = tr('title')
$<HTMLElement>('.send').textContent = tr('send')
input.placeholder = tr('ph')
const rateEl = $<HTMLElement>('.rate'), rateOk = $<HTMLElement>('.rate-ok'), rateErr = $<HTMLElement>('.rate-err')
const rateC = $<HTMLTextAreaElement>('.rate-c'), rateBtn = $<HTMLButtonElement>('.rate-send'), stars = $<HTMLElement>('.stars')
$<HTMLElement>('.rate-q').textContent = tr('rate')
rateC.placeholder = tr('rateComment')
rateBtn.textContent = tr('rateSend')
rateOk.textContent = tr('rateThanks')
let stars5 = 0
for (let i = 1; i <= 5; i++) {
  const b = document.createElement('button')
  b.textContent = '★'
  b.dataset.testid = 'sd-star-' + i
  b.setAttribute('aria-label', String(i))
  b.onclick = () => { stars5 = i; renderRate() }
  stars.append(b)
}

// A simple question picker, for a buyer who opens the chat with no product or order in view.
const picker = $<HTMLElement>('.picker'), emojis = $<HTMLElement>('.emojis')
picker.append(el('div', 'pick-q', tr('pick')))
tr('picks').split('|').forEach((q, i) => {
  const b = el('button', 'pick', q) as HTMLButtonElement
  b.dataset.testid = 'sd-pick-' + i
  b.onclick = () => { void send({ type: 'text', text: q }) }
  picker.append(b)
})
for (const e of ['😀', '😊', '👍', '🙏', '❤️', '😅', '🤔', '👌']) {
  const b = el('button', 'e', e) as HTMLButtonElement
  b.onclick = () => { input.value += e; emojis.hidden = true; input.focus() }
  emojis.append(b)
}
$<HTMLButtonElement>('.emo').setAttribute('aria-label', tr('emoji'))
$<HTMLButtonElement>('.emo').onclick = () => { emojis.hidden = !emojis.hidden }

function el(tag: string, cls: string, text?: string): HTMLElement {
  const e = document.createElement(tag)
  e.className = cls
  if (text !== undefined) e.textContent = text
  return e
}

function renderBadge() {
  badge.hidden = isOpen || unread <= 0
  badge.textContent = String(unread)
}

function renderStatus() {
  connEl.textContent = !conn || connState === 'connected' ? '' : tr('disconnected')
  connEl.dataset.conn = connState
  if (failure && !conv) {
    statusEl.textContent = failure === 'refused' ? tr('unavailable') : tr('disconnected')
    statusEl.dataset.state = failure
    return
  }
  let s = ''
  // Nobody at work: a waiting buyer (or one about to ask) is invited to leave a message instead.
  const nobody = !available && !!conv && (!session || session.state === 'queued')
  if (nobody) s = tr('nobody')
  else if (session?.state === 'queued') s = queueInfo ? (queueInfo.eta_seconds > 0 ? tr('position', queueInfo.position, Math.max(1, Math.round(queueInfo.eta_seconds / 60))) : tr('positionNoEta', queueInfo.position)) : tr('queued')
  else if (session?.state === 'open') s = tr('serving', agentName || '')
  else if (session?.state === 'closed') s = tr('closed')
  statusEl.textContent = s
  if (session?.state === 'open' && agentName) {
    // the agent's avatar: their initial (staff have no picture in the API)
    const av = el('span', 'avatar', [...agentName][0].toUpperCase())
    av.dataset.testid = 'sd-avatar'
    statusEl.prepend(av)
  }
  statusEl.dataset.state = session?.state || ''
  if (nobody) statusEl.dataset.nobody = '1'; else delete statusEl.dataset.nobody
  if (queueInfo && session?.state === 'queued') { statusEl.dataset.position = String(queueInfo.position) } else delete statusEl.dataset.position
}

function renderCtx() {
  ctxEl.hidden = !card
  if (!card) return
  ctxEl.textContent = ''
  if (card.card.image) { const i = document.createElement('img'); i.src = card.card.image; i.alt = ''; ctxEl.append(i) }
  const d = el('div', 'ctx-text')
  d.append(el('div', 'ctx-kind', tr(card.kind) + ' ' + card.card.id), el('div', 'ctx-title', card.card.title || ''), el('div', 'ctx-price', [card.card.price, card.card.status].filter(Boolean).join(' ')))
  const b = el('button', 'ctx-send', tr('ask')) as HTMLButtonElement
  b.dataset.testid = 'sd-send-card'
  b.onclick = () => { if (card) void send({ type: card.kind, card: card.card }) }
  ctxEl.append(d, b)
}

const blobs = new Map<string, string>()
function blobImg(key: string, name: string, image: boolean): HTMLElement {
  const a = document.createElement('a')
  a.target = '_blank'
  a.rel = 'noopener'
  const apply = (url: string) => {
    a.href = url
    if (image) { const i = document.createElement('img'); i.src = url; i.alt = name; i.className = 'img'; i.dataset.testid = 'sd-image'; a.textContent = ''; a.append(i) }
  }
  a.textContent = (image ? '🖼 ' : '📎 ') + name
  if (!image) a.download = name
  if (blobs.has(key)) apply(blobs.get(key)!)
  else api.blobURL(key).then((u) => { blobs.set(key, u); apply(u) }).catch(() => {})
  return a
}

function renderList() {
  picker.hidden = !!(thread.bySeq.size || outbox.length || card || failure)
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40
  list.textContent = ''
  if (!thread.bySeq.size && !outbox.length) list.append(el('div', 'sys', tr('welcome')))
  for (const m of thread.list()) {
    if (m.body.type === 'recall') continue
    if (m.body.type === 'system') {
      const s = el('div', 'sys', m.body.event === 'assigned' ? tr('assigned', m.body.text || '') : m.body.event === 'closed' ? tr('sysclosed') : m.body.text || '')
      s.dataset.seq = String(m.seq)
      list.append(s)
      continue
    }
    const own = m.sender_kind === 'buyer'
    const row = el('div', 'msg' + (own ? ' own' : ''))
    row.dataset.seq = String(m.seq)
    row.dataset.testid = 'sd-msg'
    const b = el('div', 'b' + (m.recalled ? ' recalled' : ''))
    if (m.recalled) b.append(el('span', 'sd-text', tr('recalled')))
    else if (m.body.type === 'text') { const t = el('span', 'sd-text', m.body.text || ''); t.dataset.testid = 'sd-text'; b.append(t) }
    else if (m.body.type === 'image' || m.body.type === 'file') b.append(blobImg(m.body.blob_key!, m.body.name || '', m.body.type === 'image'))
    else if (m.body.type === 'product' || m.body.type === 'order') {
      b.classList.add('cardmsg')
      b.append(el('div', 'ctx-kind', tr(m.body.type) + ' ' + (m.body.card?.id || '')), el('div', 'ctx-title', m.body.card?.title || ''), el('div', 'ctx-price', m.body.card?.price || ''))
    }
    row.append(b)
    if (own && !m.recalled) {
      const r = el('div', 'receipt' + (peerRead >= m.seq ? ' read' : ''), peerRead >= m.seq ? tr('read') : tr('unread'))
      r.dataset.testid = 'sd-receipt'
      row.append(r)
    }
    list.append(row)
  }
  for (const o of outbox) {
    const row = el('div', 'msg own pending')
    row.append(el('div', 'b', o.body.type === 'text' ? o.body.text || '' : o.body.name || o.body.type), el('div', 'receipt', tr('sending')))
    list.append(row)
  }
  if (atBottom || isOpen) list.scrollTop = list.scrollHeight
}

/** renderRate offers the 1–5 rating once the session has closed, and thanks after it. */
function renderRate() {
  const closed = session?.state === 'closed'
  rateEl.hidden = !closed || !!session?.rating
  rateOk.hidden = !closed || !session?.rating
  stars.querySelectorAll('button').forEach((b, i) => b.classList.toggle('on', i < stars5))
  rateBtn.disabled = !stars5
}

async function rate() {
  if (!session || !stars5) return
  rateBtn.disabled = true
  rateErr.textContent = ''
  try {
    const r = await api.post<{ session: Session }>(`/api/sessions/${session.id}/rating`, { rating: stars5, comment: rateC.value.trim() })
    if (session && r.session.id === session.id) session = r.session
  } catch (e: any) {
    rateErr.textContent = tr('rateFail', e?.message || String(e))
  }
  renderRate()
}
rateBtn.onclick = () => { void rate() }

function render() { renderBadge(); renderStatus(); renderList(); renderRate() }

// ---------- protocol ----------
async function ensureToken() {
  if (identified) { token = identified; return }
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) || 'null')
    if (saved && Date.parse(saved.expires) - Date.now() > 120000) { token = saved.token; return }
  } catch { /* fall through to a new visitor */ }
  const r = await new Api({ base: BASE, token: () => '' }).post<{ token: string; expires: string }>('/api/visitor', { shop: SHOP })
  token = r.token
  try { localStorage.setItem(KEY, JSON.stringify({ token: r.token, expires: r.expires })) } catch { /* private mode */ }
}

function start(): Promise<void> {
  if (!started) {
    started = (async () => {
      failure = ''
      await ensureToken()
      const r = await api.post<{ conversation: Conversation }>('/api/conversations', { context: ctx })
      conv = r.conversation
      await loadLatest(api, conv.id, conv.last_seq, thread, 50)
      scanSystem()
      await loadReads()
      await refreshConv()
      conn = new Conn({
        base: BASE, token: () => token, shop: SHOP,
        onState: (s) => { connState = s; renderStatus() },
        onOpen: () => { void resync() },
        onEvent,
      })
      conn.start()
      setInterval(() => { void refreshConv().then(() => render()) }, 15000)
      render()
    })().catch((e) => {
      started = null
      failure = e?.code === 'EORIGIN' ? 'refused' : 'error'
      renderStatus()
      throw e
    })
  }
  return started
}

function scanSystem() {
  for (const m of thread.list()) if (m.body.type === 'system' && m.body.event === 'assigned') agentName = m.body.text || agentName
}

/** refreshConv is the periodic check: the conversation's last_seq, live session and unread count. */
async function refreshConv() {
  if (!conv) return
  try {
    const r = await api.get<{ conversations: Conversation[] }>('/api/conversations?limit=5')
    const c = r.conversations.find((x) => x.id === conv!.id)
    if (!c) return
    if (c.session) session = c.session
    unread = c.unread || 0
    if (session?.state !== 'open') {
      const av = await api.get<{ available: boolean }>('/api/availability').catch(() => null)
      if (av) available = av.available
    } else available = true
    if (session?.state === 'queued') {
      const q = await api.get<{ queue: typeof queueInfo }>(`/api/sessions/${session.id}/queue`).catch(() => null)
      queueInfo = q?.queue && q.queue.position > 0 ? q.queue : null
    }
    if (c.last_seq > thread.cursor) { await pullAfter(api, conv.id, thread); scanSystem() }
    markRead()
  } catch { /* next check */ }
}

/** loadReads asks how far the staff have read, so read receipts are right after a reload too. */
async function loadReads() {
  if (!conv) return
  try {
    const r = await api.get<{ reads: { staff: number } }>(`/api/conversations/${conv.id}/reads`)
    peerRead = Math.max(peerRead, r.reads.staff)
  } catch { /* the next resync asks again */ }
}

async function resync() {
  if (!conv) return
  try { await pullAfter(api, conv.id, thread); scanSystem() } catch { /* next check */ }
  await loadReads()
  for (const o of [...outbox]) await deliver(o)
  await refreshConv()
  render()
}

function onEvent(f: any) {
  if (!conv || (f.conversation_id && f.conversation_id !== conv.id)) return
  switch (f.type) {
    case 'message': {
      const gap = thread.isGap(f.seq)
      thread.add([f.message])
      if (gap) void pullAfter(api, conv.id, thread).then(() => { scanSystem(); render() }).catch(() => {})
      if (f.message.body?.type === 'system' && f.message.body.event === 'assigned') agentName = f.message.body.text || ''
      if (f.unread) unread = f.unread.count
      if (f.message.sender_kind === 'staff') typingUntil = 0
      markRead()
      break
    }
    case 'read': if (f.from?.kind === 'staff') peerRead = Math.max(peerRead, f.seq); break
    case 'unread': unread = f.unread.count; break
    case 'typing': typingUntil = Date.now() + 4000; setTimeout(renderTyping, 4100); break
    case 'session':
      if (f.session?.id !== session?.id) { stars5 = 0; rateC.value = ''; rateErr.textContent = '' }
      session = f.session
      if (session?.state !== 'queued') queueInfo = null
      else void refreshConv().then(render)
      break
    case 'queue': queueInfo = f.queue && f.queue.position > 0 ? f.queue : null; break
  }
  renderTyping()
  render()
}

function renderTyping() { typingEl.textContent = typingUntil > Date.now() ? tr('typing') : '' }

function markRead() {
  if (!conv || !isOpen || document.hidden) return
  const last = thread.last
  if (last <= 0 || unread === 0) return
  unread = 0
  renderBadge()
  if (conn?.connected) conn.request({ type: 'read', conversation_id: conv.id, seq: last }).catch(() => {})
  else api.post(`/api/conversations/${conv.id}/read`, { seq: last }).catch(() => {})
}

async function send(body: Body) {
  try { await start() } catch { return }
  const o: Outbox = { client_msg_id: clientMsgID('w'), body, failed: false }
  outbox.push(o)
  renderList()
  await deliver(o)
}

async function deliver(o: Outbox) {
  if (!conv) return
  try {
    if (!conn?.connected) throw new Error('offline')
    const ack = await conn.request({ type: 'send', conversation_id: conv.id, client_msg_id: o.client_msg_id, body: o.body })
    const m: Message = { conversation_id: conv.id, seq: ack.seq, client_msg_id: o.client_msg_id, sender_kind: 'buyer', sender_id: 0, body: o.body, server_time: ack.server_time }
    const gap = thread.isGap(ack.seq)
    thread.add([m])
    const i = outbox.indexOf(o)
    if (i >= 0) outbox.splice(i, 1)
    if (gap) await pullAfter(api, conv.id, thread)
    if (!session || session.state === 'closed') void refreshConv().then(render)
  } catch (e: any) {
    if (e?.code) { const i = outbox.indexOf(o); if (i >= 0) outbox.splice(i, 1) }
    o.failed = true
  }
  render()
}

// ---------- UI events ----------
function setOpen(v: boolean) {
  isOpen = v
  panel.hidden = !v
  bubble.hidden = v && window.innerWidth < 480
  render()
  if (v) { markRead(); input.focus() }
}
bubble.onclick = () => { setOpen(true); void start().then(() => markRead()).catch(() => {}) }
$<HTMLButtonElement>('.x').onclick = () => { setOpen(false); bubble.hidden = false }
$<HTMLButtonElement>('.send').onclick = () => submit()
input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit() }
})
let lastTyping = 0
input.addEventListener('input', () => {
  if (conv && Date.now() - lastTyping > 3000) { lastTyping = Date.now(); conn?.frame({ type: 'typing', conversation_id: conv.id }) }
})
$<HTMLInputElement>('input[type=file]').addEventListener('change', async (e) => {
  const f = (e.target as HTMLInputElement).files?.[0]
  if (!f) return
  try { await start() } catch { return }
  try {
    const r = await api.upload(f, f.name)
    await send({ type: r.type, blob_key: r.blob_key, name: r.name, mime: r.mime, size: r.size })
  } catch { /* refused upload: nothing sent */ }
  ;(e.target as HTMLInputElement).value = ''
})
document.addEventListener('visibilitychange', () => markRead())

function submit() {
  const text = input.value.trim()
  if (!text) return
  input.value = ''
  void send({ type: 'text', text })
}

function pageContext(): EntryContext {
  const meta = (n: string) => document.querySelector(`meta[name="shopdesk:${n}"]`)?.getAttribute('content') || undefined
  const c: EntryContext = { page: location.href.slice(0, 512) }
  for (const k of ['product_id', 'product_name', 'category', 'order_id', 'order_status'] as const) { const v = meta(k); if (v) c[k] = v }
  c.language = navigator.language
  return c
}

// ---------- public API ----------
const Shopdesk = {
  /** identify signs the buyer in with the shop's signed buyer token (JWT). */
  identify(jwt: string) {
    identified = jwt
    if (token && token !== jwt) { conn?.stop(); started = null; conv = null; thread.bySeq.clear(); thread.cursor = 0; thread.oldest = 0 }
    token = jwt
  },
  /** open shows the panel with a product or order as context (or the page's own context). */
  async open(arg: OpenArg = {}) {
    ctx = pageContext()
    card = null
    if (arg.order) {
      ctx.order_id = arg.order.id; ctx.order_status = arg.order.status
      ctx.product_name = arg.order.title
      card = { kind: 'order', card: arg.order }
    } else if (arg.product) {
      ctx.product_id = arg.product.id; ctx.product_name = arg.product.title
      if (arg.product.category) ctx.category = arg.product.category
      const { category: _c, ...pc } = arg.product
      card = { kind: 'product', card: pc }
    }
    renderCtx()
    setOpen(true)
    if (started && conv) await api.post('/api/conversations', { context: ctx }).catch(() => {})
    try { await start() } catch { return }
    markRead()
  },
  close() { setOpen(false); bubble.hidden = false },
  /** state is for tests and the shop page: connection, session and unread. */
  state() { return { conn: connState, node: conn?.node || '', session: session?.state || '', unread, conversation: conv?.id || 0, queue: queueInfo } },
}

function boot() {
  document.body.append(host)
  ctx = pageContext()
  const w = window as any
  const queued: any[] = Array.isArray(w.Shopdesk?.q) ? w.Shopdesk.q : []
  w.Shopdesk = Shopdesk
  for (const [fn, ...args] of queued) (Shopdesk as any)[fn]?.(...args)
  // A returning visitor: connect at once so the bubble shows unread answers.
  try { if (!identified && localStorage.getItem(KEY)) void start().catch(() => {}) } catch { /* no storage */ }
  window.dispatchEvent(new Event('shopdesk:ready'))
}

if (!SHOP) console.warn('shopdesk: the widget script needs data-shop')
else if (document.body) boot()
else document.addEventListener('DOMContentLoaded', boot)
