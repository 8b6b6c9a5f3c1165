package session

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestArchiveQueries checks the warm-store queries of the archive job on SQLite and MariaDB.
func TestArchiveQueries(t *testing.T) {
	for _, b := range sqlBackends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			db := b.warm(t)
			l := NewSQLLog(db)
			jan := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			feb := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
			c1 := newConversation(t, db, 7, 1)
			c2 := newConversation(t, db, 7, 2)
			c3 := newConversation(t, db, 8, 3)
			var msgs []Message
			add := func(c *Conversation, seq int64, at time.Time) {
				msgs = append(msgs, Message{ConversationID: c.ID, Seq: seq, ClientMsgID: fmt.Sprintf("m%d-%d", c.ID, seq),
					ShopID: c.ShopID, SenderKind: PartyBuyer, SenderID: c.BuyerID, Body: Body{Type: TypeText, Text: "hi"}, CreatedAt: at})
			}
			add(c2, 1, jan.Add(-time.Microsecond)) // December
			add(c2, 2, jan)                        // the first instant of January
			add(c1, 1, jan.Add(time.Hour+500*time.Millisecond))
			add(c1, 2, jan.Add(2*time.Hour))
			add(c2, 3, feb.Add(-time.Microsecond)) // the last instant of January
			add(c2, 4, feb.Add(-time.Microsecond)) // a tie, ordered by seq
			add(c1, 3, feb)                        // February
			add(c3, 1, jan.Add(time.Hour))
			if _, err := l.Insert(ctx, msgs); err != nil {
				t.Fatal(err)
			}
			shops, err := l.ShopsWithMessagesBefore(ctx, jan)
			if err != nil || !slices.Equal(shops, []int64{7}) {
				t.Fatalf("shops before January: %v %v", shops, err)
			}
			if shops, _ := l.ShopsWithMessagesBefore(ctx, feb); !slices.Equal(shops, []int64{7, 8}) {
				t.Fatalf("shops before February: %v", shops)
			}
			oldest, ok, err := l.OldestMessageTime(ctx, 7)
			if err != nil || !ok || !oldest.Equal(jan.Add(-time.Microsecond)) {
				t.Fatalf("oldest: %v %v %v", oldest, ok, err)
			}
			if _, ok, err := l.OldestMessageTime(ctx, 99); ok || err != nil {
				t.Fatalf("oldest of an empty shop: %v %v", ok, err)
			}
			keys := func(ms []Message) []MessageKey {
				var out []MessageKey
				for _, m := range ms {
					out = append(out, MessageKey{m.ConversationID, m.Seq})
				}
				return out
			}
			got, err := l.MessagesBetween(ctx, 7, jan, feb, 100)
			want := []MessageKey{{c2.ID, 2}, {c1.ID, 1}, {c1.ID, 2}, {c2.ID, 3}, {c2.ID, 4}}
			if err != nil || !slices.Equal(keys(got), want) {
				t.Fatalf("January of shop 7: %v %v, want %v", keys(got), err, want)
			}
			if got, _ := l.MessagesBetween(ctx, 7, jan, feb, 3); !slices.Equal(keys(got), want[:3]) {
				t.Fatalf("January, limit 3: %v", keys(got))
			}
			if _, err := l.MessagesBetween(ctx, 7, jan, feb, 0); ErrorCode(err) != EINVALID {
				t.Fatalf("limit 0: %v", err)
			}
			// After a cursor, in (created_at, conversation, seq) order, bounded above when asked.
			from := MessageCursor{CreatedAt: jan, ConversationID: c2.ID, Seq: 2}
			if got, err := l.MessagesAfter(ctx, 7, from, time.Time{}, 100); err != nil ||
				!slices.Equal(keys(got), []MessageKey{{c1.ID, 1}, {c1.ID, 2}, {c2.ID, 3}, {c2.ID, 4}, {c1.ID, 3}}) {
				t.Fatalf("after the first instant of January: %v %v", keys(got), err)
			}
			if got, err := l.MessagesAfter(ctx, 7, from, feb.Add(-time.Microsecond), 100); err != nil ||
				!slices.Equal(keys(got), []MessageKey{{c1.ID, 1}, {c1.ID, 2}}) {
				t.Fatalf("after the first instant of January, before its last: %v %v", keys(got), err)
			}
			if n, err := l.CountMessagesAfter(ctx, 7, from); err != nil || n != 5 {
				t.Fatalf("count after the first instant of January: %d %v", n, err)
			}
			if f, err := l.WarmFloor(ctx, c2.ID); err != nil || f != 1 {
				t.Fatalf("floor of c2: %d %v", f, err)
			}
			if n, err := l.CountMessages(ctx, append(want[:3:3], MessageKey{c2.ID, 99})); err != nil || n != 3 {
				t.Fatalf("count: %d %v", n, err)
			}
			n, err := l.DeleteMessages(ctx, append(want[1:3:3], MessageKey{c2.ID, 1}, MessageKey{c2.ID, 99}))
			if err != nil || n != 3 {
				t.Fatalf("delete: %d %v", n, err)
			}
			if n, err := l.DeleteMessages(ctx, want[1:3]); err != nil || n != 0 {
				t.Fatalf("delete again: %d %v", n, err)
			}
			if f, _ := l.WarmFloor(ctx, c2.ID); f != 2 {
				t.Fatalf("floor of c2 after delete: %d", f)
			}
			if f, _ := l.WarmFloor(ctx, 12345); f != 0 {
				t.Fatalf("floor of an unknown conversation: %d", f)
			}
			if last, _ := l.LastSeq(ctx, c1.ID); last != 3 {
				t.Fatalf("last seq moved with the delete: %d", last)
			}
			if got, _ := l.MessagesBetween(ctx, 7, jan, feb, 100); !slices.Equal(keys(got), []MessageKey{want[0], want[3], want[4]}) {
				t.Fatalf("January after delete: %v", keys(got))
			}
		})
	}
}
