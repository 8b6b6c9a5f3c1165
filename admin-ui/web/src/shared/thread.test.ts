import { describe, it, expect } from 'vitest'
import { Thread } from './thread'
import type { Message } from './types'

const m = (seq: number, extra: Partial<Message> = {}): Message => ({ conversation_id: 1, seq, client_msg_id: 'c' + seq, sender_kind: 'buyer', sender_id: 1, body: { type: 'text', text: 't' + seq }, server_time: '', ...extra })

describe('Thread', () => {
  it('keeps one message per seq and advances the cursor over contiguous seqs', () => {
    const t = new Thread()
    t.add([m(3), m(4)])
    expect(t.cursor).toBe(4)
    t.add([m(4), m(5)])
    expect(t.list().map((x) => x.seq)).toEqual([3, 4, 5])
    expect(t.cursor).toBe(5)
  })
  it('detects a gap and closes it when the missing seqs arrive', () => {
    const t = new Thread()
    t.add([m(1)])
    expect(t.isGap(2)).toBe(false)
    expect(t.isGap(4)).toBe(true)
    t.add([m(4)])
    expect(t.cursor).toBe(1)
    t.add([m(2), m(3)])
    expect(t.cursor).toBe(4)
  })
  it('marks the original of a recall as recalled', () => {
    const t = new Thread()
    t.add([m(1), m(2, { body: { type: 'recall', recall_seq: 1 } })])
    expect(t.list()[0].recalled).toBe(true)
  })
  it('pages backwards without moving the cursor', () => {
    const t = new Thread()
    t.add([m(10), m(11)])
    t.add([m(8), m(9)])
    expect(t.oldest).toBe(8)
    expect(t.cursor).toBe(11)
  })
})
