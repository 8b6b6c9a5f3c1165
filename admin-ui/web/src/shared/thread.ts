// Thread holds one conversation's messages on a device: one per seq, in seq order, with the
// device's cursor (highest seq held with nothing missing below it since the first loaded seq).
// A pushed message whose seq is not cursor+1 is a gap: the owner pulls seq > cursor.
import type { Message } from './types'

export class Thread {
  bySeq = new Map<number, Message>()
  /** cursor: the highest seq such that every seq from `oldest` to it is held. */
  cursor = 0
  /** oldest seq loaded; 1 when scroll-back reached the start. */
  oldest = 0
  recalled = new Set<number>()

  /** add merges messages (from a push, sync or history page); returns true when something was new. */
  add(msgs: Message[]): boolean {
    let changed = false
    for (const m of msgs) {
      if (this.bySeq.has(m.seq)) {
        const old = this.bySeq.get(m.seq)!
        if (m.recalled && !old.recalled) { this.bySeq.set(m.seq, m); changed = true }
        continue
      }
      this.bySeq.set(m.seq, m)
      if (m.body?.type === 'recall' && m.body.recall_seq) this.recalled.add(m.body.recall_seq)
      if (m.recalled) this.recalled.add(m.seq)
      if (this.oldest === 0 || m.seq < this.oldest) this.oldest = m.seq
      changed = true
    }
    if (this.cursor === 0 && this.oldest > 0) this.cursor = this.oldest - 1
    while (this.bySeq.has(this.cursor + 1)) this.cursor++
    return changed
  }

  /** isGap tells whether a pushed seq skips past the cursor (something before it is missing). */
  isGap(seq: number): boolean {
    return this.oldest > 0 && seq > this.cursor + 1
  }

  /** list returns the messages in seq order, with recalled originals marked. */
  list(): Message[] {
    return [...this.bySeq.values()].sort((a, b) => a.seq - b.seq).map((m) =>
      this.recalled.has(m.seq) && !m.recalled ? { ...m, recalled: true } : m)
  }

  get last(): number {
    let max = 0
    for (const s of this.bySeq.keys()) if (s > max) max = s
    return max
  }
}
