package routing

import (
	"context"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/migrations/testdb"
	"github.com/shopdesk/shopdesk/rules"
)

func queueImpls() map[string]func(t *testing.T) Queue {
	return map[string]func(t *testing.T) Queue{
		"memory": func(t *testing.T) Queue { return NewMemoryQueue() },
		"redis": func(t *testing.T) Queue {
			rdb, prefix := testdb.Redis(t)
			return NewRedisQueue(rdb, prefix)
		},
	}
}

func TestQueueConformance(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2025, 3, 10, 10, 0, 0, 0, time.UTC)
	for name, newQueue := range queueImpls() {
		t.Run(name, func(t *testing.T) {
			q := newQueue(t)
			push := func(shop, id int64, prio int, at time.Time) {
				t.Helper()
				if err := q.Push(ctx, shop, id, prio, at); err != nil {
					t.Fatal(err)
				}
			}
			order := func(shop int64) []int64 {
				t.Helper()
				es, err := q.Ordered(ctx, shop, 0)
				if err != nil {
					t.Fatal(err)
				}
				ids := make([]int64, len(es))
				for i, e := range es {
					ids[i] = e.SessionID
				}
				return ids
			}
			push(1, 10, 0, t0.Add(3*time.Second))
			push(1, 11, 0, t0.Add(1*time.Second))
			push(1, 12, 5, t0.Add(9*time.Second))
			push(1, 13, -rules.MaxPriority, t0)
			push(1, 14, 0, t0.Add(1*time.Second)) // same time as 11: id order
			push(1, 9, 0, t0.Add(1*time.Second))
			push(2, 10, 100, t0) // another shop's queue
			if got, want := order(1), []int64{12, 9, 11, 14, 10, 13}; !equalIDs(got, want) {
				t.Fatalf("order %v, want %v", got, want)
			}
			es, err := q.Ordered(ctx, 1, 2)
			if err != nil || len(es) != 2 || es[0].SessionID != 12 || es[0].Priority != 5 || !es[0].EnqueuedAt.Equal(t0.Add(9*time.Second)) {
				t.Fatalf("Ordered(2) = %+v %v", es, err)
			}
			if pos, total, err := q.Position(ctx, 1, 11); err != nil || pos != 3 || total != 6 {
				t.Fatalf("Position = %d/%d %v", pos, total, err)
			}
			if pos, total, err := q.Position(ctx, 1, 99); err != nil || pos != 0 || total != 6 {
				t.Fatalf("Position of a stranger = %d/%d %v", pos, total, err)
			}
			push(1, 13, rules.MaxPriority, t0) // moves to the head
			if got := order(1); got[0] != 13 || len(got) != 6 {
				t.Fatalf("after re-push %v", got)
			}
			if ok, err := q.Remove(ctx, 1, 13); err != nil || !ok {
				t.Fatalf("Remove = %v %v", ok, err)
			}
			if ok, err := q.Remove(ctx, 1, 13); err != nil || ok {
				t.Fatalf("second Remove = %v %v", ok, err)
			}
			if n, err := q.Len(ctx, 1); err != nil || n != 5 {
				t.Fatalf("Len = %d %v", n, err)
			}
			if n, err := q.Len(ctx, 2); err != nil || n != 1 {
				t.Fatalf("Len of shop 2 = %d %v", n, err)
			}
			// Extreme priorities and times keep their order.
			push(3, 1, rules.MaxPriority, t0.Add(100*365*24*time.Hour))
			push(3, 2, rules.MaxPriority-1, t0)
			push(3, 3, -rules.MaxPriority, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
			if got := order(3); !equalIDs(got, []int64{1, 2, 3}) {
				t.Fatalf("extremes %v", got)
			}
		})
	}
}

func TestQueueScore(t *testing.T) {
	at := time.Date(2031, 7, 1, 12, 30, 15, 123_000_000, time.UTC)
	for _, p := range []int{-rules.MaxPriority, -1, 0, 7, rules.MaxPriority} {
		gp, gt := fromScore(queueScore(p, at))
		if gp != p || !gt.Equal(at) {
			t.Fatalf("priority %d: round trip %d %v", p, gp, gt)
		}
	}
	if queueScore(rules.MaxPriority+50, at) != queueScore(rules.MaxPriority, at) {
		t.Fatal("priority not clamped")
	}
}

func equalIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
