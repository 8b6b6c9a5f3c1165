package session

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestRedisExpireAndEraseHot: retention removes only hot messages that are old and already warm,
// stopping at the first young one; erasure removes every hot message up to a seq, flushed or not,
// and keeps the counter and dedupe records.
func TestRedisExpireAndEraseHot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newHot(t)
	c := newConversation(t, f.db, 1, 1)
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	cutoff := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	send := func(cid string, at time.Time) {
		t.Helper()
		m := textMsg(c.ID, cid, cid)
		m.CreatedAt = at
		if _, _, err := f.log.Append(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 3; i++ {
		send(fmt.Sprintf("old%d", i), old.Add(time.Duration(i)*time.Hour))
	}
	send("young", time.Now().UTC())
	send("old-after-young", old)
	f.flush(t, FlushStats{Conversations: 1, Messages: 5})
	send("old-unflushed", old) // seq 6: old, but not yet in the warm store

	n, err := f.log.ExpireHot(ctx, c.ID, cutoff)
	if err != nil || n != 3 {
		t.Fatalf("expire: %d %v", n, err)
	}
	hot, err := f.rdb.ZCard(ctx, f.log.key(c.ID, "log")).Result()
	if err != nil || hot != 3 {
		t.Fatalf("hot messages left: %d %v", hot, err)
	}
	if n, err := f.log.ExpireHot(ctx, c.ID, cutoff); err != nil || n != 0 {
		t.Fatalf("expire again: %d %v", n, err)
	}
	// Reads fall back to the warm store for what left the hot tier.
	page, err := f.log.After(ctx, c.ID, 0, 10)
	if err != nil || seqs(page) != "1,2,3,4,5,6" {
		t.Fatalf("history after expiring hot copies: %s %v", seqs(page), err)
	}

	if n, err := f.log.EraseHot(ctx, c.ID, 5); err != nil || n != 2 {
		t.Fatalf("erase: %d %v", n, err)
	}
	if n, err := f.warm.DeleteConversationMessages(ctx, c.ID, 5); err != nil || n != 5 {
		t.Fatalf("erase warm: %d %v", n, err)
	}
	page, err = f.log.After(ctx, c.ID, 0, 10)
	if err != nil || seqs(page) != "6" {
		t.Fatalf("history after erasing up to 5: %s %v", seqs(page), err)
	}
	// The counter and the dedupe records survive: no seq twice, an erased message's resend is a dup.
	m, dup, err := f.log.Append(ctx, textMsg(c.ID, "old1", "resend"))
	if err != nil || !dup || m.Seq != 1 {
		t.Fatalf("resend of an erased message: %+v %v %v", m, dup, err)
	}
	m, dup, err = f.log.Append(ctx, textMsg(c.ID, "new", "new"))
	if err != nil || dup || m.Seq != 7 {
		t.Fatalf("append after erasure: %+v %v %v", m, dup, err)
	}
}
