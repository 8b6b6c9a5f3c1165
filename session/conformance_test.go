package session

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/shopdesk/shopdesk/migrations/testdb"
)

// backend is one implementation of the session storage interfaces under test, over a warm store.
type backend struct {
	name   string
	warm   func(t *testing.T) *gorm.DB
	log    func(t *testing.T, db *gorm.DB) Log
	unread func(t *testing.T, db *gorm.DB) Unread
}

func sqlBackends() []backend {
	sqlLog := func(t *testing.T, db *gorm.DB) Log { return NewSQLLog(db) }
	sqlUnread := func(t *testing.T, db *gorm.DB) Unread { return NewSQLUnread(db) }
	return []backend{
		{name: "sqlite", warm: func(t *testing.T) *gorm.DB { return testdb.SQLite(t) }, log: sqlLog, unread: sqlUnread},
		{name: "mysql", warm: func(t *testing.T) *gorm.DB { return testdb.MySQL(t) }, log: sqlLog, unread: sqlUnread},
	}
}

// allBackends is extended by the Redis implementation's test file.
var allBackends = sqlBackends

func newConversation(t *testing.T, db *gorm.DB, shop, buyer int64) *Conversation {
	t.Helper()
	c, _, err := NewStore(db).FindOrCreateConversation(context.Background(), shop, buyer, EntryContext{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func textMsg(conv int64, cid, text string) Message {
	return Message{ConversationID: conv, ClientMsgID: cid, ShopID: 1, SenderKind: PartyBuyer, SenderID: 1,
		Body: Body{Type: TypeText, Text: text}, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
}

func TestLogConformance(t *testing.T) {
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			t.Run("consecutive seq and dedupe", func(t *testing.T) {
				db := b.warm(t)
				l := b.log(t, db)
				c := newConversation(t, db, 1, 1)
				for i := 1; i <= 5; i++ {
					m, dup, err := l.Append(ctx, textMsg(c.ID, fmt.Sprintf("m%d", i), "hi"))
					if err != nil || dup || m.Seq != int64(i) {
						t.Fatalf("append %d: seq=%d dup=%v err=%v", i, m.Seq, dup, err)
					}
				}
				m, dup, err := l.Append(ctx, textMsg(c.ID, "m3", "again"))
				if err != nil || !dup || m.Seq != 3 || m.Body.Text != "hi" {
					t.Fatalf("resend: %+v dup=%v err=%v", m, dup, err)
				}
				last, err := l.LastSeq(ctx, c.ID)
				if err != nil || last != 5 {
					t.Fatalf("last seq %d %v", last, err)
				}
				got, err := l.After(ctx, c.ID, 2, 2)
				if err != nil || len(got) != 2 || got[0].Seq != 3 || got[1].Seq != 4 {
					t.Fatalf("after: %+v %v", got, err)
				}
				got, err = l.Before(ctx, c.ID, 5, 3)
				if err != nil || len(got) != 3 || got[0].Seq != 2 || got[2].Seq != 4 {
					t.Fatalf("before: %+v %v", got, err)
				}
				if got[0].Body.Text != "hi" || got[0].ClientMsgID != "m2" || got[0].SenderKind != PartyBuyer {
					t.Fatalf("round trip lost fields: %+v", got[0])
				}
			})
			t.Run("separate conversations", func(t *testing.T) {
				db := b.warm(t)
				l := b.log(t, db)
				c1, c2 := newConversation(t, db, 1, 1), newConversation(t, db, 1, 2)
				for _, c := range []*Conversation{c1, c2, c1} {
					if _, _, err := l.Append(ctx, textMsg(c.ID, fmt.Sprint(time.Now().UnixNano()), "x")); err != nil {
						t.Fatal(err)
					}
				}
				if s, _ := l.LastSeq(ctx, c1.ID); s != 2 {
					t.Fatalf("c1 last %d", s)
				}
				if s, _ := l.LastSeq(ctx, c2.ID); s != 1 {
					t.Fatalf("c2 last %d", s)
				}
			})
			t.Run("concurrent senders get distinct consecutive seqs", func(t *testing.T) {
				db := b.warm(t)
				l := b.log(t, db)
				c := newConversation(t, db, 1, 1)
				const n = 40
				var wg sync.WaitGroup
				seqs := make(chan int64, 2*n)
				for i := 0; i < n; i++ {
					for r := 0; r < 2; r++ { // every message is sent twice at once: one must dedupe
						wg.Add(1)
						go func(i int) {
							defer wg.Done()
							m, dup, err := l.Append(ctx, textMsg(c.ID, fmt.Sprintf("c%d", i), "x"))
							if err != nil {
								t.Error(err)
								return
							}
							if !dup {
								seqs <- m.Seq
							}
						}(i)
					}
				}
				wg.Wait()
				close(seqs)
				seen := map[int64]bool{}
				for s := range seqs {
					if seen[s] {
						t.Fatalf("seq %d handed out twice", s)
					}
					seen[s] = true
				}
				for i := int64(1); i <= n; i++ {
					if !seen[i] {
						t.Fatalf("seq %d missing (got %d seqs)", i, len(seen))
					}
				}
			})
		})
	}
}

func TestUnreadConformance(t *testing.T) {
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			db := b.warm(t)
			u := b.unread(t, db)
			for seq := int64(1); seq <= 3; seq++ {
				if _, err := u.Add(ctx, "s:1", 10, seq); err != nil {
					t.Fatal(err)
				}
			}
			c, err := u.Add(ctx, "s:1", 10, 2) // a retry of an already-counted seq
			if err != nil || c.Count != 3 || c.Total != 3 {
				t.Fatalf("idempotent add: %+v %v", c, err)
			}
			if c, _ = u.Add(ctx, "s:1", 11, 7); c.Count != 1 || c.Total != 4 {
				t.Fatalf("second conversation: %+v", c)
			}
			if c, _ = u.Read(ctx, "s:1", 10, 2); c.Count != 1 || c.Total != 2 {
				t.Fatalf("partial read: %+v", c)
			}
			if c, _ = u.Read(ctx, "s:1", 10, 3); c.Count != 0 || c.Total != 1 || c.ReadSeq != 3 {
				t.Fatalf("full read: %+v", c)
			}
			if c, _ = u.Read(ctx, "s:1", 10, 1); c.Count != 0 || c.Total != 1 || c.ReadSeq != 3 {
				t.Fatalf("stale read changed state: %+v", c)
			}
			per, total, err := u.Get(ctx, "s:1")
			if err != nil || total != 1 || len(per) != 1 || per[11] != 1 {
				t.Fatalf("get: %v %d %v", per, total, err)
			}
			if per, total, _ := u.Get(ctx, "b:404"); total != 0 || len(per) != 0 {
				t.Fatalf("unknown reader: %v %d", per, total)
			}
			// concurrent adds and reads keep the total equal to the sum
			var wg sync.WaitGroup
			for i := int64(0); i < 20; i++ {
				wg.Add(1)
				go func(i int64) {
					defer wg.Done()
					if _, err := u.Add(ctx, "b:2", 20+i, 100+i); err != nil {
						t.Error(err)
					}
				}(i)
			}
			wg.Wait()
			per, total, _ = u.Get(ctx, "b:2")
			var sum int64
			for _, n := range per {
				sum += n
			}
			if sum != total || total != 20 {
				t.Fatalf("total %d, sum %d", total, sum)
			}
		})
	}
}

// TestSQLUnreadRowsGone: once a node has seen a reader's counter it skips creating it; a counter
// deleted behind its back since is created again, not lost.
func TestSQLUnreadRowsGone(t *testing.T) {
	for _, b := range sqlBackends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			db := b.warm(t)
			u := NewSQLUnread(db)
			if uc, err := u.Add(ctx, "s:1", 7, 1); err != nil || uc.Count != 1 || uc.Total != 1 {
				t.Fatalf("first add: %+v %v", uc, err)
			}
			if err := db.Exec("DELETE FROM unread_counters").Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Exec("DELETE FROM unread_totals").Error; err != nil {
				t.Fatal(err)
			}
			if uc, err := u.Add(ctx, "s:1", 7, 2); err != nil || uc.Count != 1 || uc.Total != 1 {
				t.Fatalf("add after the rows went: %+v %v", uc, err)
			}
			if uc, err := u.Read(ctx, "s:1", 7, 2); err != nil || uc.Count != 0 || uc.Total != 0 || uc.ReadSeq != 2 {
				t.Fatalf("read: %+v %v", uc, err)
			}
		})
	}
}

// TestSQLInsertAdvancesConversations: a flushed batch moves each conversation's last_seq and
// updated_at to its last message, in one statement per hundred conversations, and never back.
func TestSQLInsertAdvancesConversations(t *testing.T) {
	for _, b := range sqlBackends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			db := b.warm(t)
			l := NewSQLLog(db)
			base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
			var convs []*Conversation
			var msgs []Message
			for i := 0; i < 150; i++ { // two statements' worth
				c := newConversation(t, db, 1, int64(i+1))
				convs = append(convs, c)
				for seq := int64(1); seq <= 2; seq++ {
					m := textMsg(c.ID, fmt.Sprintf("m%d", seq), "x")
					m.Seq, m.CreatedAt = seq, base.Add(time.Duration(i)*time.Minute+time.Duration(seq)*time.Second)
					msgs = append(msgs, m)
				}
			}
			// The first conversation is ahead already (its hot tier handed out more): it stays.
			ahead := base.Add(time.Hour)
			if err := db.Model(&Conversation{}).Where("id = ?", convs[0].ID).Updates(map[string]any{"last_seq": 9, "updated_at": ahead}).Error; err != nil {
				t.Fatal(err)
			}
			if bad, err := l.Insert(ctx, msgs); err != nil || len(bad) != 0 {
				t.Fatalf("insert: %v %v", bad, err)
			}
			for i, c := range convs {
				var got Conversation
				if err := db.Take(&got, c.ID).Error; err != nil {
					t.Fatal(err)
				}
				wantSeq, wantAt := int64(2), base.Add(time.Duration(i)*time.Minute+2*time.Second)
				if i == 0 {
					wantSeq, wantAt = 9, ahead
				}
				if got.LastSeq != wantSeq || !got.UpdatedAt.Equal(wantAt) {
					t.Fatalf("conversation %d: last_seq %d updated_at %v, want %d %v", i, got.LastSeq, got.UpdatedAt, wantSeq, wantAt)
				}
			}
		})
	}
}
