// Browser end-to-end tests: playwright-core driving Debian's Chromium against a real `shopdesk
// serve`, in embedded mode and in MariaDB + Redis mode. Screenshots of every screen go to
// admin-ui/web/test-results/ (gitignored). Any browser console error fails the test, except network
// errors on the agent's page while the test itself has cut its connection (flow 4).
import { chromium } from 'playwright-core'
import { mkdirSync, writeFileSync, existsSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import http from 'node:http'
import { startNode, backend, api, waitFor, sleep, CHROME_ARGS, CHROMIUM, ARTIFACTS } from './harness.mjs'

// E2E_MODES picks modes (embedded, production, cluster: flow 8); E2E_FLOWS runs only the flows whose
// names start with one of its comma-separated prefixes (later flows that need earlier ones fail).
const only = process.env.E2E_MODES ? process.env.E2E_MODES.split(',') : ['embedded', 'production', 'cluster']
const results = []
let consoleErrors = []

function watch(page, name) {
  page.allowNetworkErrors = false
  page.on('console', (m) => {
    if (m.type() !== 'error') return
    const text = m.text()
    if (page.allowNetworkErrors && /WebSocket connection to|Failed to load resource|net::ERR_/.test(text)) return
    if (page.allowedErrors && page.allowedErrors.test(text)) return
    consoleErrors.push(`${name}: console error: ${text}`)
  })
  page.on('pageerror', (e) => consoleErrors.push(`${name}: page error: ${e.message}`))
  return page
}

let shotDir = ARTIFACTS
async function shot(page, name) {
  mkdirSync(shotDir, { recursive: true })
  await page.screenshot({ path: join(shotDir, name + '.png'), fullPage: false })
}

async function agentLogin(env, username, { notify = true } = {}) {
  const ctx = await env.browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' })
  if (notify) await ctx.addInitScript(() => { window.__notified = []; window.__shopdeskNotify = (e) => window.__notified.push(e) })
  const page = watch(await ctx.newPage(), username)
  page.setDefaultTimeout(25000)
  await page.goto(env.node.agent + '/app/')
  await page.fill('input[name=shop]', 'demo')
  await page.fill('input[name=username]', username)
  await page.fill('input[name=password]', 'demo')
  await page.click('[data-testid=login-submit]')
  await page.locator('[data-testid=conn-state][data-conn=connected]').waitFor()
  return { ctx, page }
}

async function setOnline(page) {
  await page.selectOption('[data-testid=status-select]', 'online')
  await waitFor('status online', async () => (await page.locator('[data-testid=status-select]').inputValue()) === 'online')
}

async function buyerOn(env, path, locale = 'zh-CN') {
  const ctx = await env.browser.newContext({ viewport: { width: 390, height: 844 }, locale, isMobile: true, hasTouch: true })
  const page = watch(await ctx.newPage(), 'buyer')
  page.setDefaultTimeout(25000)
  await page.goto(env.node.shop + path)
  await page.waitForFunction(() => window.Shopdesk && typeof window.Shopdesk.open === 'function')
  return { ctx, page }
}

async function buyerSend(page, text) {
  await page.fill('[data-testid=sd-input]', text)
  await page.press('[data-testid=sd-input]', 'Enter')
  await page.locator('[data-testid=sd-text]', { hasText: text }).waitFor()
  await waitFor('no pending buyer sends', async () => (await page.locator('.pending').count()) === 0)
}

async function staffId(env, username) {
  const list = await api(env.node.direct, 'GET', '/api/staff', env.manager)
  return list.staff.find((s) => s.username === username).id
}

/** assigned waits for the shunting engine to assign the conversation's session by the shop's
 *  default rules (pre-sale → group presale, after-sale → group aftersale). */
async function assigned(env, convId) {
  return waitFor('the session to be assigned by the rules', async () => {
    const s = (await api(env.node.direct, 'GET', `/api/sessions?conversation_id=${convId}&state=queued,open`, env.manager)).sessions[0]
    if (!s || s.state !== 'open') return null
    if (s.assigned_by === 'manual') throw new Error('assigned by hand, not by the rules')
    return s
  }, 10000)
}

const flows = {
  async 'flow 1: product-page buyer asks, presale agent is notified, replies; unread badges and read receipts'(env) {
    const agent = await agentLogin(env, 'presale1')
    await setOnline(agent.page)
    await shot(agent.page, 'workspace-empty')
    if (env.cluster) await env.cluster.separate(agent.page)
    const buyer = await buyerOn(env, '/store/product.html?id=101')
    await shot(buyer.page, 'store-product')
    await buyer.page.click('[data-testid=ask-product]')
    await buyer.page.locator('[data-testid=sd-panel]').waitFor()
    await buyer.page.locator('[data-testid=sd-context]', { hasText: 'Celadon tea cup' }).waitFor()
    await buyerSend(buyer.page, 'Is this cup dishwasher-safe?')
    await shot(buyer.page, 'widget-asked')
    if (env.cluster) await env.cluster.check(agent.page, buyer.page)
    const convId = await buyer.page.evaluate(() => window.Shopdesk.state().conversation)
    const s = await assigned(env, convId)
    if (s.kind !== 'presale') throw new Error('session kind ' + s.kind)
    if (s.agent_id !== await staffId(env, 'presale1')) throw new Error('assigned to staff ' + s.agent_id + ', not presale1 (the only presale agent online)')
    const item = agent.page.locator(`[data-testid=conv-${convId}]`)
    await item.waitFor()
    await waitFor('the notification hook', async () => (await agent.page.evaluate(() => window.__notified.length)) >= 1)
    const n = await agent.page.evaluate(() => window.__notified[0])
    if (n.conversation_id !== convId) throw new Error('notified for ' + JSON.stringify(n))
    await item.locator('[data-testid=unread-badge]').waitFor()
    const badge = Number(await item.locator('[data-testid=unread-badge]').textContent())
    if (!(badge >= 1)) throw new Error('agent badge ' + badge)
    await shot(agent.page, 'workspace-new-session')
    await item.click()
    await agent.page.locator('[data-testid=msg-text]', { hasText: 'Is this cup dishwasher-safe?' }).waitFor()
    await agent.page.locator('[data-testid=ctx-product]', { hasText: 'Celadon tea cup' }).waitFor()
    await buyer.page.locator('[data-testid=sd-status][data-state=open] [data-testid=sd-avatar]', { hasText: 'P' }).waitFor()
    await item.locator('[data-testid=unread-badge]').waitFor({ state: 'detached' })
    // the buyer sees its message read
    await buyer.page.locator('[data-testid=sd-receipt].read').first().waitFor()
    // the buyer minimises the panel; the agent answers
    await buyer.page.click('[data-testid=sd-panel] .x')
    await agent.page.fill('[data-testid=composer]', 'Yes, it is dishwasher-safe.')
    await agent.page.press('[data-testid=composer]', 'Enter')
    await agent.page.locator('[data-testid=msg-text]', { hasText: 'Yes, it is dishwasher-safe.' }).waitFor()
    await buyer.page.locator('[data-testid=sd-badge]:not([hidden])').waitFor()
    const bb = Number(await buyer.page.locator('[data-testid=sd-badge]').textContent())
    if (!(bb >= 1)) throw new Error('buyer badge ' + bb)
    await shot(buyer.page, 'widget-badge')
    await buyer.page.click('[data-testid=sd-bubble]')
    await buyer.page.locator('[data-testid=sd-text]', { hasText: 'Yes, it is dishwasher-safe.' }).waitFor()
    await buyer.page.locator('[data-testid=sd-badge]').waitFor({ state: 'hidden' })
    const own = agent.page.locator('[data-testid=msg].own', { hasText: 'Yes, it is dishwasher-safe.' })
    await own.locator('[data-testid=receipt].read').waitFor()
    await shot(agent.page, 'workspace-chat')
    await shot(buyer.page, 'widget-chat')
    // after a reload, both sides still see the other's read receipts (from GET .../reads, before any event)
    await agent.page.reload()
    await agent.page.locator('[data-testid=conn-state][data-conn=connected]').waitFor()
    await agent.page.locator(`[data-testid=conv-${convId}]`).click()
    await agent.page.locator('[data-testid=msg].own', { hasText: 'Yes, it is dishwasher-safe.' }).locator('[data-testid=receipt].read').waitFor()
    // on a cluster, the reloaded agent may have landed anywhere: the buyer reconnects elsewhere again
    if (env.cluster) await env.cluster.separate(agent.page)
    await buyer.page.reload()
    await buyer.page.waitForFunction(() => window.Shopdesk && typeof window.Shopdesk.open === 'function')
    await buyer.page.click('[data-testid=sd-bubble]')
    await buyer.page.locator('[data-testid=sd-msg].own', { hasText: 'Is this cup dishwasher-safe?' }).locator('[data-testid=sd-receipt].read').waitFor()
    await buyer.page.locator('[data-testid=sd-text]', { hasText: 'Yes, it is dishwasher-safe.' }).waitFor()
    await shot(agent.page, 'workspace-after-reload')
    await shot(buyer.page, 'widget-after-reload')
    if (env.cluster) await env.cluster.check(agent.page, buyer.page)
    env.shared = { agent, buyer, convId }
  },

  async 'flow 4: agent connection cut while the buyer sends 5; after restore the agent sees all 5 once, in order'(env) {
    const { agent, buyer, convId } = env.shared || {}
    if (!agent) throw new Error('needs flow 1')
    agent.page.allowNetworkErrors = true
    env.node.proxy.cut()
    await agent.page.locator('[data-testid=conn-state][data-conn=disconnected]').waitFor()
    const texts = [1, 2, 3, 4, 5].map((i) => `gap message ${i}`)
    for (const t of texts) await buyerSend(buyer.page, t)
    await sleep(500)
    for (const t of texts) {
      if (await agent.page.locator('[data-testid=msg-text]', { hasText: t }).count()) throw new Error('agent saw a message through a cut connection')
    }
    await shot(agent.page, 'workspace-disconnected')
    env.node.proxy.restore()
    await agent.page.locator('[data-testid=conn-state][data-conn=connected]').waitFor({ timeout: 20000 })
    await agent.page.locator('[data-testid=msg-text]', { hasText: texts[4] }).waitFor()
    agent.page.allowNetworkErrors = false
    const all = await agent.page.locator(`[data-testid=msg-text]`).allTextContents()
    const got = all.filter((t) => t.startsWith('gap message'))
    if (JSON.stringify(got) !== JSON.stringify(texts)) throw new Error('agent saw ' + JSON.stringify(got))
    const seqs = await agent.page.locator('[data-testid=msg]').evaluateAll((els) => els.map((e) => Number(e.dataset.seq)))
    if (seqs.some((s, i) => i > 0 && s <= seqs[i - 1])) throw new Error('rows out of seq order ' + seqs)
    await shot(agent.page, 'workspace-reconnected')
    if (env.cluster) await env.cluster.check(agent.page, buyer.page, false)
    const conv = await api(env.node.direct, 'GET', `/api/conversations/${convId}`, env.manager)
    if (Math.max(...seqs) !== conv.conversation.last_seq) throw new Error(`agent holds up to ${Math.max(...seqs)}, last_seq ${conv.conversation.last_seq}`)
  },

  async 'flow 2: order-page buyer gets an after-sale session for the after-sale agent'(env) {
    const agent = await agentLogin(env, 'aftersale1')
    await setOnline(agent.page)
    const buyer = await buyerOn(env, '/store/orders.html', 'en-US')
    await shot(buyer.page, 'store-orders')
    await buyer.page.click('[data-testid="ask-order-SO-7731"]')
    await buyer.page.locator('[data-testid=sd-context]', { hasText: 'SO-7731' }).waitFor()
    await buyer.page.click('[data-testid=sd-send-card]')
    await buyer.page.locator('[data-testid=sd-panel] .cardmsg', { hasText: 'SO-7731' }).waitFor()
    await buyerSend(buyer.page, 'Where is my parcel?')
    const convId = await buyer.page.evaluate(() => window.Shopdesk.state().conversation)
    const s = await assigned(env, convId)
    if (s.kind !== 'aftersale') throw new Error('session kind ' + s.kind)
    if (s.agent_id !== await staffId(env, 'aftersale1')) throw new Error('assigned to staff ' + s.agent_id + ', not aftersale1')
    const item = agent.page.locator(`[data-testid=conv-${convId}]`)
    await item.locator('.kind.aftersale').waitFor()
    await item.click()
    await agent.page.locator('[data-testid=card-order]', { hasText: 'SO-7731' }).waitFor()
    await agent.page.locator('[data-testid=ctx-order]', { hasText: 'SO-7731' }).waitFor()
    await buyer.page.locator('[data-testid=sd-status][data-state=open]').waitFor()
    await shot(agent.page, 'workspace-aftersale')
    await shot(buyer.page, 'widget-order')
    // flow 6 (part): an image upload and a recall, seen on both sides
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64')
    await agent.page.setInputFiles('[data-testid=file-input]', { name: 'dot.png', mimeType: 'image/png', buffer: png })
    await agent.page.locator('[data-testid=msg-image]').waitFor()
    await buyer.page.locator('[data-testid=sd-image]').waitFor()
    await agent.page.fill('[data-testid=composer]', 'sent by mistake')
    await agent.page.press('[data-testid=composer]', 'Enter')
    await buyer.page.locator('[data-testid=sd-text]', { hasText: 'sent by mistake' }).waitFor()
    await agent.page.locator('[data-testid=msg].own', { hasText: 'sent by mistake' }).locator('[data-testid=recall]').click()
    await agent.page.locator('[data-testid=msg-recalled]').waitFor()
    await buyer.page.locator('[data-testid=sd-text]', { hasText: 'sent by mistake' }).waitFor({ state: 'detached' })
    await shot(agent.page, 'workspace-image-recall')
    await shot(buyer.page, 'widget-image-recall')
    // close with an outcome: both sides see the session end
    await agent.page.click('[data-testid=close-open]')
    await agent.page.selectOption('[data-testid=outcome]', 'resolved')
    await agent.page.click('[data-testid=close-confirm]')
    await buyer.page.locator('[data-testid=sd-status][data-state=closed]').waitFor()
    await agent.page.locator('[data-testid=msg-system]', { hasText: 'Session closed' }).waitFor()
    // the buyer rates the closed session: 4 stars with a comment; the API has it
    await buyer.page.locator('[data-testid=sd-rate]').waitFor()
    await shot(buyer.page, 'widget-rate')
    await buyer.page.click('[data-testid=sd-star-4]')
    await buyer.page.fill('[data-testid=sd-rate-comment]', 'quick and kind')
    await buyer.page.click('[data-testid=sd-rate-submit]')
    await buyer.page.locator('[data-testid=sd-rate-thanks]', { hasText: 'Thank you' }).waitFor()
    const rated = (await api(env.node.direct, 'GET', `/api/sessions?conversation_id=${convId}&state=closed`, env.manager)).sessions.find((x) => x.id === s.id)
    if (!rated || rated.rating !== 4 || rated.rating_comment !== 'quick and kind' || !rated.rated_at) throw new Error('rated session ' + JSON.stringify(rated))
    await shot(buyer.page, 'widget-rated')
    await agent.ctx.close(); await buyer.ctx.close()
  },

  async 'manager screens: live view with take-over, history search, agents and groups, language switch'(env) {
    const m = await agentLogin(env, 'manager', { notify: false })
    // a new buyer goes to presale1 by the rules; the manager takes the session over from the live view
    const b = await newBuyerAsks(env, '102', 'Can I have the teapot gift-wrapped?')
    const s0 = await assigned(env, b.convId)
    await m.page.click('[data-testid=nav-live]')
    await m.page.locator('[data-testid=live-table]').waitFor()
    await m.page.locator(`[data-testid=live-${s0.id}]`).waitFor()
    await shot(m.page, 'manager-live')
    await m.page.click(`[data-testid=live-read-${s0.id}]`)
    await m.page.locator('.live-reader [data-testid=msg-text]', { hasText: 'gift-wrapped' }).waitFor()
    await m.page.fill('[data-testid=takeover-note]', 'quality check')
    await m.page.click(`[data-testid=takeover-${s0.id}]`)
    await m.page.locator(`[data-testid=conv-${b.convId}].selected`).waitFor()
    await m.page.locator('[data-testid=msg-system]', { hasText: 'Assigned to manager' }).waitFor()
    await b.page.locator('[data-testid=sd-status][data-state=open]', { hasText: 'manager' }).waitFor()
    const mid = await staffId(env, 'manager')
    const took = (await api(env.node.direct, 'GET', `/api/sessions?conversation_id=${b.convId}&state=open`, env.manager)).sessions[0]
    if (!took || took.agent_id !== mid || took.assigned_by !== 'transfer') throw new Error('after the take-over ' + JSON.stringify(took))
    const tr = (await api(env.node.direct, 'GET', `/api/sessions/${s0.id}/traces`, env.manager)).traces.find((x) => x.rule_name === 'takeover') || {}
    if (tr.cause !== 'transfer' || tr.agent_id !== mid || !/taken over by manager .*quality check/.test(tr.note || '')) throw new Error('take-over trace ' + JSON.stringify(tr))
    const replay = (await api(env.node.direct, 'GET', '/api/routing/claims', env.manager)).replay
    if (replay.mismatches) throw new Error('claims replay after the take-over ' + JSON.stringify(replay))
    await m.page.fill('[data-testid=composer]', 'I will wrap it myself.')
    await m.page.press('[data-testid=composer]', 'Enter')
    await b.page.locator('[data-testid=sd-text]', { hasText: 'I will wrap it myself.' }).waitFor()
    await shot(m.page, 'manager-took-over')
    await m.page.click('[data-testid=close-open]')
    await m.page.click('[data-testid=close-confirm]')
    await b.page.locator('[data-testid=sd-status][data-state=closed]').waitFor()
    await b.ctx.close()
    // history search: flow 1's question, filtered by kind and agent, opens at its seq
    await m.page.click('[data-testid=nav-search]')
    await m.page.fill('[data-testid=search-q]', 'dishwasher')
    await m.page.selectOption('[data-testid=search-kind]', 'presale')
    const p1 = await staffId(env, 'presale1')
    await m.page.locator(`[data-testid=search-agent] option[value="${p1}"]`).waitFor({ state: 'attached' })
    await m.page.selectOption('[data-testid=search-agent]', String(p1))
    const hit = m.page.locator(`[data-testid^=hit-${env.shared.convId}-]`, { hasText: 'Yes, it is dishwasher-safe.' })
    await waitFor('the search index to have flow 1\'s answer', async () => {
      await m.page.click('[data-testid=search-go]')
      await m.page.locator('[data-testid=search-total]').waitFor()
      return (await hit.count()) > 0
    }, 30000, 1000)
    if (!(await hit.locator('[data-testid=hit-text] mark').count())) throw new Error('no highlight in ' + await hit.innerHTML())
    await hit.click()
    await m.page.locator('[data-testid=search-reader] [data-testid=msg].focus', { hasText: 'Yes, it is dishwasher-safe.' }).waitFor()
    await shot(m.page, 'manager-search')
    await m.page.selectOption('[data-testid=search-kind]', 'aftersale')
    await m.page.click('[data-testid=search-go]')
    await waitFor('no presale hit among after-sale results', async () => (await hit.count()) === 0)
    await m.page.selectOption('[data-testid=search-kind]', 'presale')
    await m.page.click('[data-testid=search-go]')
    await hit.click()
    await m.page.click('[data-testid=search-open-chat]')
    await m.page.locator(`[data-testid=conv-${env.shared.convId}].selected`).waitFor()
    await m.page.locator('[data-testid=msg].focus', { hasText: 'Yes, it is dishwasher-safe.' }).waitFor()
    await shot(m.page, 'workspace-search-focus')
    await m.page.click('[data-testid=nav-agents]')
    await m.page.locator('[data-testid=staff-presale2]').waitFor()
    const f = m.page.locator('[data-testid=staff-create]')
    await f.locator('input').nth(0).fill('presale3')
    await f.locator('input').nth(1).fill('demo1')
    await f.locator('input').nth(3).fill('presale')
    await f.locator('button[type=submit]').click()
    await m.page.locator('[data-testid=staff-presale3]').waitFor()
    const list = await api(env.node.direct, 'GET', '/api/staff', env.manager)
    const s = list.staff.find((x) => x.username === 'presale3')
    if (!s || JSON.stringify(s.groups) !== '["presale"]') throw new Error('created staff ' + JSON.stringify(s))
    await m.page.fill('[data-testid=shop-replies]', 'Hello, how can I help?\nThanks for waiting!')
    await m.page.click('[data-testid=shop-save]')
    await waitFor('quick replies saved', async () => JSON.stringify((await api(env.node.direct, 'GET', '/api/shop', env.manager)).shop.settings?.quick_replies) === '["Hello, how can I help?","Thanks for waiting!"]')
    const before = (await api(env.node.direct, 'GET', '/api/shop', env.manager)).buyer_secrets
    await m.page.click('[data-testid=shop-rotate]')
    await waitFor('a rotated secret', async () => (await api(env.node.direct, 'GET', '/api/shop', env.manager)).buyer_secrets[0] !== before[0])
    await shot(m.page, 'manager-agents')
    await m.page.click('[data-testid=lang]')
    await m.page.locator('[data-testid=nav-agents]', { hasText: '客服与分组' }).waitFor()
    await shot(m.page, 'manager-agents-zh')
    await m.page.click('[data-testid=logout]')
    await m.page.locator('[data-testid=login-form]').waitFor()
    await shot(m.page, 'login')
    await m.ctx.close()
    const home = await buyerOn(env, '/')
    await home.page.locator('[data-testid=product-101]').waitFor()
    await shot(home.page, 'store-home')
    await home.ctx.close()
  },
}


/** newBuyerAsks opens a fresh buyer (a new visitor) on a product page and sends one message. */
async function newBuyerAsks(env, productId, text) {
  const b = await buyerOn(env, `/store/product.html?id=${productId}`, 'en-US')
  await b.page.click('[data-testid=ask-product]')
  await b.page.locator('[data-testid=sd-panel]').waitFor()
  await buyerSend(b.page, text)
  b.convId = await b.page.evaluate(() => window.Shopdesk.state().conversation)
  return b
}

async function lastTrace(env, sessionId) {
  const r = await api(env.node.direct, 'GET', `/api/sessions/${sessionId}/traces`, env.manager)
  return r.traces[0] // newest first
}

Object.assign(flows, {
  async 'flow 3: a rule typo shows inline, the fix simulates to the new agent, publish routes a new buyer, rollback restores'(env) {
    const p2 = await agentLogin(env, 'presale2', { notify: false })
    await setOnline(p2.page)
    env.presale2 = p2
    const m = await agentLogin(env, 'manager', { notify: false })
    await m.page.click('[data-testid=nav-rules]')
    await m.page.locator('[data-testid=rules-valid]', { hasText: 'Valid' }).waitFor()
    await shot(m.page, 'rules-editor')
    const p2id = await staffId(env, 'presale2')
    await m.page.click('[data-testid=rule-add]')
    // the new rule is last among the rules (index 2); drag it to the top with the ↑ buttons
    const card = m.page.locator('[data-testid=rule-2]')
    await card.locator('button', { hasText: '↑' }).click()
    await m.page.locator('[data-testid=rule-1] button', { hasText: '↑' }).click()
    await m.page.fill('[data-testid=rule-name-0]', 'tea to presale2')
    const when = m.page.locator('[data-testid=rule-when-0]')
    await when.click()
    await when.pressSequentially('session.product.cat')
    await m.page.locator('[data-testid=completions] li', { hasText: 'session.product.category' }).waitFor()
    await when.press('Tab')
    await when.pressSequentially(' == "tea"')
    const target = m.page.locator('[data-testid=rule-target-0]')
    await target.fill(`agent.statsu == "online" && agent.id == ${p2id}`)
    await m.page.locator('[data-testid=rule-0] [data-testid=expr-error]', { hasText: 'statsu' }).waitFor()
    await m.page.locator('[data-testid=rules-valid]', { hasText: '1 error(s)' }).waitFor()
    if ((await when.inputValue()) !== 'session.product.category == "tea"') throw new Error('completion left ' + JSON.stringify(await when.inputValue()))
    await shot(m.page, 'rules-inline-error')
    await target.fill(`agent.status == "online" && agent.id == ${p2id}`)
    await m.page.locator('[data-testid=rules-valid]', { hasText: 'Valid' }).waitFor()
    if (await m.page.locator('[data-testid=rule-0] [data-testid=expr-error]').count()) throw new Error('error still shown after the fix')
    await m.page.locator('[data-testid=sim-category]').fill('tea')
    await m.page.click('[data-testid=sim-run]')
    await waitFor('the simulator to pick the new rule', async () => (await m.page.locator('[data-testid=sim-rule]').textContent()) === 'tea to presale2')
    await m.page.locator('[data-testid=sim-agent]', { hasText: 'Presale Two' }).waitFor()
    await shot(m.page, 'rules-simulated')
    await m.page.fill('[data-testid=rules-comment]', 'tea goes to presale2')
    await m.page.click('[data-testid=rules-publish]')
    await m.page.locator('[data-testid=rules-message]', { hasText: 'Published' }).waitFor()
    const vers = await api(env.node.direct, 'GET', '/api/routing/versions', env.manager)
    if (!(vers.active > 0)) throw new Error('nothing published: active ' + vers.active)
    // schedules as a form: two overlapping windows (in 2030, so that nothing changes now) are refused
    // with the server's error on the row; moved apart they save; removed, the list is empty again
    const sched = m.page.locator('[data-testid=schedules-editor]')
    await sched.locator('[data-testid=sched-tz]', { hasText: 'Asia/Shanghai' }).waitFor()
    await sched.locator('[data-testid=sched-add-window]').click()
    await sched.locator('[data-testid=sched-add-window]').click()
    await sched.locator('[data-testid=sched-start-0]').fill('2030-01-01T08:00')
    await sched.locator('[data-testid=sched-end-0]').fill('2030-01-01T20:00')
    await sched.locator('[data-testid=sched-start-1]').fill('2030-01-01T12:00')
    await sched.locator('[data-testid=sched-end-1]').fill('2030-01-02T00:00')
    m.page.allowedErrors = /status of 400/ // the refused list is a 400, which the browser logs
    await sched.locator('[data-testid=sched-save]').click()
    await sched.locator('[data-testid=sched-1] [data-testid=sched-error]', { hasText: 'overlaps' }).waitFor()
    m.page.allowedErrors = null
    await shot(m.page, 'rules-schedule-overlap')
    if ((await api(env.node.direct, 'GET', '/api/routing/schedules', env.manager)).schedules.length) throw new Error('a refused schedule list was stored')
    await sched.locator('[data-testid=sched-start-1]').fill('2030-01-01T20:00')
    await sched.locator('[data-testid=sched-save]').click()
    await sched.locator('[data-testid=sched-saved]').waitFor()
    const stored = (await api(env.node.direct, 'GET', '/api/routing/schedules', env.manager)).schedules
    if (stored.length !== 2 || stored[1].start !== '2030-01-01T20:00' || stored[0].time_zone !== 'Asia/Shanghai') throw new Error('stored schedules ' + JSON.stringify(stored))
    await sched.locator('[data-testid=sched-remove-1]').click()
    await sched.locator('[data-testid=sched-remove-0]').click()
    await sched.locator('[data-testid=sched-save]').click()
    await sched.locator('[data-testid=sched-saved]').waitFor()
    if ((await api(env.node.direct, 'GET', '/api/routing/schedules', env.manager)).schedules.length) throw new Error('schedules not removed')
    const b1 = await newBuyerAsks(env, '103', 'Is this year\'s Longjing in stock?')
    const s1 = await assigned(env, b1.convId)
    const t1 = await lastTrace(env, s1.id)
    if (s1.agent_id !== p2id || t1.rule_name !== 'tea to presale2') throw new Error(`new buyer went to ${s1.agent_id} by ${t1.rule_name}`)
    await p2.page.locator(`[data-testid=conv-${b1.convId}]`).waitFor()
    await m.page.locator('[data-testid=version-' + vers.active + ']').waitFor()
    await m.page.click('[data-testid=rollback-0]')
    await m.page.locator('[data-testid=rules-message]', { hasText: 'Rolled back' }).waitFor()
    await m.page.click('[data-testid=sim-run]')
    await waitFor('the simulator to use the restored rules', async () => (await m.page.locator('[data-testid=sim-rule]').textContent()) === 'presale')
    await shot(m.page, 'rules-rolled-back')
    const b2 = await newBuyerAsks(env, '103', 'And the 250 g box?')
    const s2 = await assigned(env, b2.convId)
    const t2 = await lastTrace(env, s2.id)
    if (t2.rule_name !== 'presale') throw new Error('after rollback the buyer went by rule ' + t2.rule_name)
    // the simulator on a recent session picked from the list
    await m.page.reload()
    await m.page.locator(`[data-testid=sim-session] option[value="${s2.id}"]`).waitFor({ state: 'attached' })
    await m.page.selectOption('[data-testid=sim-session]', String(s2.id))
    await m.page.click('[data-testid=sim-run]')
    await waitFor('the simulator on a recent session', async () => (await m.page.locator('[data-testid=sim-rule]').textContent()) === 'presale')
    for (const c of [m, b1, b2]) await c.ctx.close()
  },

  async 'flow 6: transfer to the after-sale group with a note, seen by both sides'(env) {
    const { agent, buyer, convId } = env.shared || {}
    if (!agent) throw new Error('needs flow 1')
    const as = await agentLogin(env, 'aftersale1')
    await setOnline(as.page)
    await agent.page.locator(`[data-testid=conv-${convId}]`).click()
    await agent.page.click('[data-testid=transfer-open]')
    // an agent may pick a colleague as well as a group
    await agent.page.locator('[data-testid=transfer-to] option', { hasText: 'Aftersale One' }).waitFor({ state: 'attached' })
    await agent.page.selectOption('[data-testid=transfer-to]', 'g:aftersale')
    await agent.page.fill('[data-testid=transfer-note]', 'wants a refund for the cup')
    await shot(agent.page, 'workspace-transfer')
    await agent.page.click('[data-testid=transfer-confirm]')
    const item = as.page.locator(`[data-testid=conv-${convId}]`)
    await item.waitFor()
    await waitFor('the notification hook', async () => (await as.page.evaluate((id) => window.__notified.some((n) => n.conversation_id === id), convId)))
    await item.click()
    await as.page.locator('[data-testid=transfer-note-shown]', { hasText: 'wants a refund for the cup' }).waitFor()
    await as.page.locator('[data-testid=msg-text]', { hasText: 'gap message 5' }).waitFor()
    await buyer.page.locator('[data-testid=sd-status][data-state=open]', { hasText: 'Aftersale One' }).waitFor()
    await agent.page.locator('[data-testid=composer]').waitFor({ state: 'detached' })
    await as.page.fill('[data-testid=composer]', 'I can help with the refund.')
    await as.page.press('[data-testid=composer]', 'Enter')
    await buyer.page.locator('[data-testid=sd-text]', { hasText: 'I can help with the refund.' }).waitFor()
    // a quick reply, searched with /
    await as.page.fill('[data-testid=composer]', '/thanks')
    await as.page.locator('[data-testid=quick-replies]', { hasText: 'Thanks for waiting!' }).waitFor()
    await as.page.press('[data-testid=composer]', 'Enter')
    await as.page.press('[data-testid=composer]', 'Enter')
    await buyer.page.locator('[data-testid=sd-text]', { hasText: 'Thanks for waiting!' }).waitFor()
    await shot(as.page, 'workspace-transferred')
    await shot(buyer.page, 'widget-transferred')
    await as.ctx.close()
  },

  async 'flow 5: all presale agents busy, the buyer sees queue position 1 and is assigned when one frees up'(env) {
    const p1 = env.shared?.agent
    const p2 = env.presale2
    if (!p1 || !p2) throw new Error('needs flows 1 and 3')
    for (const a of [p1, p2]) {
      await a.page.selectOption('[data-testid=status-select]', 'busy')
      await waitFor('status busy', async () => (await a.page.locator('[data-testid=status-select]').inputValue()) === 'busy')
    }
    const b = await newBuyerAsks(env, '102', 'Is the teapot handmade?')
    await b.page.locator('[data-testid=sd-status][data-state=queued][data-position="1"]').waitFor()
    await shot(b.page, 'widget-queued')
    await p2.page.selectOption('[data-testid=status-select]', 'online')
    await b.page.locator('[data-testid=sd-status][data-state=open]').waitFor()
    const s = await assigned(env, b.convId)
    if (s.agent_id !== await staffId(env, 'presale2')) throw new Error('assigned to ' + s.agent_id)
    await p2.page.locator(`[data-testid=conv-${b.convId}]`).waitFor()
    await shot(b.page, 'widget-assigned-from-queue')
    await b.ctx.close()
    await p2.ctx.close()
  },
})


/** site serves, on a port of its own, a page that embeds a shop's widget from the node's origin. */
// site serves a page embedding the widget of the shop page.slug names. It listens on a port of its
// own first: the shop's allowed origin is the site's address.
async function site(widgetBase, title) {
  const page = { slug: '' }
  const srv = http.createServer((req, res) => {
    const html = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>${title}</title></head>
<body><h1>${title}</h1><script src="${widgetBase}/widget.js" data-shop="${page.slug}" async></script></body></html>`
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }); res.end(html)
  })
  await new Promise((r) => srv.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${srv.address().port}`
  return { page, url, close: () => new Promise((r) => { srv.closeAllConnections?.(); srv.close(r) }) }
}

Object.assign(flows, {
  async 'flow 9: the widget on an allowed second origin works; on a third origin it is refused'(env) {
    const allowed = await site(env.node.shop, 'Partner shop')
    const other = await site(env.node.shop, 'Someone else')
    const slug = 'partner-' + Math.random().toString(36).slice(2, 8)
    allowed.page.slug = other.page.slug = slug
    await api(env.node.direct, 'POST', '/api/operator/shops', 'e2e-operator',
      { slug, name: 'Partner', allowed_origins: [allowed.url], manager_username: 'boss', manager_password: 'demo1' })
    const ctx = await env.browser.newContext({ viewport: { width: 390, height: 844 }, locale: 'en-US' })
    try {
      const a = watch(await ctx.newPage(), 'second-origin')
      a.setDefaultTimeout(25000)
      await a.goto(allowed.url)
      await a.waitForFunction(() => window.Shopdesk && typeof window.Shopdesk.open === 'function')
      await a.click('[data-testid=sd-bubble]')
      // no page context: a simple question picker; then an emoji from the palette
      await a.click('[data-testid=sd-pick-1]')
      await a.locator('[data-testid=sd-text]', { hasText: 'About my order' }).waitFor()
      await a.locator('[data-testid=sd-picker]').waitFor({ state: 'hidden' })
      await a.click('[data-testid=sd-emoji-btn]')
      await a.locator('[data-testid=sd-emojis] button', { hasText: '👍' }).click()
      await a.press('[data-testid=sd-input]', 'Enter')
      await a.locator('[data-testid=sd-text]', { hasText: '👍' }).waitFor()
      await buyerSend(a, 'Hello from a partner site')
      // no one of the partner shop is at work: the buyer is invited to leave a message
      await a.locator('[data-testid=sd-status][data-nobody]', { hasText: 'leave a message' }).waitFor()
      await shot(a, 'widget-second-origin')
      const b = watch(await ctx.newPage(), 'third-origin')
      b.setDefaultTimeout(25000)
      b.allowedErrors = /status of 403/
      await b.goto(other.url)
      await b.waitForFunction(() => window.Shopdesk && typeof window.Shopdesk.open === 'function')
      await b.click('[data-testid=sd-bubble]')
      await b.locator('[data-testid=sd-status][data-state=refused]').waitFor()
      await shot(b, 'widget-third-origin-refused')
    } finally {
      await ctx.close()
      await allowed.close()
      await other.close()
    }
  },
})


Object.assign(flows, {
  async "flow 7: the dashboard's figures equal the API's for the same period"(env) {
    const m = await agentLogin(env, 'manager', { notify: false })
    await m.page.click('[data-testid=nav-dashboard]')
    await m.page.locator('[data-testid=dashboard]').waitFor()
    await m.page.click('[data-testid=dash-refresh]')
    await sleep(500)
    const list = (await api(env.node.direct, 'GET', '/api/sessions?limit=500', env.manager)).sessions
    const hour = list.filter((x) => Date.parse(x.opened_at) >= Date.now() - 3600e3)
    const queue = await api(env.node.direct, 'GET', '/api/routing/queue', env.manager)
    const per = {}
    for (const x of hour) if (x.agent_id) per[x.agent_id] = (per[x.agent_id] || 0) + 1
    const rated = hour.filter((x) => x.rating)
    const satisfaction = rated.length ? `${(rated.reduce((a, x) => a + x.rating, 0) / rated.length).toFixed(1)} (${rated.length})` : '—'
    if (!rated.length) throw new Error('expected flow 2\'s rating in the last hour')
    await waitFor('the dashboard to match the API', async () => {
      const fig = async (id) => (await m.page.locator(`[data-testid=${id}]`).textContent()).trim()
      if (await fig('fig-sessions') !== String(hour.length)) return false
      if (await fig('fig-queue') !== String(queue.length)) return false
      if (await fig('fig-satisfaction') !== satisfaction) return false
      for (const [id, n] of Object.entries(per)) {
        const row = m.page.locator(`[data-testid=per-agent-${id}] b`)
        if (!(await row.count()) || (await row.textContent()) !== String(n)) return false
      }
      return true
    })
    if (hour.length < 5) throw new Error('expected the earlier flows\' sessions, got ' + hour.length)
    await shot(m.page, 'manager-dashboard')
    await m.ctx.close()
  },
})

async function runMode(browser, mode) {
  rmSync(join(ARTIFACTS, mode), { recursive: true, force: true })
  const node = await startNode(mode, mode)
  if (node.unavailable) {
    if (process.env.CI === 'true') { results.push({ mode, name: 'backends', ok: false, err: node.unavailable }); return }
    console.log(`BACKEND-SKIP e2e ${mode}: ${node.unavailable}`)
    return
  }
  const notes = []
  const env = { node, browser, mode, note: (s) => notes.push(s) }
  env.manager = (await api(node.direct, 'POST', '/api/login', '', { shop: 'demo', username: 'manager', password: 'demo' })).token
  if (!node.uiMounted) notes.push('the binary does not serve the UI yet (app/http.go lacks the mountUI call): the test front serves admin-ui/dist and passes the rest to the node')
  try {
    const pickFlows = process.env.E2E_FLOWS ? process.env.E2E_FLOWS.split(',') : null
    await runFlows(env, Object.entries(flows).filter(([n]) => !pickFlows || pickFlows.some((p) => n.startsWith(p))))
  } finally {
    for (const n of notes) console.log(`     note [${mode}]: ${n}`)
    for (const c of browser.contexts()) await c.close().catch(() => {})
    await node.stop()
  }
}

/** runFlows runs flows in order against env, each bounded in time, failing on any console error. */
async function runFlows(env, list) {
  const { browser, mode } = env
  for (const [name, f] of list) {
    shotDir = join(ARTIFACTS, mode)
    consoleErrors = []
    const t0 = Date.now()
    let err = null
    try {
      await Promise.race([f(env), sleep(150000).then(() => { throw new Error('flow timed out after 150s') })])
    } catch (e) {
      err = e.message.split('\n').filter((l) => l.trim() && !l.includes('=====')).slice(0, 3).join(' | ')
      for (const [i, pg] of browser.contexts().flatMap((c) => c.pages()).entries()) await shot(pg, `FAILED-${list.findIndex((x) => x[0] === name)}-${i}`).catch(() => {})
    }
    if (!err && consoleErrors.length) err = consoleErrors.join('; ')
    results.push({ mode, name, ok: !err, err, ms: Date.now() - t0 })
    console.log(`${err ? 'FAIL' : 'ok  '} [${mode}] ${name} (${Date.now() - t0} ms)${err ? '\n     ' + err : ''}`)
  }
}

/**
 * runCluster is flow 8: flows 1 and 4 with the buyer and the agent on different nodes of a 3-node
 * cluster (three `shopdesk serve` on one MariaDB database and Redis prefix, each behind its own cut
 * proxy, which is its public URL). The buyer's pages come from node 1, the agent's from node 2; both
 * reach their WebSocket node through /api/gateway (the least-loaded node), and the test checks, from
 * each connection's hello, that the two are on different nodes. Cutting cuts the agent's connections
 * on every node.
 */
async function runCluster(browser) {
  const mode = 'cluster'
  rmSync(join(ARTIFACTS, mode), { recursive: true, force: true })
  const be = backend('production')
  if (be.unavailable) {
    if (process.env.CI === 'true') { results.push({ mode, name: 'backends', ok: false, err: be.unavailable }); return }
    console.log(`BACKEND-SKIP e2e ${mode}: ${be.unavailable}`)
    return
  }
  const nodes = []
  const notes = []
  try {
    // one after the other: the first seeds the demo shop, the others find it
    for (let i = 1; i <= 3; i++) nodes.push(await startNode('production', `${mode}-n${i}`, { be, extra: ['--node-id', `e2e-n${i}`] }))
    const [n1, n2] = nodes
    const node = {
      direct: n1.direct, shop: n1.shop, agent: n2.agent, uiMounted: n1.uiMounted,
      proxy: { cut: () => nodes.forEach((n) => n.proxy.cut()), restore: () => nodes.forEach((n) => n.proxy.restore()) },
    }
    const env = { node, browser, mode, note: (s) => notes.push(s) }
    env.manager = (await api(node.direct, 'POST', '/api/login', '', { shop: 'demo', username: 'manager', password: 'demo' })).token
    const nodeOf = async (page) => page.locator('[data-testid=conn-state]').getAttribute('data-node')
    env.cluster = {
      /** separate waits until the gateway offers another node than the agent's (the registry counts
       *  connections every 2 s), so that the buyer, who connects next, lands elsewhere. */
      async separate(agentPage) {
        const mine = await nodeOf(agentPage)
        if (!mine) throw new Error('the workspace does not show its node')
        await waitFor('the gateway to offer another node than the agent\'s', async () => (await api(n1.direct, 'GET', '/api/gateway')).node !== mine, 15000, 250)
      },
      /** check fails unless the agent and the buyer are connected to different nodes; with strict
       *  false it only records where they are (after a reconnect the gateway's pick is the
       *  registry's, which may be 2 s old). */
      async check(agentPage, buyerPage, strict = true) {
        const a = await nodeOf(agentPage)
        const b = await buyerPage.evaluate(() => window.Shopdesk.state().node)
        if (strict && (!a || !b || a === b)) throw new Error(`agent on node ${a}, buyer on node ${b}: not on different nodes`)
        notes.push(`agent on ${a}, buyer on ${b}${strict ? '' : ' (after the agent reconnected)'}`)
      },
    }
    const pick = (prefix) => Object.entries(flows).find(([n]) => n.startsWith(prefix))
    const [, f1] = pick('flow 1:')
    const [, f4] = pick('flow 4:')
    await runFlows(env, [
      ['flow 8 (flow 1 on a 3-node cluster, buyer and agent on different nodes)', f1],
      ['flow 8 (flow 4 on a 3-node cluster, buyer and agent on different nodes)', f4],
    ])
  } finally {
    for (const n of new Set(notes)) console.log(`     note [${mode}]: ${n}`)
    for (const c of browser.contexts()) await c.close().catch(() => {})
    for (const n of nodes) await n.stop().catch(() => {})
    be.close()
  }
}

if (!existsSync(CHROMIUM)) {
  const why = `Chromium is missing at ${CHROMIUM} (apt-get install -y chromium)`
  if (process.env.CI === 'true') { console.log(`FAIL ${why}\ne2e: 0 passed, 1 failed`); process.exit(1) }
  console.log(`BACKEND-SKIP e2e: ${why}\ne2e: 0 passed, 0 failed`)
  process.exit(0)
}
mkdirSync(ARTIFACTS, { recursive: true })
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROME_ARGS })
try {
  for (const mode of only) {
    if (mode === 'cluster') await runCluster(browser)
    else await runMode(browser, mode)
  }
} finally {
  await browser.close()
}
const passed = results.filter((r) => r.ok).length
const failed = results.length - passed
writeFileSync(join(ARTIFACTS, 'results.json'), JSON.stringify(results, null, 2))
console.log(`e2e: ${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
