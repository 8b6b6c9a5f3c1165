package archive

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/shopdesk/shopdesk/archive/search"
	"github.com/shopdesk/shopdesk/session"
)

// privacyFixture is fill's history archived by the default rules (shop 1 cold up to July, shop 2 up
// to September), indexed in an in-memory bleve index, with uploads in the blob store.
type privacyFixture struct {
	db    *gorm.DB
	blobs Blobs
	cold  *Cold
	idx   search.Index
	want  history
}

func newPrivacyFixture(t *testing.T, tr tier) *privacyFixture {
	t.Helper()
	ctx := context.Background()
	f := &privacyFixture{db: tr.db(t), blobs: tr.blobs(t)}
	f.want = fill(t, f.db)
	// A shop-1 message of August 10 that carries an upload.
	var conv session.Conversation
	if err := f.db.Where("shop_id = 1").Order("id").Take(&conv).Error; err != nil {
		t.Fatal(err)
	}
	last := f.want[conv.ID][len(f.want[conv.ID])-1]
	withUpload := session.Message{ConversationID: conv.ID, Seq: last.Seq + 1, ClientMsgID: "upload", ShopID: 1, SenderKind: session.PartyBuyer,
		SenderID: 10, Body: session.Body{Type: session.TypeImage, BlobKey: "uploads/1/2026/08/sent.png"}, CreatedAt: time.Date(2026, 8, 10, 0, 0, 0, 0, time.UTC)}
	if _, err := session.NewSQLLog(f.db).Insert(ctx, []session.Message{withUpload}); err != nil {
		t.Fatal(err)
	}
	f.want[conv.ID] = append(f.want[conv.ID], withUpload)
	for _, key := range []string{"uploads/1/2026/07/old.png", "uploads/1/2026/08/sent.png", "uploads/1/2026/08/kept.png", "uploads/2/2026/06/other.png"} {
		if err := f.blobs.Put(ctx, key, bytes.NewReader([]byte("png")), 3, "image/png"); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := search.NewMemBleve()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	f.idx = idx
	var docs []search.Document
	for convID, ms := range f.want {
		var c session.Conversation
		if err := f.db.Take(&c, convID).Error; err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			docs = append(docs, search.FromMessage(m, c, nil))
		}
	}
	if err := idx.Index(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if _, err := newArchiver(t, f.db, f.blobs, ArchiverConfig{PartMessages: 5}).Run(ctx); err != nil {
		t.Fatal(err)
	}
	f.cold = NewCold(f.db, f.blobs, 0)
	return f
}

func (f *privacyFixture) privacy(t *testing.T, withIndex bool) *Privacy {
	t.Helper()
	p, err := NewPrivacy(f.db, NewHistory(session.NewSQLLog(f.db), f.cold), f.cold, f.blobs, PrivacyConfig{
		Shops: func(context.Context) ([]int64, error) { return []int64{1, 2}, nil },
		Days: func(_ context.Context, shop int64) (int, error) {
			if shop == 1 {
				return 87, nil // cutoff August 25
			}
			return 0, nil // three years: nothing
		},
		Index: func() IndexEraser {
			if withIndex {
				return f.idx
			}
			return nil
		},
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// indexed counts the shop's documents created before t.
func (f *privacyFixture) indexed(t *testing.T, shop int64, before time.Time) int64 {
	t.Helper()
	res, err := f.idx.Search(context.Background(), search.Query{ShopID: shop, Until: before, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	return res.Total
}

// TestRetainPerShop: each shop loses exactly its history older than its own retention, from the warm
// and cold tiers, the index and the uploads; the run is recorded, and a rerun does nothing.
func TestRetainPerShop(t *testing.T) {
	t.Parallel()
	for _, tr := range tiers() {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newPrivacyFixture(t, tr)
			cutoff := now.AddDate(0, 0, -87)
			if f.indexed(t, 1, cutoff) == 0 {
				t.Fatal("nothing indexed before the cutoff")
			}
			shop2Docs := f.indexed(t, 2, now)
			p := f.privacy(t, true)

			if _, err := p.Retain(WithLease(ctx, lostLease{}), Scope{}); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("retention without a lease: %v", err)
			}
			if _, err := p.Retain(ctx, Scope{Until: now.Add(time.Hour)}); session.ErrorCode(err) != session.EINVALID {
				t.Fatalf("a cutoff in the future: %v", err)
			}
			res, err := p.Run(ctx)
			if err != nil || res.Processed != 2 || res.Errors != 0 {
				t.Fatalf("retention: %+v %v", res, err)
			}
			warm, cold := everything(t, f.db, f.blobs, true)
			var gone int64
			for conv, ms := range f.want {
				for _, m := range ms {
					kept := containsSeq(warm[conv], m.Seq) || containsSeq(cold[conv], m.Seq)
					if kept == (m.ShopID == 1 && m.CreatedAt.Before(cutoff)) {
						t.Fatalf("message %d/%d of shop %d at %s: kept=%v", conv, m.Seq, m.ShopID, m.CreatedAt, kept)
					}
					if !kept {
						gone++
					}
				}
			}
			if res.Deleted != gone || gone == 0 {
				t.Fatalf("deleted %d, %d gone", res.Deleted, gone)
			}
			if n := f.indexed(t, 1, cutoff); n != 0 {
				t.Fatalf("%d documents before the cutoff left", n)
			}
			if f.indexed(t, 1, now) == 0 || f.indexed(t, 2, now) != shop2Docs {
				t.Fatal("documents after the cutoff or of the other shop went too")
			}
			for key, want := range map[string]bool{"uploads/1/2026/07/old.png": false, "uploads/1/2026/08/sent.png": false,
				"uploads/1/2026/08/kept.png": true, "uploads/2/2026/06/other.png": true} {
				if _, err := f.blobs.Stat(ctx, key); (err == nil) != want {
					t.Fatalf("upload %s: %v, want kept=%v", key, err, want)
				}
			}
			// The run that lost its lease is recorded as failed, having deleted nothing.
			recs, err := p.Deletions().List(ctx, 1, 10)
			if err != nil || len(recs) != 2 || recs[1].State != DeletionFailed || recs[1].Error != ErrLeaseLost.Error() || recs[1].WarmMessages != 0 {
				t.Fatalf("shop 1 deletions: %+v %v", recs, err)
			}
			r := recs[0]
			if r.Kind != DeletionRetention || r.State != DeletionDone || !r.Cutoff.Equal(cutoff) || r.WarmMessages+r.ColdMessages != gone ||
				r.WarmMessages == 0 || r.ColdSegments == 0 || r.IndexDocuments == 0 || r.Blobs != 2 || r.IndexPending {
				t.Fatalf("deletion record %+v (gone %d)", r, gone)
			}
			if recs, _ := p.Deletions().List(ctx, 2, 10); len(recs) != 0 {
				t.Fatalf("shop 2 deletions: %+v", recs)
			}
			if res, err := p.Run(ctx); err != nil || res.Deleted != 0 {
				t.Fatalf("rerun: %+v %v", res, err)
			}
			if recs, _ := p.Deletions().List(ctx, 1, 10); len(recs) != 2 {
				t.Fatalf("a rerun that deleted nothing was recorded: %+v", recs)
			}
		})
	}
}

// TestRetainIndexPending: a process without the index records the index part as pending; the next
// run that has the index does it.
func TestRetainIndexPending(t *testing.T) {
	t.Parallel()
	tr := tiers()[0]
	ctx := context.Background()
	f := newPrivacyFixture(t, tr)
	oct := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	before := f.indexed(t, 1, oct)
	res, err := f.privacy(t, false).Retain(ctx, Scope{ShopID: 1, Until: oct})
	if err != nil || res.Deleted == 0 {
		t.Fatalf("retention without the index: %+v %v", res, err)
	}
	if f.indexed(t, 1, oct) != before {
		t.Fatal("the index changed")
	}
	p := f.privacy(t, true)
	if recs, _ := p.Deletions().List(ctx, 1, 10); len(recs) != 1 || !recs[0].IndexPending || recs[0].IndexDocuments != 0 {
		t.Fatalf("record: %+v", recs)
	}
	if _, err := p.Retain(ctx, Scope{ShopID: 1, Until: oct}); err != nil {
		t.Fatal(err)
	}
	if n := f.indexed(t, 1, oct); n != 0 {
		t.Fatalf("%d documents left after the pending deletion", n)
	}
	if recs, _ := p.Deletions().List(ctx, 1, 10); len(recs) != 1 || recs[0].IndexPending || recs[0].IndexDocuments != before {
		t.Fatalf("record after the pending deletion: %+v (before %d)", recs, before)
	}
}

// TestEraseBuyerTiers: erasing buyer 10 rewrites the shop's cold segments without their conversation,
// deletes its warm rows, index documents and uploads, leaves a marker, and keeps buyer 11 and shop 2
// whole; a second erasure adds nothing.
func TestEraseBuyerTiers(t *testing.T) {
	t.Parallel()
	for _, tr := range tiers() {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newPrivacyFixture(t, tr)
			var anonymized []int64
			p := f.privacy(t, true)
			p.cfg.Anonymize = func(_ context.Context, shop, buyer int64) error {
				anonymized = append(anonymized, shop, buyer)
				return nil
			}
			conv, err := session.NewStore(f.db).ConversationOfBuyer(ctx, 1, 10)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.EraseBuyer(ctx, ErasureRequest{ShopID: 1, Reason: "x"}); session.ErrorCode(err) != session.EINVALID {
				t.Fatalf("erasure without a buyer: %v", err)
			}
			rec, err := p.EraseBuyer(ctx, ErasureRequest{ShopID: 1, BuyerID: 10, Reason: "request 7", RequestedBy: "staff:1"})
			if err != nil {
				t.Fatal(err)
			}
			all := int64(len(f.want[conv.ID]))
			if rec.State != DeletionDone || rec.WarmMessages+rec.ColdMessages != all || rec.ColdSegments == 0 || rec.IndexDocuments != all ||
				rec.Blobs != 1 || len(anonymized) != 2 || anonymized[1] != 10 {
				t.Fatalf("erasure record %+v of %d messages, anonymized %v", rec, all, anonymized)
			}
			warm, cold := everything(t, f.db, f.blobs, true)
			if len(cold[conv.ID]) != 0 || len(warm[conv.ID]) != 1 || warm[conv.ID][0].Body.Event != ErasedEvent || warm[conv.ID][0].Seq != all+1 {
				t.Fatalf("the erased conversation: warm %v cold %v", seqs(warm[conv.ID]), seqs(cold[conv.ID]))
			}
			for id, ms := range f.want {
				if id != conv.ID && len(warm[id])+len(cold[id]) != len(ms) {
					t.Fatalf("conversation %d lost messages", id)
				}
			}
			if res, _ := f.idx.Search(ctx, search.Query{ShopID: 1, BuyerID: 10}); res.Total != 0 {
				t.Fatalf("buyer 10 in the index: %d", res.Total)
			}
			if res, _ := f.idx.Search(ctx, search.Query{ShopID: 1, BuyerID: 11}); res.Total == 0 {
				t.Fatal("buyer 11 left the index")
			}
			if _, err := f.blobs.Stat(ctx, "uploads/1/2026/08/sent.png"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("the buyer's upload: %v", err)
			}
			// Paging through the merged history finds only the marker.
			h := NewHistory(session.NewSQLLog(f.db), NewCold(f.db, f.blobs, 0))
			if page, err := h.After(ctx, conv.ID, 0, 50); err != nil || len(page) != 1 || page[0].Seq != all+1 {
				t.Fatalf("history after erasure: %v %v", seqs(page), err)
			}
			if page, err := h.Before(ctx, conv.ID, all+1, 50); err != nil || len(page) != 0 {
				t.Fatalf("history before the marker: %v %v", seqs(page), err)
			}
			rec, err = p.EraseBuyer(ctx, ErasureRequest{ShopID: 1, BuyerID: 10, Reason: "again"})
			if err != nil || rec.WarmMessages+rec.ColdMessages+rec.IndexDocuments != 0 {
				t.Fatalf("second erasure: %+v %v", rec, err)
			}
			if warm, _ := everything(t, f.db, f.blobs, true); len(warm[conv.ID]) != 1 {
				t.Fatalf("second erasure left %v", seqs(warm[conv.ID]))
			}
		})
	}
}

func containsSeq(ms []session.Message, seq int64) bool {
	for _, m := range ms {
		if m.Seq == seq {
			return true
		}
	}
	return false
}
