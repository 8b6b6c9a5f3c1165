package agent

import (
	"context"
	"sort"
	"sync"
	"time"
)

// MemoryPresence keeps heartbeats in process, for a single node.
type MemoryPresence struct {
	mu    sync.Mutex
	beats map[[2]int64]time.Time
}

// NewMemoryPresence returns an empty in-process presence table.
func NewMemoryPresence() *MemoryPresence {
	return &MemoryPresence{beats: map[[2]int64]time.Time{}}
}

// Beat records a heartbeat.
func (p *MemoryPresence) Beat(_ context.Context, shopID, staffID int64, at time.Time) error {
	p.mu.Lock()
	p.beats[[2]int64{shopID, staffID}] = at
	p.mu.Unlock()
	return nil
}

// Overdue returns the beats older than before, oldest first.
func (p *MemoryPresence) Overdue(_ context.Context, before time.Time, limit int) ([]Beat, error) {
	p.mu.Lock()
	var out []Beat
	for k, at := range p.beats {
		if at.Before(before) {
			out = append(out, Beat{ShopID: k[0], StaffID: k[1], At: at})
		}
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Forget removes a heartbeat.
func (p *MemoryPresence) Forget(_ context.Context, shopID, staffID int64) error {
	p.mu.Lock()
	delete(p.beats, [2]int64{shopID, staffID})
	p.mu.Unlock()
	return nil
}

// Online returns the staff of shop whose last beat is at or after since.
func (p *MemoryPresence) Online(_ context.Context, shopID int64, since time.Time) ([]int64, error) {
	p.mu.Lock()
	var out []int64
	for k, at := range p.beats {
		if k[0] == shopID && !at.Before(since) {
			out = append(out, k[1])
		}
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}
