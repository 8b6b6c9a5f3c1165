package routing

import (
	"context"
	"time"
)

// Store returns the engine's store of versions, drafts, schedules, traces and shadow results.
func (e *Engine) Store() *Store { return e.p.Store }

// QueueView is a waiting session as managers see it.
type QueueView struct {
	QueueEntry
	// Position is the 1-based place in the shop's queue.
	Position int `json:"position"`
	// ETASeconds is the expected wait, 0 when there is no estimate yet.
	ETASeconds int `json:"eta_seconds"`
}

// Queue returns up to limit of the shop's waiting sessions in the order they will be served, with
// their expected waits.
func (e *Engine) Queue(ctx context.Context, shopID int64, limit int) ([]QueueView, error) {
	entries, err := e.p.Queue.Ordered(ctx, shopID, limit)
	if err != nil {
		return nil, err
	}
	sh := e.shop(shopID)
	now := e.now()
	out := make([]QueueView, len(entries))
	sh.mu.Lock()
	for i, q := range entries {
		out[i] = QueueView{QueueEntry: q, Position: i + 1, ETASeconds: int(sh.eta.estimate(i+1, now).Round(time.Second) / time.Second)}
	}
	sh.mu.Unlock()
	return out, nil
}

// QueueLength returns how many sessions of the shop wait.
func (e *Engine) QueueLength(ctx context.Context, shopID int64) (int, error) {
	return e.p.Queue.Len(ctx, shopID)
}

// Claims returns the shop's claim log, oldest first: every claim, forced claim and release of capacity,
// for audits (ReplayClaims recomputes the loads and finds any claim above capacity).
func (e *Engine) Claims(ctx context.Context, shopID int64) ([]ClaimEvent, error) {
	return e.p.Slots.ClaimLog(ctx, shopID)
}

// Loads returns the capacity units each of the agents holds now.
func (e *Engine) Loads(ctx context.Context, shopID int64, agentIDs []int64) (map[int64]int, error) {
	return e.p.Slots.Load(ctx, shopID, agentIDs)
}

// Drain assigns the shop's waiting sessions that can be assigned now, and returns how many it
// assigned. Changes the engine is not told of (another node's publish, say) are found by Tick.
func (e *Engine) Drain(ctx context.Context, shopID int64) (int, error) {
	e.invalidate(shopID)
	return e.drain(ctx, shopID, e.now(), false)
}
