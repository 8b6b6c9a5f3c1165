import { describe, it, expect } from 'vitest'
import { figures, percentile } from './dashboard'
import type { Session } from '../shared/types'

const now = Date.parse('2026-11-22T12:00:00Z')
const at = (s: number) => new Date(now - s * 1000).toISOString()
function s(id: number, openedAgo: number, assignAfter?: number, firstAfter?: number, agent = 2): Session {
  return {
    id, conversation_id: id, shop_id: 1, buyer_id: id, kind: 'presale', state: 'open', agent_id: assignAfter === undefined ? 0 : agent, first_seq: 1,
    opened_at: at(openedAgo),
    assigned_at: assignAfter === undefined ? undefined : at(openedAgo - assignAfter),
    first_response_at: firstAfter === undefined ? undefined : at(openedAgo - (assignAfter || 0) - firstAfter),
  }
}

describe('dashboard figures', () => {
  it('percentile uses the nearest rank', () => {
    expect(percentile([], 0.5)).toBe(0)
    expect(percentile([5, 1, 3, 2, 4], 0.5)).toBe(3)
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9)).toBe(9)
  })
  it('counts sessions opened in the period, per agent, with assignment and first-response times', () => {
    const f = figures([s(1, 100, 2, 10), s(2, 200, 4, 30, 3), s(3, 300), s(4, 7200, 1, 1)], now, 3600e3)
    expect(f.sessions).toBe(3)
    expect(f.perAgent).toEqual({ 2: 1, 3: 1 })
    expect(f.assignP50).toBe(2)
    expect(f.assignP90).toBe(4)
    expect(f.firstResponseP50).toBe(12)
    expect(f.firstResponseP90).toBe(34)
  })
  it('averages the ratings of the period, overall and per agent', () => {
    const r = (x: Session, rating?: number): Session => ({ ...x, state: 'closed', rating })
    const f = figures([r(s(1, 100, 2, 10), 4), r(s(2, 200, 2, 10), 5), r(s(3, 300, 1, 1, 3), 2), r(s(4, 400, 1, 1, 3)), r(s(5, 7200, 1, 1), 1)], now, 3600e3)
    expect(f.rating).toEqual({ avg: 11 / 3, count: 3 })
    expect(f.ratingPerAgent).toEqual({ 2: { avg: 4.5, count: 2 }, 3: { avg: 2, count: 1 } })
    expect(figures([], now, 3600e3).rating).toEqual({ avg: 0, count: 0 })
  })
})
