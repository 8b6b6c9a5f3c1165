package archive

import (
	"context"
	"slices"
	"testing"

	"github.com/shopdesk/shopdesk/session"
)

// TestHistoryMergesTiers pages through conversations half archived, forwards and backwards from
// every seq, and gets what was written, whichever tier holds it.
func TestHistoryMergesTiers(t *testing.T) {
	t.Parallel()
	for _, tr := range tiers() {
		t.Run(tr.name, func(t *testing.T) {
			ctx := context.Background()
			db, blobs := tr.db(t), tr.blobs(t)
			want := fill(t, db)
			if _, err := newArchiver(t, db, blobs, ArchiverConfig{PartMessages: 6}).Run(ctx); err != nil {
				t.Fatal(err)
			}
			warm, cold := everything(t, db, blobs, true)
			h := NewHistory(session.NewSQLLog(db), NewCold(db, blobs, 0))
			for conv, ms := range want {
				if len(warm[conv]) == 0 || len(cold[conv]) == 0 {
					t.Fatalf("conversation %d: %d warm, %d cold; the test wants both", conv, len(warm[conv]), len(cold[conv]))
				}
				top := int64(len(ms))
				if last, err := h.LastSeq(ctx, conv); err != nil || last != top {
					t.Fatalf("last seq %d %v, want %d", last, err, top)
				}
				floor := warm[conv][0].Seq
				check := func(from int64, limit int) {
					t.Helper()
					got, err := h.After(ctx, conv, from, limit)
					if err != nil {
						t.Fatal(err)
					}
					if w := span(from+1, min(top, from+int64(limit))); !slices.Equal(seqs(got), w) {
						t.Fatalf("After(%d, %d, %d) = %v, want %v", conv, from, limit, seqs(got), w)
					}
					got, err = h.Before(ctx, conv, from+1, limit)
					if err != nil {
						t.Fatal(err)
					}
					if w := span(max(1, from+1-int64(limit)), from); !slices.Equal(seqs(got), w) {
						t.Fatalf("Before(%d, %d, %d) = %v, want %v", conv, from+1, limit, seqs(got), w)
					}
				}
				for from := int64(0); from <= top; from++ {
					check(from, 7)
				}
				for from := max(0, floor-3); from <= min(top, floor+2); from++ {
					check(from, 1)
					check(from, 1000)
				}
				all, _ := h.After(ctx, conv, 0, 1000)
				for i, m := range all {
					if m.ClientMsgID != ms[i].ClientMsgID || !m.CreatedAt.Equal(ms[i].CreatedAt) {
						t.Fatalf("message %d: %+v, want %+v", i, m, ms[i])
					}
				}
			}
			// Writes go to the wrapped log.
			var conv int64
			for c := range want {
				conv = max(conv, c)
			}
			m, dup, err := h.Append(ctx, session.Message{ConversationID: conv, ClientMsgID: "new", ShopID: want[conv][0].ShopID,
				SenderKind: session.PartyBuyer, SenderID: 1, Body: session.Body{Type: session.TypeText, Text: "new"}, CreatedAt: now})
			if err != nil || dup || m.Seq != int64(len(want[conv]))+1 {
				t.Fatalf("append: %+v %v %v", m, dup, err)
			}
		})
	}
}
