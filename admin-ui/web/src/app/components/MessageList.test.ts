import { describe, it, expect } from 'vitest'
import { mount } from '@vue/test-utils'
import MessageList from './MessageList.vue'
import { setLang } from '../i18n'
import type { Message } from '../../shared/types'

const now = Date.parse('2026-11-22T10:00:00Z')
function msg(seq: number, kind: 'buyer' | 'staff' | 'system', body: Message['body'], extra: Partial<Message> = {}): Message {
  return { conversation_id: 1, seq, client_msg_id: 'c' + seq, sender_kind: kind, sender_id: kind === 'staff' ? 2 : kind === 'buyer' ? 1 : 0, body, server_time: new Date(now - 30000).toISOString(), ...extra }
}
function make(msgs: Message[], props: Record<string, unknown> = {}) {
  setLang('en')
  return mount(MessageList, { props: { msgs, ownKind: 'staff', ownId: 2, peerRead: 0, more: false, now, resolveBlob: async (k: string) => 'blob:' + k, ...props } })
}

describe('MessageList', () => {
  it('renders text in seq order, own messages on the right, system notices centred', () => {
    const w = make([
      msg(1, 'buyer', { type: 'text', text: 'Is it dishwasher-safe?' }),
      msg(2, 'system', { type: 'system', event: 'assigned', text: 'Presale One' }),
      msg(3, 'staff', { type: 'text', text: 'Yes it is' }),
    ])
    const texts = w.findAll('[data-testid="msg-text"]').map((x) => x.text())
    expect(texts).toEqual(['Is it dishwasher-safe?', 'Yes it is'])
    expect(w.find('[data-testid="msg-system"]').text()).toBe('Assigned to Presale One')
    const rows = w.findAll('[data-testid="msg"]')
    expect(rows[0].classes()).not.toContain('own')
    expect(rows[1].classes()).toContain('own')
  })

  it('shows read receipts on own messages from the peer read seq', () => {
    const list = [msg(1, 'staff', { type: 'text', text: 'a' }), msg(2, 'staff', { type: 'text', text: 'b' })]
    const w = make(list, { peerRead: 1 })
    const r = w.findAll('[data-testid="receipt"]').map((x) => x.text())
    expect(r).toEqual(['Read', 'Unread'])
  })

  it('hides recalled messages and the recall entries themselves', () => {
    const w = make([
      msg(1, 'buyer', { type: 'text' }, { recalled: true }),
      msg(2, 'buyer', { type: 'recall', recall_seq: 1 }),
      msg(3, 'buyer', { type: 'text', text: 'still here' }),
    ])
    expect(w.findAll('[data-testid="msg"]').length).toBe(2)
    expect(w.find('[data-testid="msg-recalled"]').text()).toBe('Message recalled')
    expect(w.findAll('[data-testid="msg-text"]').map((x) => x.text())).toEqual(['still here'])
  })

  it('offers recall only on own messages younger than two minutes', async () => {
    const w = make([
      msg(1, 'staff', { type: 'text', text: 'fresh' }),
      msg(2, 'staff', { type: 'text', text: 'old' }, { server_time: new Date(now - 300000).toISOString() }),
      msg(3, 'buyer', { type: 'text', text: 'theirs' }),
    ])
    const buttons = w.findAll('[data-testid="recall"]')
    expect(buttons.length).toBe(1)
    await buttons[0].trigger('click')
    expect(w.emitted('recall')).toEqual([[1]])
  })

  it('renders product and order cards, images and pending sends', async () => {
    const w = make([
      msg(1, 'buyer', { type: 'product', card: { id: '101', title: 'Celadon tea cup', price: '¥29.00' } }),
      msg(2, 'buyer', { type: 'order', card: { id: 'SO-7731', title: 'Cup x2', status: 'shipped' } }),
      msg(3, 'staff', { type: 'image', blob_key: 'uploads/1/x.png', name: 'x.png' }),
    ], { pending: [{ client_msg_id: 'p1', body: { type: 'text', text: 'on its way' }, state: 'failed', at: '' }] })
    expect(w.find('[data-testid="card-product"]').text()).toContain('Celadon tea cup')
    expect(w.find('[data-testid="card-order"]').text()).toContain('SO-7731')
    await new Promise((r) => setTimeout(r, 0))
    expect(w.find('[data-testid="msg-image"]').attributes('src')).toBe('blob:uploads/1/x.png')
    expect(w.find('[data-testid="msg-pending"]').text()).toContain('on its way')
  })

  it('asks for older messages when there are more', async () => {
    const w = make([msg(5, 'buyer', { type: 'text', text: 'x' })], { more: true })
    await w.find('[data-testid="load-older"]').trigger('click')
    expect(w.emitted('older')).toBeTruthy()
  })
})
