package session

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/shopdesk/shopdesk/migrations/testdb"
)

func init() {
	sql := allBackends
	allBackends = func() []backend {
		return append(sql(), backend{
			name: "redis",
			warm: func(t *testing.T) *gorm.DB { return testdb.MySQL(t) },
			log: func(t *testing.T, db *gorm.DB) Log {
				rdb, prefix := testdb.Redis(t)
				return NewRedisLog(rdb, prefix, NewSQLLog(db))
			},
			unread: func(t *testing.T, db *gorm.DB) Unread {
				rdb, prefix := testdb.Redis(t)
				return NewRedisUnread(rdb, prefix)
			},
		})
	}
}

// hotFixture is a RedisLog over its own MariaDB warm store and Redis prefix.
type hotFixture struct {
	db     *gorm.DB
	warm   *SQLLog
	rdb    *redis.Client
	prefix string
	log    *RedisLog
}

func newHot(t *testing.T) *hotFixture {
	t.Helper()
	db := testdb.MySQL(t)
	rdb, prefix := testdb.Redis(t)
	warm := NewSQLLog(db)
	return &hotFixture{db: db, warm: warm, rdb: rdb, prefix: prefix, log: NewRedisLog(rdb, prefix, warm)}
}

func (f *hotFixture) appendN(t *testing.T, conv int64, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		m, dup, err := f.log.Append(context.Background(), textMsg(conv, fmt.Sprintf("m%d", i), fmt.Sprintf("text %d", i)))
		if err != nil || dup || m.Seq != int64(i) {
			t.Fatalf("append m%d: seq=%d dup=%v err=%v", i, m.Seq, dup, err)
		}
	}
}

func (f *hotFixture) flush(t *testing.T, want FlushStats) {
	t.Helper()
	got, err := f.log.Flush(context.Background(), 0)
	if err != nil || got != want {
		t.Fatalf("flush: %+v %v, want %+v", got, err, want)
	}
}

// wipe deletes the conversation's keys, as a Redis that lost its data would have them.
func (f *hotFixture) wipe(conv int64) {
	testdb.DeletePrefix(context.Background(), f.rdb, f.prefix+"{c:"+strconv.FormatInt(conv, 10)+"}")
}

func (f *hotFixture) warmCount(t *testing.T, conv int64) int64 {
	t.Helper()
	var n int64
	if err := f.db.Model(&Message{}).Where("conversation_id = ?", conv).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *hotFixture) lag(t *testing.T) int64 {
	t.Helper()
	n, err := f.log.Lag(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// seqs returns the seqs of msgs, to compare pages in one line.
func seqs(msgs []Message) string {
	s := ""
	for i, m := range msgs {
		if i > 0 {
			s += ","
		}
		s += strconv.FormatInt(m.Seq, 10)
	}
	return s
}

func TestRedisFlushMovesEverythingOnce(t *testing.T) {
	ctx := context.Background()
	f := newHot(t)
	a, b := newConversation(t, f.db, 1, 1), newConversation(t, f.db, 1, 2)
	f.appendN(t, a.ID, 1, 5)
	f.appendN(t, b.ID, 1, 3)
	if n := f.lag(t); n != 2 {
		t.Fatalf("lag before flush %d", n)
	}

	if got, err := f.log.Flush(ctx, 4); err != nil || got.Messages != 4 {
		t.Fatalf("budgeted flush: %+v %v", got, err)
	}
	got, err := f.log.Flush(ctx, 0)
	if err != nil || got.Messages != 4 || got.Conflicts != 0 {
		t.Fatalf("rest of flush: %+v %v", got, err)
	}
	if n := f.lag(t); n != 0 {
		t.Fatalf("lag after flush %d", n)
	}
	f.flush(t, FlushStats{})

	// Forget the flushed marker: the next flush re-sends everything and the warm store keeps each once.
	f.rdb.Del(ctx, f.log.key(a.ID, "flushed"), f.log.key(b.ID, "flushed"))
	f.rdb.SAdd(ctx, f.log.dirtyKey(), a.ID, b.ID)
	f.flush(t, FlushStats{Conversations: 2, Messages: 8})
	if f.warmCount(t, a.ID) != 5 || f.warmCount(t, b.ID) != 3 || f.log.Conflicts() != 0 {
		t.Fatalf("warm rows %d %d, conflicts %d", f.warmCount(t, a.ID), f.warmCount(t, b.ID), f.log.Conflicts())
	}

	rows, err := f.warm.After(ctx, a.ID, 0, 10)
	if err != nil || seqs(rows) != "1,2,3,4,5" {
		t.Fatalf("warm rows: %s %v", seqs(rows), err)
	}
	hot, _ := f.log.After(ctx, a.ID, 0, 10)
	for i := range rows {
		w, h := rows[i], hot[i]
		if w.ClientMsgID != h.ClientMsgID || w.Body != h.Body || !w.CreatedAt.Equal(h.CreatedAt) || w.ShopID != h.ShopID || w.SenderKind != h.SenderKind || w.ConversationID != h.ConversationID {
			t.Fatalf("warm %+v differs from hot %+v", w, h)
		}
	}
	if last, _ := f.warm.LastSeq(ctx, a.ID); last != 5 {
		t.Fatalf("warm last_seq %d", last)
	}
}

func TestRedisFlushCountsConflicts(t *testing.T) {
	ctx := context.Background()
	f := newHot(t)
	c := newConversation(t, f.db, 1, 1)
	f.appendN(t, c.ID, 1, 2)
	// Another writer put a different message under seq 2 in the warm store.
	intruder := textMsg(c.ID, "intruder", "not ours")
	intruder.Seq = 2
	if _, err := f.warm.Insert(ctx, []Message{intruder}); err != nil {
		t.Fatal(err)
	}

	f.flush(t, FlushStats{Conversations: 1, Messages: 2, Conflicts: 1})
	if f.log.Conflicts() != 1 {
		t.Fatalf("conflicts %d", f.log.Conflicts())
	}
	rows, _ := f.warm.After(ctx, c.ID, 1, 10)
	if len(rows) != 1 || rows[0].ClientMsgID != "intruder" {
		t.Fatalf("warm row overwritten: %+v", rows)
	}
	// Counted once: the marker moved past it.
	f.flush(t, FlushStats{})
	if f.log.Conflicts() != 1 || f.lag(t) != 0 {
		t.Fatalf("conflicts %d lag %d", f.log.Conflicts(), f.lag(t))
	}
}

func TestRedisWipeReseedsFromWarm(t *testing.T) {
	ctx := context.Background()
	f := newHot(t)
	c := newConversation(t, f.db, 1, 1)
	f.appendN(t, c.ID, 1, 3)
	f.flush(t, FlushStats{Conversations: 1, Messages: 3})
	f.wipe(c.ID)

	f.appendN(t, c.ID, 4, 4) // continues at warm max + 1, not at 1
	m, dup, err := f.log.Append(ctx, textMsg(c.ID, "m2", "resent"))
	if err != nil || !dup || m.Seq != 2 || m.Body.Text != "text 2" {
		t.Fatalf("resend after wipe: %+v dup=%v err=%v", m, dup, err)
	}
	if last, err := f.log.LastSeq(ctx, c.ID); err != nil || last != 4 {
		t.Fatalf("last seq %d %v", last, err)
	}
	got, err := f.log.After(ctx, c.ID, 0, 10)
	if err != nil || seqs(got) != "1,2,3,4" {
		t.Fatalf("after wipe: %s %v", seqs(got), err)
	}

	// LastSeq alone re-seeds too.
	f.flush(t, FlushStats{Conversations: 1, Messages: 1})
	f.wipe(c.ID)
	if last, err := f.log.LastSeq(ctx, c.ID); err != nil || last != 4 {
		t.Fatalf("last seq after second wipe %d %v", last, err)
	}

	// Many nodes hitting the missing counter at once still hand out consecutive unique seqs.
	f.wipe(c.ID)
	var wg sync.WaitGroup
	seen := make(chan int64, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			l := NewRedisLog(f.rdb, f.prefix, f.warm) // a node of its own
			m, dup, err := l.Append(ctx, textMsg(c.ID, fmt.Sprintf("w%d", i), "x"))
			if err != nil || dup {
				t.Errorf("append after wipe: dup=%v err=%v", dup, err)
				return
			}
			seen <- m.Seq
		}(i)
	}
	wg.Wait()
	close(seen)
	got2 := map[int64]bool{}
	for s := range seen {
		if got2[s] || s < 5 || s > 24 {
			t.Fatalf("seq %d out of place or repeated", s)
		}
		got2[s] = true
	}
}

func TestRedisLostCounterKeepsUnflushedSeqs(t *testing.T) {
	ctx := context.Background()
	f := newHot(t)
	c := newConversation(t, f.db, 1, 1)
	f.appendN(t, c.ID, 1, 2)
	f.flush(t, FlushStats{Conversations: 1, Messages: 2})
	f.appendN(t, c.ID, 3, 5) // hot only
	f.rdb.Del(ctx, f.log.key(c.ID, "seq"), f.log.key(c.ID, "dedupe"))

	// The warm store says 2, but the hot log still holds 3..5: the counter must start above them,
	// and their dedupe records must come back.
	f.appendN(t, c.ID, 6, 6)
	if m, dup, err := f.log.Append(ctx, textMsg(c.ID, "m4", "again")); err != nil || !dup || m.Seq != 4 {
		t.Fatalf("resend of unflushed message: %+v dup=%v err=%v", m, dup, err)
	}
	if m, dup, err := f.log.Append(ctx, textMsg(c.ID, "m1", "again")); err != nil || !dup || m.Seq != 1 {
		t.Fatalf("resend of flushed message: %+v dup=%v err=%v", m, dup, err)
	}
}

func TestRedisReadsMergeWarmAndHot(t *testing.T) {
	ctx := context.Background()
	f := newHot(t)
	c := newConversation(t, f.db, 1, 1)
	f.appendN(t, c.ID, 1, 6)
	f.flush(t, FlushStats{Conversations: 1, Messages: 6})
	f.rdb.Del(ctx, f.log.key(c.ID, "log")) // the hot copy is gone, the counter is not
	f.appendN(t, c.ID, 7, 8)

	cases := []struct {
		name   string
		read   func() ([]Message, error)
		expect string
	}{
		{"after all", func() ([]Message, error) { return f.log.After(ctx, c.ID, 0, 100) }, "1,2,3,4,5,6,7,8"},
		{"after in warm", func() ([]Message, error) { return f.log.After(ctx, c.ID, 3, 3) }, "4,5,6"},
		{"after across", func() ([]Message, error) { return f.log.After(ctx, c.ID, 5, 2) }, "6,7"},
		{"after in hot", func() ([]Message, error) { return f.log.After(ctx, c.ID, 6, 5) }, "7,8"},
		{"after the end", func() ([]Message, error) { return f.log.After(ctx, c.ID, 8, 5) }, ""},
		{"before across", func() ([]Message, error) { return f.log.Before(ctx, c.ID, 8, 3) }, "5,6,7"},
		{"before all", func() ([]Message, error) { return f.log.Before(ctx, c.ID, 100, 10) }, "1,2,3,4,5,6,7,8"},
		{"before in warm", func() ([]Message, error) { return f.log.Before(ctx, c.ID, 3, 10) }, "1,2"},
		{"before in hot", func() ([]Message, error) { return f.log.Before(ctx, c.ID, 100, 2) }, "7,8"},
		{"before the start", func() ([]Message, error) { return f.log.Before(ctx, c.ID, 1, 2) }, ""},
	}
	check := func(stage string) {
		for _, tc := range cases {
			got, err := tc.read()
			if err != nil || seqs(got) != tc.expect {
				t.Errorf("%s, %s: got %q %v, want %q", stage, tc.name, seqs(got), err, tc.expect)
			}
		}
	}
	check("hot log deleted")

	// A fully hot log, one trimmed to 4..8 and an empty one give the same pages.
	f.flush(t, FlushStats{Conversations: 1, Messages: 2})
	warmRows, err := f.warm.After(ctx, c.ID, 0, 6)
	if err != nil || len(warmRows) != 6 {
		t.Fatalf("warm rows %d %v", len(warmRows), err)
	}
	for _, m := range warmRows {
		b, _ := json.Marshal(m)
		f.rdb.ZAdd(ctx, f.log.key(c.ID, "log"), redis.Z{Score: float64(m.Seq), Member: string(b)})
	}
	check("fully hot")
	f.rdb.ZRemRangeByScore(ctx, f.log.key(c.ID, "log"), "1", "3")
	check("trimmed to 4..8")
	f.rdb.Del(ctx, f.log.key(c.ID, "log"))
	check("hot log empty")
}

func TestRedisFlushWithWarmDown(t *testing.T) {
	ctx := context.Background()
	f := newHot(t)
	c := newConversation(t, f.db, 1, 1)
	f.appendN(t, c.ID, 1, 3)

	// Nothing listens on port 1: every query fails at once.
	down, err := gorm.Open(mysql.New(mysql.Config{DSN: "root@tcp(127.0.0.1:1)/shopdesk?timeout=1s", SkipInitializeWithVersion: true}), &gorm.Config{DisableAutomaticPing: true, Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	broken := NewRedisLog(f.rdb, f.prefix, NewSQLLog(down))
	before, _ := f.rdb.Keys(ctx, f.prefix+"*").Result()
	_, err = broken.Flush(ctx, 0)
	if ErrorCode(err) != EUNAVAILABLE {
		t.Fatalf("flush with warm down: %v (%s)", err, ErrorCode(err))
	}
	after, _ := f.rdb.Keys(ctx, f.prefix+"*").Result()
	if len(after) != len(before) || f.rdb.Exists(ctx, f.log.key(c.ID, "flushed")).Val() != 0 || f.lag(t) != 1 {
		t.Fatalf("failed flush changed Redis: keys %v -> %v, lag %d", before, after, f.lag(t))
	}
	if f.warmCount(t, c.ID) != 0 {
		t.Fatal("failed flush wrote warm rows")
	}

	f.flush(t, FlushStats{Conversations: 1, Messages: 3})
	if f.warmCount(t, c.ID) != 3 || f.lag(t) != 0 {
		t.Fatalf("retry: %d warm rows, lag %d", f.warmCount(t, c.ID), f.lag(t))
	}
}

func TestRedisUnavailable(t *testing.T) {
	db := testdb.MySQL(t)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1})
	defer rdb.Close()
	l := NewRedisLog(rdb, "x:", NewSQLLog(db))
	ctx := context.Background()
	if _, _, err := l.Append(ctx, textMsg(1, "a", "x")); ErrorCode(err) != EUNAVAILABLE {
		t.Fatalf("append: %v", err)
	}
	if _, err := l.After(ctx, 1, 0, 10); ErrorCode(err) != EUNAVAILABLE {
		t.Fatalf("after: %v", err)
	}
	if _, err := l.Flush(ctx, 0); ErrorCode(err) != EUNAVAILABLE {
		t.Fatalf("flush: %v", err)
	}
	if _, err := NewRedisUnread(rdb, "x:").Add(ctx, "s:1", 1, 1); ErrorCode(err) != EUNAVAILABLE {
		t.Fatalf("unread: %v", err)
	}
}

func TestRedisReseedLongConversation(t *testing.T) {
	ctx := context.Background()
	f := newHot(t)
	c := newConversation(t, f.db, 1, 1)
	// More dedupe records than one re-seed chunk holds, all already warm.
	const n = 2*reseedChunk + 100
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = textMsg(c.ID, fmt.Sprintf("old%d", i+1), "old")
		msgs[i].Seq = int64(i + 1)
	}
	if _, err := f.warm.Insert(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if m, dup, err := f.log.Append(ctx, textMsg(c.ID, "new", "x")); err != nil || dup || m.Seq != n+1 {
		t.Fatalf("append: seq=%d dup=%v err=%v", m.Seq, dup, err)
	}
	for _, i := range []int{1, reseedChunk, reseedChunk + 1, n} {
		m, dup, err := f.log.Append(ctx, textMsg(c.ID, fmt.Sprintf("old%d", i), "resent"))
		if err != nil || !dup || m.Seq != int64(i) || m.Body.Text != "old" {
			t.Fatalf("resend old%d: seq=%d dup=%v err=%v", i, m.Seq, dup, err)
		}
	}
	if got, err := f.log.Before(ctx, c.ID, n+2, 3); err != nil || seqs(got) != fmt.Sprintf("%d,%d,%d", n-1, n, n+1) {
		t.Fatalf("before: %s %v", seqs(got), err)
	}
}
