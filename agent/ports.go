package agent

import (
	"context"
	"time"
)

// Presence keeps the last heartbeat of every connected staff member, per shop, so that a sweeper can
// find those overdue whatever the state of their TCP connections. Implementations: MemoryPresence
// (one node) and RedisPresence (a sorted set per shop).
type Presence interface {
	// Beat records a heartbeat of staff member id of shop at t.
	Beat(ctx context.Context, shopID, staffID int64, at time.Time) error
	// Overdue returns staff whose last beat is before the deadline, across all shops.
	Overdue(ctx context.Context, before time.Time, limit int) ([]Beat, error)
	// Forget removes a staff member's heartbeat (they went offline or were swept).
	Forget(ctx context.Context, shopID, staffID int64) error
	// Online returns the staff of a shop with a heartbeat at or after since.
	Online(ctx context.Context, shopID int64, since time.Time) ([]int64, error)
}

// Beat is one staff member's last heartbeat.
type Beat struct {
	ShopID  int64
	StaffID int64
	At      time.Time
}
