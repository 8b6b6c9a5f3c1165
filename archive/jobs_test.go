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
