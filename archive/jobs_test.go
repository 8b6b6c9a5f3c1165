package archive

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/migrations/testdb"
	"github.com/shopdesk/shopdesk/session"
)

// TestFlushJob runs the hot → warm flush through the scheduler over a real Redis and SQLite.
func TestFlushJob(t *testing.T) {
	ctx := context.Background()
	db := testdb.SQLite(t)
	rdb, prefix := testdb.Redis(t)
	warm := session.NewSQLLog(db)
	hot := session.NewRedisLog(rdb, prefix, warm)
	conv, _, err := session.NewStore(db).FindOrCreateConversation(ctx, 1, 1, session.EntryContext{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		_, _, err := hot.Append(ctx, session.Message{ConversationID: conv.ID, ClientMsgID: id, ShopID: 1, SenderKind: session.PartyBuyer,
			SenderID: 1, Body: session.Body{Type: session.TypeText, Text: id}, CreatedAt: time.Now().UTC()})
		if err != nil {
			t.Fatal(err)
		}
	}
	s := NewScheduler(&LocalLocker{}, quiet)
	stopScheduler(t, s)
	if err := s.Add(Job{Name: "flush", Spec: "*/5 * * * * *", Run: FlushJob(hot, 0)}); err != nil {
		t.Fatal(err)
	}
	res, err := s.RunNow(ctx, "flush")
	if err != nil || res != (JobResult{Processed: 3, Moved: 3}) {
		t.Fatalf("flush: %+v %v", res, err)
	}
	if got, _ := warm.After(ctx, conv.ID, 0, 10); len(got) != 3 {
		t.Fatalf("%d messages warm after the flush", len(got))
	}
	if res, err := s.RunNow(ctx, "flush"); err != nil || res != (JobResult{}) {
		t.Fatalf("second flush: %+v %v", res, err)
	}

	// In batches until drained, reporting progress; nothing once the lease is gone.
	for i := 0; i < 5; i++ {
		if _, _, err := hot.Append(ctx, session.Message{ConversationID: conv.ID, ClientMsgID: fmt.Sprint("d", i), ShopID: 1,
			SenderKind: session.PartyBuyer, SenderID: 1, Body: session.Body{Type: session.TypeText, Text: "d"}, CreatedAt: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := FlushJob(hot, 2)(WithLease(ctx, lostLease{})); err != nil || res != (JobResult{}) {
		t.Fatalf("flush without the lease: %+v %v", res, err)
	}
	var seen []int64
	watched := WithProgress(ctx, func(p Progress) { seen = append(seen, p.Result.Processed) })
	if res, err := FlushJob(hot, 2)(watched); err != nil || res != (JobResult{Processed: 5, Moved: 5}) || fmt.Sprint(seen) != "[2 4 5]" {
		t.Fatalf("flush in batches of 2: %+v %v, progress %v", res, err, seen)
	}
}

// TestFlushShards: shards of the hot tier split its conversations by id, so that they flush at once
// without ever moving the same conversation twice; the flush job runs them together.
func TestFlushShards(t *testing.T) {
	ctx := context.Background()
	db := testdb.SQLite(t)
	rdb, prefix := testdb.Redis(t)
	warm := session.NewSQLLog(db)
	hot := session.NewRedisLog(rdb, prefix, warm)
	store := session.NewStore(db)
	var convs []int64
	for buyer := int64(1); buyer <= 4; buyer++ {
		c, _, err := store.FindOrCreateConversation(ctx, 1, buyer, session.EntryContext{})
		if err != nil {
			t.Fatal(err)
		}
		convs = append(convs, c.ID)
		for i := 0; i < 3; i++ {
			if _, _, err := hot.Append(ctx, session.Message{ConversationID: c.ID, ClientMsgID: fmt.Sprint(i), ShopID: 1, SenderKind: session.PartyBuyer,
				SenderID: buyer, Body: session.Body{Type: session.TypeText, Text: "x"}, CreatedAt: time.Now().UTC()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := hot.FlushShard(ctx, 100, 2, 2); err == nil {
		t.Fatal("shard 2 of 2 must be refused")
	}
	st, err := hot.FlushShard(ctx, 100, 0, 2)
	if err != nil || st.Messages != 6 {
		t.Fatalf("shard 0 of 2: %+v %v", st, err)
	}
	for _, id := range convs {
		got, _ := warm.After(ctx, id, 0, 10)
		if want := map[bool]int{true: 3, false: 0}[id%2 == 0]; len(got) != want {
			t.Fatalf("conversation %d: %d warm after shard 0, want %d", id, len(got), want)
		}
	}
	if wb, err := hot.WarmBefore(ctx); err != nil || !wb.IsZero() {
		t.Fatalf("the warm watermark before a run drained the tier: %v %v", wb, err)
	}
	// A run whose lease is gone flushes nothing and marks nothing.
	if res, err := FlushJob(hot, 0)(WithLease(ctx, lostLease{})); err != nil || res != (JobResult{}) {
		t.Fatalf("the flush job without its lease: %+v %v", res, err)
	}
	if wb, _ := hot.WarmBefore(ctx); !wb.IsZero() {
		t.Fatalf("the warm watermark after a run without its lease: %v", wb)
	}
	start := time.Now()
	if res, err := FlushJob(hot, 0)(ctx); err != nil || res != (JobResult{Processed: 6, Moved: 6}) {
		t.Fatalf("the flush job: %+v %v", res, err)
	}
	// Everything appended before the run started is warm, less the grace for appends in flight.
	wb, err := hot.WarmBefore(ctx)
	if err != nil || wb.Before(start.Add(-session.AppendGrace)) || wb.After(time.Now().Add(-session.AppendGrace)) {
		t.Fatalf("the warm watermark after the run: %v %v, run started %v", wb, err, start)
	}
	if err := hot.MarkWarmBefore(ctx, start.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if again, _ := hot.WarmBefore(ctx); !again.Equal(wb) {
		t.Fatalf("an earlier mark moved the watermark back: %v, was %v", again, wb)
	}
	for _, id := range convs {
		if got, _ := warm.After(ctx, id, 0, 10); len(got) != 3 {
			t.Fatalf("conversation %d: %d warm after the job", id, len(got))
		}
	}
}
