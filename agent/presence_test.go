package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/migrations/testdb"
)

// presences are the Presence implementations under test, each fresh per call.
func presences() []struct {
	name string
	open func(t *testing.T) Presence
} {
	return []struct {
		name string
		open func(t *testing.T) Presence
	}{
		{"memory", func(t *testing.T) Presence { return NewMemoryPresence() }},
		{"redis", func(t *testing.T) Presence {
			rdb, prefix := testdb.Redis(t)
			return NewRedisPresence(rdb, prefix)
		}},
	}
}

func TestPresenceConformance(t *testing.T) {
	// Millisecond times: RedisPresence keeps milliseconds.
	t0 := time.UnixMilli(1_700_000_000_000).UTC()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for _, impl := range presences() {
		t.Run(impl.name, func(t *testing.T) {
			ctx := context.Background()
			p := impl.open(t)
			beat := func(shop, staff int64, s int) {
				t.Helper()
				if err := p.Beat(ctx, shop, staff, at(s)); err != nil {
					t.Fatal(err)
				}
			}
			online := func(shop int64, s int) string {
				t.Helper()
				ids, err := p.Online(ctx, shop, at(s))
				if err != nil {
					t.Fatal(err)
				}
				return fmt.Sprint(ids)
			}
			overdue := func(s, limit int) string {
				t.Helper()
				beats, err := p.Overdue(ctx, at(s), limit)
				if err != nil {
					t.Fatal(err)
				}
				out := ""
				for _, b := range beats {
					out += fmt.Sprintf("%d/%d@%d ", b.ShopID, b.StaffID, int(b.At.Sub(t0)/time.Second))
				}
				return out
			}
			check := func(what, got, want string) {
				t.Helper()
				if got != want {
					t.Errorf("%s: got %q, want %q", what, got, want)
				}
			}

			check("empty online", online(1, 0), "[]")
			check("empty overdue", overdue(100, 0), "")

			beat(1, 2, 10)
			beat(1, 1, 0)
			beat(2, 1, 5)
			beat(3, 9, 7)
			check("online from the start", online(1, 0), "[1 2]")
			check("online is inclusive", online(1, 10), "[2]")
			check("online later", online(1, 11), "[]")
			check("online other shop", online(2, 0), "[1]")
			check("online unknown shop", online(4, 0), "[]")

			check("overdue all, oldest first, across shops", overdue(100, 0), "1/1@0 2/1@5 3/9@7 1/2@10 ")
			check("overdue with limit", overdue(100, 2), "1/1@0 2/1@5 ")
			check("overdue is strict", overdue(5, 0), "1/1@0 ")
			check("overdue before all", overdue(0, 0), "")

			beat(1, 1, 20) // a new beat replaces the old one
			check("overdue after a beat", overdue(15, 0), "2/1@5 3/9@7 1/2@10 ")
			check("online after a beat", online(1, 15), "[1]")

			if err := p.Forget(ctx, 1, 2); err != nil {
				t.Fatal(err)
			}
			if err := p.Forget(ctx, 8, 8); err != nil {
				t.Fatalf("forget unknown: %v", err)
			}
			check("online after forget", online(1, 0), "[1]")
			check("overdue after forget", overdue(100, 0), "2/1@5 3/9@7 1/1@20 ")

			beats, err := p.Overdue(ctx, at(100), 1)
			if err != nil || len(beats) != 1 || !beats[0].At.Equal(at(5)) {
				t.Fatalf("beat time round trip: %+v %v", beats, err)
			}
		})
	}
}

func TestPresenceOverdueManyShops(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000).UTC()
	for _, impl := range presences() {
		t.Run(impl.name, func(t *testing.T) {
			ctx := context.Background()
			p := impl.open(t)
			// More shops than one scan page; the oldest beats are spread over them.
			const shops = 450
			for s := int64(1); s <= shops; s++ {
				for staff := int64(1); staff <= 2; staff++ {
					ms := (s*7919 + staff*104729) % 100000
					if err := p.Beat(ctx, s, staff, t0.Add(time.Duration(ms)*time.Millisecond)); err != nil {
						t.Fatal(err)
					}
				}
			}
			all, err := p.Overdue(ctx, t0.Add(time.Hour), 0)
			if err != nil || len(all) != 2*shops {
				t.Fatalf("all: %d %v", len(all), err)
			}
			top, err := p.Overdue(ctx, t0.Add(time.Hour), 25)
			if err != nil || len(top) != 25 {
				t.Fatalf("top: %d %v", len(top), err)
			}
			for i := range top {
				if !top[i].At.Equal(all[i].At) {
					t.Fatalf("limited overdue %d is %+v, want the %d-th oldest %+v", i, top[i], i, all[i])
				}
				if i > 0 && top[i].At.Before(top[i-1].At) {
					t.Fatalf("not oldest first at %d", i)
				}
			}
		})
	}
}
