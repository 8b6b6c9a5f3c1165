package session

import (
	"context"
	"fmt"
	"testing"
	"time"

	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

func always(context.Context) bool { return true }

// hotSeqs returns the seqs the conversation's hot log holds.
func (f *hotFixture) hotSeqs(t *testing.T, conv int64) string {
	t.Helper()
	raw, err := f.rdb.ZRange(context.Background(), f.log.key(conv, "log"), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := decodeMessages(raw)
	if err != nil {
		t.Fatal(err)
	}
	return seqs(msgs)
}

// appendAt appends messages from..to with the given server time.
func (f *hotFixture) appendAt(t *testing.T, conv int64, from, to int, at time.Time) {
	t.Helper()
	for i := from; i <= to; i++ {
		m := textMsg(conv, fmt.Sprintf("m%d", i), fmt.Sprintf("text %d", i))
		m.CreatedAt = at
		if got, dup, err := f.log.Append(context.Background(), m); err != nil || dup || got.Seq != int64(i) {
			t.Fatalf("append m%d: seq=%d dup=%v err=%v", i, got.Seq, dup, err)
		}
	}
}

// TestTrimPolicy: a message stays hot when it is among the newest N or younger than H; only what is
// flushed ever goes, and what goes is always a prefix of the log.
func TestTrimPolicy(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	old, young := now.Add(-48*time.Hour), now.Add(-time.Hour)
	cases := []struct {
		name   string
		policy TrimPolicy
		want   string // hot seqs after the trim; messages 1-6 are old, 7-8 young, 1-8 flushed, 9-10 not
	}{
		{"keep 3 or 24h", TrimPolicy{KeepMessages: 3, KeepAge: 24 * time.Hour}, "7,8,9,10"},
		{"keep 5 or 24h", TrimPolicy{KeepMessages: 5, KeepAge: 24 * time.Hour}, "6,7,8,9,10"},
		{"keep 0 or 24h", TrimPolicy{KeepAge: 24 * time.Hour}, "7,8,9,10"},
		{"keep 4, no age", TrimPolicy{KeepMessages: 4}, "7,8,9,10"},
		{"keep 2, no age", TrimPolicy{KeepMessages: 2}, "9,10"},
		{"keep nothing", TrimPolicy{}, "9,10"},
		{"keep 20", TrimPolicy{KeepMessages: 20}, "1,2,3,4,5,6,7,8,9,10"},
		{"keep 0 or 72h", TrimPolicy{KeepAge: 72 * time.Hour}, "1,2,3,4,5,6,7,8,9,10"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newHot(t)
			c := newConversation(t, f.db, 1, 1)
			f.appendAt(t, c.ID, 1, 6, old)
			f.appendAt(t, c.ID, 7, 8, young)
			f.flush(t, FlushStats{Conversations: 1, Messages: 8})
			f.appendAt(t, c.ID, 9, 10, old) // an old server time, but not yet warm
			tc.policy.Now = func() time.Time { return now }
			st, err := f.log.Trim(ctx, tc.policy, 100, always)
			if err != nil || st.Conversations != 1 {
				t.Fatalf("trim: %+v %v", st, err)
			}
			if got := f.hotSeqs(t, c.ID); got != tc.want {
				t.Fatalf("hot log %q, want %q (trim %+v)", got, tc.want, st)
			}
			if all, err := f.log.After(ctx, c.ID, 0, 100); err != nil || seqs(all) != "1,2,3,4,5,6,7,8,9,10" {
				t.Fatalf("history after the trim: %q %v", seqs(all), err)
			}
		})
	}
}

// TestTrimKeepsSeqAndDedupe: a trim leaves the counter and the dedupe records: a resend of a trimmed
// message is answered from the warm store with its seq, and new messages continue the seq. Pages in
// both directions across the trimmed boundary are the same as before the trim.
func TestTrimKeepsSeqAndDedupe(t *testing.T) {
	ctx := context.Background()
	f := newHot(t)
	c := newConversation(t, f.db, 1, 1)
	f.appendN(t, c.ID, 1, 9)
	recall := textMsg(c.ID, "m10", "")
	recall.Body = Body{Type: TypeRecall, RecallSeq: 8}
	if m, _, err := f.log.Append(ctx, recall); err != nil || m.Seq != 10 {
		t.Fatalf("recall: %+v %v", m, err)
	}
	f.flush(t, FlushStats{Conversations: 1, Messages: 10})
	type page struct {
		after  bool
		from   int64
		limit  int
		result string
	}
	pages := []page{{true, 0, 100, ""}, {true, 3, 4, ""}, {false, 11, 5, ""}, {false, 8, 3, ""}, {false, 100, 100, ""}}
	read := func(p page) string {
		var msgs []Message
		var err error
		if p.after {
			msgs, err = f.log.After(ctx, c.ID, p.from, p.limit)
		} else {
			msgs, err = f.log.Before(ctx, c.ID, p.from, p.limit)
		}
		if err != nil {
			t.Fatal(err)
		}
		s := ""
		for _, m := range msgs {
			s += fmt.Sprintf("%d:%s:%s:%d|", m.Seq, m.ClientMsgID, m.Body.Text, m.Body.RecallSeq)
		}
		return s
	}
	for i := range pages {
		pages[i].result = read(pages[i])
	}

	st, err := f.log.Trim(ctx, TrimPolicy{KeepMessages: 3}, 100, always)
	if err != nil || st.Messages != 7 || st.Pending != 0 {
		t.Fatalf("trim: %+v %v", st, err)
	}
	if got := f.hotSeqs(t, c.ID); got != "8,9,10" {
		t.Fatalf("hot log after the trim: %q", got)
	}
	for _, p := range pages {
		if got := read(p); got != p.result {
			t.Errorf("page after=%v from %d limit %d: %q, before the trim %q", p.after, p.from, p.limit, got, p.result)
		}
	}
	dup, isDup, err := f.log.Append(ctx, textMsg(c.ID, "m2", "text 2 again"))
	if err != nil || !isDup || dup.Seq != 2 || dup.Body.Text != "text 2" {
		t.Fatalf("resend of a trimmed message: %+v dup=%v %v", dup, isDup, err)
	}
	if last, err := f.log.LastSeq(ctx, c.ID); err != nil || last != 10 {
		t.Fatalf("last seq after the trim: %d %v", last, err)
	}
	f.appendN(t, c.ID, 11, 11)
	n, err := f.rdb.HLen(ctx, f.log.key(c.ID, "dedupe")).Result()
	if err != nil || n != 11 {
		t.Fatalf("dedupe records after the trim: %d %v", n, err)
	}
}

// TestTrimOnlyWarm: with the warm store down the flush fails and a trim removes nothing, whatever the
// policy; a trim racing a flush never removes what the flush has not marked.
func TestTrimOnlyWarm(t *testing.T) {
	ctx := context.Background()
	f := newHot(t)
	c := newConversation(t, f.db, 1, 1)
	f.appendN(t, c.ID, 1, 3)
	f.flush(t, FlushStats{Conversations: 1, Messages: 3})
	f.appendN(t, c.ID, 4, 6)

	down, err := gorm.Open(mysql.New(mysql.Config{DSN: "root@tcp(127.0.0.1:1)/shopdesk?timeout=1s", SkipInitializeWithVersion: true}), &gorm.Config{DisableAutomaticPing: true, Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	broken := NewRedisLog(f.rdb, f.prefix, NewSQLLog(down))
	if _, err := broken.Flush(ctx, 0); ErrorCode(err) != EUNAVAILABLE {
		t.Fatalf("flush with warm down: %v", err)
	}
	if st, err := broken.Trim(ctx, TrimPolicy{}, 100, always); err != nil || st.Messages != 3 {
		t.Fatalf("trim with warm down: %+v %v", st, err)
	}
	if got := f.hotSeqs(t, c.ID); got != "4,5,6" {
		t.Fatalf("hot log after a trim with warm down: %q, want the unflushed 4,5,6", got)
	}

	// The script itself refuses: asked for everything, it stops at the marker.
	res, err := trimScript.Run(ctx, f.rdb, f.log.trimKeys(c.ID), 100, 0).Int64Slice()
	if err != nil || res[0] != 0 || res[1] != 3 {
		t.Fatalf("trim script past the marker: %v %v", res, err)
	}
	if got := f.hotSeqs(t, c.ID); got != "4,5,6" {
		t.Fatalf("hot log after the script: %q", got)
	}

	f.flush(t, FlushStats{Conversations: 1, Messages: 3})
	if st, err := f.log.Trim(ctx, TrimPolicy{}, 100, always); err != nil || st.Messages != 3 || st.Pending != 0 {
		t.Fatalf("trim after the flush: %+v %v", st, err)
	}
	if all, err := f.log.After(ctx, c.ID, 0, 100); err != nil || seqs(all) != "1,2,3,4,5,6" {
		t.Fatalf("history: %q %v", seqs(all), err)
	}
}

// TestTrimBoundedRuns: a run visits about its budget of conversations (whole SSCAN pages: Redis
// hands a small set out in one page) and the next run goes on from there; a lost lease stops a run
// before it removes anything.
func TestTrimBoundedRuns(t *testing.T) {
	ctx := context.Background()
	f := newHot(t)
	const real = 5
	for i := 1; i <= real; i++ {
		c := newConversation(t, f.db, 1, int64(i))
		f.appendN(t, c.ID, 1, 2)
	}
	f.flush(t, FlushStats{Conversations: real, Messages: 2 * real})
	if st, err := f.log.Trim(ctx, TrimPolicy{}, 100, func(context.Context) bool { return false }); err != nil || !st.Stopped || st.Messages != 0 {
		t.Fatalf("trim without the lease: %+v %v", st, err)
	}

	// Past set-max-intset-entries (512), so that SSCAN pages by COUNT: ids of conversations with no
	// hot log, as a crash between a trim and its set update would leave.
	const convs = 700
	for i := int64(1_000_000); i < 1_000_000+convs-real; i++ {
		f.rdb.SAdd(ctx, f.log.trimKey(), i)
	}

	total, runs := 0, 0
	for ; runs < 20; runs++ {
		st, err := f.log.Trim(ctx, TrimPolicy{}, 100, always)
		if err != nil {
			t.Fatal(err)
		}
		if st.Conversations >= convs {
			t.Fatalf("run %d visited %d conversations, budget 100", runs, st.Conversations)
		}
		total += st.Messages
		if st.Pending == 0 {
			break
		}
	}
	if total != 2*real || runs < 2 {
		t.Fatalf("trimmed %d messages in %d runs, want %d in several", total, runs+1, 2*real)
	}
	if _, err := f.log.Trim(ctx, TrimPolicy{KeepMessages: -1}, 100, always); ErrorCode(err) != EINVALID {
		t.Fatalf("negative keep: %v", err)
	}
}

// TestHotStats: the hot tier's lag counts unflushed messages and the oldest one's time.
func TestHotStats(t *testing.T) {
	ctx := context.Background()
	f := newHot(t)
	a, b := newConversation(t, f.db, 1, 1), newConversation(t, f.db, 1, 2)
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Microsecond)
	f.appendAt(t, a.ID, 1, 2, at)
	f.flush(t, FlushStats{Conversations: 1, Messages: 2})
	f.appendAt(t, a.ID, 3, 4, at.Add(time.Second))
	f.appendAt(t, b.ID, 1, 3, at.Add(2*time.Second))
	st, err := f.log.HotStats(ctx, 100)
	if err != nil || st.DirtyConversations != 2 || st.UnflushedMessages != 5 || !st.OldestUnflushed.Equal(at.Add(time.Second)) ||
		!st.Complete || st.TrimConversations != 1 || st.UsedMemoryBytes <= 0 {
		t.Fatalf("hot stats: %+v %v", st, err)
	}
	if st, err := f.log.HotStats(ctx, 1); err != nil || st.Complete {
		t.Fatalf("hot stats over one conversation: %+v %v", st, err)
	}
}

// TestTrimRefill: a conversation leaves the trim set once it holds no more than the keep of its
// visit; when the keep is lowered it is visited again (and a hot tier that never had a keep recorded
// is visited whole), while raising the keep changes nothing.
func TestTrimRefill(t *testing.T) {
	ctx := context.Background()
	f := newHot(t)
	a, b := newConversation(t, f.db, 1, 1), newConversation(t, f.db, 1, 2)
	f.appendN(t, a.ID, 1, 5)
	f.appendN(t, b.ID, 1, 5)
	f.flush(t, FlushStats{Conversations: 2, Messages: 10})
	trim := func(keep int) TrimStats {
		t.Helper()
		st, err := f.log.Trim(ctx, TrimPolicy{KeepMessages: keep}, 100, always)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := trim(10); st.Messages != 0 || st.Pending != 0 {
		t.Fatalf("keep 10: %+v", st)
	}
	if st := trim(20); st.Messages != 0 || st.Pending != 0 { // raised: nothing to visit again
		t.Fatalf("keep 20: %+v", st)
	}
	if st := trim(3); st.Messages != 4 || st.Conversations != 2 {
		t.Fatalf("keep 3 after 20: %+v", st)
	}
	for _, c := range []int64{a.ID, b.ID} {
		if got := f.hotSeqs(t, c); got != "3,4,5" {
			t.Fatalf("conversation %d keeps %s", c, got)
		}
	}
	// A tier whose keep was never recorded (filled before the trim job): every hot log is visited.
	if err := f.rdb.Del(ctx, f.log.trimKeepKey()).Err(); err != nil {
		t.Fatal(err)
	}
	if st := trim(1); st.Messages != 4 || st.Conversations != 2 {
		t.Fatalf("keep 1 with no keep recorded: %+v", st)
	}
}
