// The dashboard's figures, computed from documented lists (GET /api/sessions, /api/routing,
// /api/routing/queue, /api/routing/agents) for a period ending now.
import type { Session } from '../shared/types'

/** percentile by nearest rank; 0 for no values. */
export function percentile(values: number[], p: number): number {
  if (!values.length) return 0
  const s = [...values].sort((a, b) => a - b)
  return s[Math.max(0, Math.ceil(p * s.length) - 1)]
}

export interface Figures {
  sessions: number
  perAgent: Record<number, number>
  assignP50: number; assignP90: number
  firstResponseP50: number; firstResponseP90: number
  /** buyers' 1–5 ratings of the period's sessions: overall and per agent (avg 0 for none). */
  rating: Rating
  ratingPerAgent: Record<number, Rating>
}
export interface Rating { avg: number; count: number }

/** figures over the sessions opened in [now - periodMs, now]; times in seconds. */
export function figures(list: Session[], now: number, periodMs: number): Figures {
  const from = now - periodMs
  const inPeriod = list.filter((s) => Date.parse(s.opened_at) >= from && Date.parse(s.opened_at) <= now)
  const perAgent: Record<number, number> = {}
  const assign: number[] = []
  const first: number[] = []
  const sum = { all: 0, n: 0 }
  const rsum: Record<number, { s: number; n: number }> = {}
  for (const s of inPeriod) {
    if (s.agent_id) perAgent[s.agent_id] = (perAgent[s.agent_id] || 0) + 1
    if (s.assigned_at) assign.push((Date.parse(s.assigned_at) - Date.parse(s.opened_at)) / 1000)
    // first response counts from the buyer's opening message: a transfer moves assigned_at, not it
    if (s.first_response_at) first.push((Date.parse(s.first_response_at) - Date.parse(s.opened_at)) / 1000)
    if (s.rating) {
      sum.all += s.rating; sum.n++
      if (s.agent_id) { const r = (rsum[s.agent_id] ||= { s: 0, n: 0 }); r.s += s.rating; r.n++ }
    }
  }
  const ratingPerAgent: Record<number, Rating> = {}
  for (const [id, r] of Object.entries(rsum)) ratingPerAgent[Number(id)] = { avg: r.s / r.n, count: r.n }
  return {
    sessions: inPeriod.length, perAgent,
    assignP50: percentile(assign, 0.5), assignP90: percentile(assign, 0.9),
    firstResponseP50: percentile(first, 0.5), firstResponseP90: percentile(first, 0.9),
    rating: { avg: sum.n ? sum.all / sum.n : 0, count: sum.n }, ratingPerAgent,
  }
}
