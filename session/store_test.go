package session

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"
)

// TestStoreConformance runs the conversation and session store against every SQL backend.
func TestStoreConformance(t *testing.T) {
	for _, b := range sqlBackends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			st := NewStore(b.warm(t))
			t.Run("batch reads by conversation", func(t *testing.T) {
				now := time.Now().UTC()
				a, _, _ := st.FindOrCreateConversation(ctx, 31, 1, EntryContext{})
				b, _, _ := st.FindOrCreateConversation(ctx, 31, 2, EntryContext{})
				other, _, _ := st.FindOrCreateConversation(ctx, 32, 3, EntryContext{})
				for _, c := range []*Conversation{a, b, other} {
					s1, _, err := st.OpenSession(ctx, c, 1, now)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := st.CloseSession(ctx, s1, "buyer", "", now); err != nil {
						t.Fatal(err)
					}
					s2, _, err := st.OpenSession(ctx, c, 5, now)
					if err != nil {
						t.Fatal(err)
					}
					// Closed too, so that later subtests find no live session of these.
					defer st.CloseSession(ctx, s2, "buyer", "", now)
				}
				convs, err := st.ConversationsByID(ctx, 31, []int64{a.ID, b.ID, other.ID, 999999})
				if err != nil || len(convs) != 2 {
					t.Fatalf("conversations of shop 31: %+v %v", convs, err)
				}
				list, err := st.SessionsOf(ctx, 31, []int64{a.ID, b.ID, other.ID})
				if err != nil || len(list) != 4 {
					t.Fatalf("sessions of shop 31's conversations: %+v %v", list, err)
				}
				for i, s := range list {
					if s.ShopID != 31 || (i > 0 && s.ID > list[i-1].ID) {
						t.Fatalf("want shop 31's sessions newest first: %+v", list)
					}
				}
			})
			t.Run("one conversation per buyer and shop", func(t *testing.T) {
				var wg sync.WaitGroup
				ids := make(chan int64, 8)
				for i := 0; i < 8; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						c, _, err := st.FindOrCreateConversation(ctx, 1, 77, EntryContext{ProductID: "p"})
						if err != nil {
							t.Error(err)
							return
						}
						ids <- c.ID
					}()
				}
				wg.Wait()
				close(ids)
				var first int64
				for id := range ids {
					if first == 0 {
						first = id
					}
					if id != first {
						t.Fatalf("two conversations for one buyer: %d and %d", first, id)
					}
				}
				other, created, err := st.FindOrCreateConversation(ctx, 2, 77, EntryContext{})
				if err != nil || !created || other.ID <= first {
					t.Fatalf("another shop's conversation must be new with a higher id: %+v %v %v", other, created, err)
				}
				c, _, err := st.FindOrCreateConversation(ctx, 1, 77, EntryContext{OrderID: "o9"})
				if err != nil {
					t.Fatal(err)
				}
				if c.ID != first || c.Context.Kind() != KindAfterSale {
					t.Fatalf("context not updated: %+v", c)
				}
				if _, err := st.Conversation(ctx, 987654); ErrorCode(err) != ENOTFOUND {
					t.Fatalf("unknown conversation: %v", err)
				}
			})
			t.Run("session life", func(t *testing.T) {
				c, _, _ := st.FindOrCreateConversation(ctx, 1, 5, EntryContext{ProductID: "p1", Category: "tea"})
				now := time.Now().UTC().Truncate(time.Millisecond)
				s1, created, err := st.OpenSession(ctx, c, 1, now)
				if err != nil || !created || s1.Kind != KindPreSale || s1.State != StateQueued || s1.Context.Category != "tea" {
					t.Fatalf("open: %+v %v %v", s1, created, err)
				}
				again, created, err := st.OpenSession(ctx, c, 2, now)
				if err != nil || created || again.ID != s1.ID {
					t.Fatalf("second open must return the live session: %+v %v %v", again, created, err)
				}
				a, err := st.AssignSession(ctx, s1, 41, "manual", now)
				if err != nil || a.AgentID != 41 || a.State != StateOpen || a.AssignedBy != "manual" || a.AssignedAt == nil {
					t.Fatalf("assign: %+v %v", a, err)
				}
				if read, err := st.Session(ctx, s1.ID); err != nil || read.AgentID != 41 || !read.AssignedAt.Equal(*a.AssignedAt) || read.State != StateOpen {
					t.Fatalf("the assigned copy differs from the row: %+v, read %+v %v", a, read, err)
				}
				// s1 is stale now (queued, no agent): the row is assigned all the same, and read back.
				a, err = st.AssignSession(ctx, s1, 42, "manual", now)
				if err != nil || a.AgentID != 42 || a.State != StateOpen || a.AssignedAt == nil {
					t.Fatalf("assign from a stale copy: %+v %v", a, err)
				}
				if err := st.MarkActivity(ctx, s1.ID, now.Add(time.Second), true); err != nil {
					t.Fatal(err)
				}
				got, _ := st.Session(ctx, s1.ID)
				if got.FirstResponseAt == nil || !got.LastActivityAt.After(now) {
					t.Fatalf("activity: %+v", got)
				}
				list, err := st.Sessions(ctx, SessionFilter{ShopID: 1, AgentID: 42, States: []State{StateOpen}})
				if err != nil || len(list) != 1 || list[0].ID != s1.ID {
					t.Fatalf("list: %+v %v", list, err)
				}
				if list, _ := st.Sessions(ctx, SessionFilter{ShopID: 2}); len(list) != 0 {
					t.Fatalf("another shop sees sessions: %+v", list)
				}
				idle, err := st.IdleSessions(ctx, now.Add(time.Hour), 10)
				if err != nil || len(idle) != 1 {
					t.Fatalf("idle: %+v %v", idle, err)
				}
				closed, err := st.CloseSession(ctx, a, "staff", "answered", now.Add(2*time.Second))
				if err != nil || closed.State != StateClosed || closed.Outcome != "answered" || closed.ClosedAt == nil || closed.AgentID != 42 {
					t.Fatalf("close: %+v %v", closed, err)
				}
				if read, err := st.Session(ctx, s1.ID); err != nil || read.State != StateClosed || !read.ClosedAt.Equal(*closed.ClosedAt) || read.ClosedBy != "staff" {
					t.Fatalf("the closed copy differs from the row: %+v, read %+v %v", closed, read, err)
				}
				// Closing again, from the closed copy or from a stale open one, is a conflict.
				if _, err := st.CloseSession(ctx, closed, "staff", "again", now); ErrorCode(err) != ECONFLICT {
					t.Fatalf("second close: %v", err)
				}
				if _, err := st.CloseSession(ctx, a, "staff", "again", now); ErrorCode(err) != ECONFLICT {
					t.Fatalf("close from a stale copy: %v", err)
				}
				if _, err := st.AssignSession(ctx, a, 43, "manual", now); ErrorCode(err) != ECONFLICT {
					t.Fatalf("assign closed: %v", err)
				}
				if live, err := st.LiveSession(ctx, c.ID); err != nil || live != nil {
					t.Fatalf("live after close: %+v %v", live, err)
				}
				s2, created, err := st.OpenSession(ctx, c, 9, now)
				if err != nil || !created || s2.ID == s1.ID {
					t.Fatalf("reopen: %+v %v %v", s2, created, err)
				}
				convs, err := st.Conversations(ctx, ConversationFilter{ShopID: 1, AgentID: 42})
				if err != nil || len(convs) != 1 || convs[0].ID != c.ID {
					t.Fatalf("agent's conversations: %+v %v", convs, err)
				}
				// Paging: newest first, a page at a time after the last id seen.
				page1, err := st.Sessions(ctx, SessionFilter{ShopID: 1, Limit: 1})
				if err != nil || len(page1) != 1 || page1[0].ID != s2.ID {
					t.Fatalf("first page: %+v %v", page1, err)
				}
				page2, err := st.Sessions(ctx, SessionFilter{ShopID: 1, Limit: 1, BeforeID: page1[0].ID})
				if err != nil || len(page2) != 1 || page2[0].ID != s1.ID {
					t.Fatalf("second page: %+v %v", page2, err)
				}
				if page3, err := st.Sessions(ctx, SessionFilter{ShopID: 1, Limit: 1, BeforeID: s1.ID}); err != nil || len(page3) != 0 {
					t.Fatalf("past the end: %+v %v", page3, err)
				}
			})
		})
	}
}

// TestOpenSessionIf: a session opens in one statement from a copy of the conversation whose context
// still matches the row, reads back as written, finds a live session instead of a second, and writes
// nothing when the row's context changed since the copy was read.
func TestOpenSessionIf(t *testing.T) {
	for _, b := range sqlBackends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			db := b.warm(t)
			st := NewStore(db)
			ec := EntryContext{Page: "https://shop.example/p/9", ProductID: "p9", Category: "teapots"}
			c, _, err := st.FindOrCreateConversation(ctx, 3, 44, ec)
			if err != nil {
				t.Fatal(err)
			}
			at := time.Now().UTC().Truncate(time.Microsecond)
			opened, created, ok, err := st.OpenSessionIf(ctx, c, 5, at)
			if err != nil || !ok || !created || opened.ID == 0 {
				t.Fatalf("open: %+v %v %v %v", opened, created, ok, err)
			}
			read, err := st.Session(ctx, opened.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(read, opened) || read.Kind != KindPreSale || read.Context != ec {
				t.Fatalf("read back %+v, opened %+v", read, opened)
			}
			again, created, ok, err := st.OpenSessionIf(ctx, c, 6, at)
			if err != nil || !ok || created || again.ID != opened.ID {
				t.Fatalf("open again: %+v %v %v %v", again, created, ok, err)
			}
			if _, err := st.CloseSession(ctx, read, "buyer", "", at); err != nil {
				t.Fatal(err)
			}
			// The buyer came back from an order page, through another node: this copy is stale.
			if _, _, err := st.FindOrCreateConversation(ctx, 3, 44, EntryContext{OrderID: "E1"}); err != nil {
				t.Fatal(err)
			}
			if stale, _, ok, err := st.OpenSessionIf(ctx, c, 7, at); err != nil || ok || stale != nil {
				t.Fatalf("open from a stale copy: %+v %v %v", stale, ok, err)
			}
			if live, err := st.LiveSession(ctx, c.ID); err != nil || live != nil {
				t.Fatalf("a stale copy opened %+v %v", live, err)
			}
		})
	}
}
