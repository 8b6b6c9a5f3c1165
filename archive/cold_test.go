package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/session"
)

// countingBlobs counts reads of a real store, to see the cache work.
type countingBlobs struct {
	Blobs
	gets atomic.Int64
}

func (c *countingBlobs) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c.gets.Add(1)
	return c.Blobs.Get(ctx, key)
}

func seqs(ms []session.Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

func span(from, to int64) []int64 {
	var out []int64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func TestColdPages(t *testing.T) {
	t.Parallel()
	for _, tr := range tiers() {
		t.Run(tr.name, func(t *testing.T) {
			ctx := context.Background()
			db := tr.db(t)
			blobs := &countingBlobs{Blobs: tr.blobs(t)}
			want := fill(t, db)
			a := newArchiver(t, db, blobs, ArchiverConfig{PartMessages: 5})
			if _, err := a.Run(ctx); err != nil {
				t.Fatal(err)
			}
			warm, cold := everything(t, db, blobs, true)
			blobs.gets.Store(0) // count the reader's own fetches
			c := NewCold(db, blobs, 0)
			for conv := range want {
				ms := cold[conv]
				if len(ms) < 10 {
					t.Fatalf("conversation %d: only %d cold messages", conv, len(ms))
				}
				top := ms[len(ms)-1].Seq
				for _, p := range []struct {
					after, before int64
					limit         int
				}{{0, top + 1, 3}, {2, 7, 4}, {0, top + 1, 1000}, {top - 2, top + 1, 10}} {
					got, err := c.After(ctx, conv, p.after, p.limit)
					if err != nil {
						t.Fatal(err)
					}
					if w := span(p.after+1, min(top, p.after+int64(p.limit))); !slices.Equal(seqs(got), w) {
						t.Fatalf("After(%d, %d, %d) = %v, want %v", conv, p.after, p.limit, seqs(got), w)
					}
					got, err = c.Before(ctx, conv, p.before, p.limit)
					if err != nil {
						t.Fatal(err)
					}
					if w := span(max(1, p.before-int64(p.limit)), p.before-1); !slices.Equal(seqs(got), w) {
						t.Fatalf("Before(%d, %d, %d) = %v, want %v", conv, p.before, p.limit, seqs(got), w)
					}
				}
				full, _ := c.After(ctx, conv, 0, 1000)
				for i, m := range full {
					if m.ClientMsgID != ms[i].ClientMsgID || m.Body.Text != ms[i].Body.Text || !m.CreatedAt.Equal(ms[i].CreatedAt) {
						t.Fatalf("cold message %+v, want %+v", m, ms[i])
					}
				}
				// Warm seqs continue where cold ones end.
				if w := warm[conv]; len(w) > 0 && w[0].Seq != top+1 {
					t.Fatalf("conversation %d: warm starts at %d after cold %d", conv, w[0].Seq, top)
				}
				if got, _ := c.After(ctx, conv, top, 10); len(got) != 0 {
					t.Fatalf("After the cold top: %v", seqs(got))
				}
			}
			// Every segment is fetched once; the rest came from the cache.
			recs, _ := c.Manifest().Segments(ctx, 0)
			if got := blobs.gets.Load(); got != int64(len(recs)) {
				t.Errorf("%d blob reads for %d segments", got, len(recs))
			}
			if _, err := c.After(ctx, 1, 0, 0); session.ErrorCode(err) != session.EINVALID {
				t.Fatalf("limit 0: %v", err)
			}
			if got, err := c.Before(ctx, 999999, 10, 10); err != nil || len(got) != 0 {
				t.Fatalf("unknown conversation: %v %v", got, err)
			}
		})
	}
}

func TestColdCacheBounded(t *testing.T) {
	tr := tiers()[0]
	ctx := context.Background()
	db := tr.db(t)
	blobs := &countingBlobs{Blobs: tr.blobs(t)}
	want := fill(t, db)
	if _, err := newArchiver(t, db, blobs, ArchiverConfig{PartMessages: 5}).Run(ctx); err != nil {
		t.Fatal(err)
	}
	recs, _ := NewManifest(db).Segments(ctx, 0)
	var biggest int64
	for _, r := range recs {
		biggest = max(biggest, r.SizeBytes*8)
	}
	c := NewCold(db, blobs, 2*biggest) // room for two segments at most
	for range 2 {
		for conv := range want {
			if _, err := c.After(ctx, conv, 0, 1000); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := c.cache.len(); n < 1 || n > 2 {
		t.Fatalf("%d segments cached with room for two", n)
	}
	c.cache.mu.Lock()
	size := c.cache.size
	c.cache.mu.Unlock()
	if size > 2*biggest {
		t.Fatalf("cache holds %d bytes, bound %d", size, 2*biggest)
	}
	if blobs.gets.Load() <= 2*int64(len(recs)) { // the archiver's read-backs, then the reader's
		t.Fatalf("a bounded cache re-read nothing: %d reads of %d segments", blobs.gets.Load(), len(recs))
	}
	// A corrupt object is reported, never served.
	c = NewCold(db, blobs, -1)
	rec := recs[0]
	if err := blobs.Put(ctx, rec.ObjectKey, strings.NewReader("garbage"), 7, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.After(ctx, rec.Ranges[0].ConversationID, rec.Ranges[0].FirstSeq-1, 10); session.ErrorCode(err) != session.EINTERNAL {
		t.Fatalf("corrupt segment: %v", err)
	}
	if err := blobs.Delete(ctx, rec.ObjectKey); err != nil {
		t.Fatal(err)
	}
	if _, err := c.After(ctx, rec.Ranges[0].ConversationID, rec.Ranges[0].FirstSeq-1, 10); session.ErrorCode(err) != session.EINTERNAL {
		t.Fatalf("missing segment: %v", err)
	}
}

// TestColdErase erases one buyer's conversation from the cold tier, stopping at each step once and
// rerunning: the conversation is gone from every segment and object, the others are untouched.
func TestColdErase(t *testing.T) {
	t.Parallel()
	for _, tr := range tiers() {
		for _, point := range []string{"", "erase.after_put", "erase.before_delete"} {
			t.Run(fmt.Sprintf("%s/%s", tr.name, point), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				db, blobs := tr.db(t), tr.blobs(t)
				want := fill(t, db)
				if _, err := newArchiver(t, db, blobs, ArchiverConfig{PartMessages: 5}).Run(ctx); err != nil {
					t.Fatal(err)
				}
				_, before := everything(t, db, blobs, true)
				var victim int64
				for conv, ms := range want {
					if ms[0].ShopID == 1 && (victim == 0 || conv < victim) {
						victim = conv
					}
				}
				c := NewCold(db, blobs, 0)
				if _, err := c.After(ctx, victim, 0, 1000); err != nil { // cached before the erasure
					t.Fatal(err)
				}
				crashed := errors.New("crash")
				n := 0
				c.crashPoint = func(name string) error {
					if name == point {
						if n++; n == 2 {
							return crashed
						}
					}
					return nil
				}
				if point != "" {
					if _, err := c.Erase(ctx, 1, []int64{victim}); !errors.Is(err, crashed) {
						t.Fatalf("erase stopped at %s: %v", point, err)
					}
					c.crashPoint = nil
				}
				res, err := c.Erase(ctx, 1, []int64{victim})
				if err != nil {
					t.Fatal(err)
				}
				if point == "" && (res.Messages != int64(len(before[victim])) || res.Rewritten != res.Segments) {
					t.Fatalf("erase result %+v for %d messages", res, len(before[victim]))
				}
				warm, cold := everything(t, db, blobs, true) // also: no old generation is left behind
				if len(cold[victim]) != 0 {
					t.Fatalf("%d messages of the erased conversation still cold", len(cold[victim]))
				}
				if got, _ := c.After(ctx, victim, 0, 1000); len(got) != 0 {
					t.Fatalf("reader still serves %d erased messages", len(got))
				}
				delete(want, victim)
				sameHistory(t, want, warm, cold)
				for conv := range want {
					if !slices.Equal(seqs(cold[conv]), seqs(before[conv])) {
						t.Fatalf("conversation %d changed by another's erasure", conv)
					}
				}
				// Again: nothing left to erase. Another shop's conversation is out of reach.
				if res, err := c.Erase(ctx, 1, []int64{victim}); err != nil || res.Segments != 0 {
					t.Fatalf("second erase: %+v %v", res, err)
				}
				for conv, ms := range want {
					if ms[0].ShopID == 2 {
						if res, err := c.Erase(ctx, 1, []int64{conv}); err != nil || res.Segments != 0 {
							t.Fatalf("shop 1 erased shop 2's conversation: %+v %v", res, err)
						}
					}
				}
				// Shop 2 has one conversation: erasing it leaves its segments empty, still recorded.
				var only int64
				for conv, ms := range want {
					if ms[0].ShopID == 2 {
						only = conv
					}
				}
				res, err = c.Erase(ctx, 2, []int64{only})
				if err != nil || res.Emptied == 0 || res.Emptied != res.Segments || res.Messages != int64(len(cold[only])) {
					t.Fatalf("erase of shop 2's only conversation: %+v %v", res, err)
				}
				if _, cold := everything(t, db, blobs, true); len(cold[only]) != 0 {
					t.Fatalf("%d messages of shop 2 still cold", len(cold[only]))
				}
				recs, _ := c.Manifest().Segments(ctx, 2)
				for _, r := range recs {
					if r.MessageCount != 0 || r.Generation != 1 || len(r.Ranges) != 0 || r.RewrittenAt == nil {
						t.Fatalf("emptied segment %+v", r)
					}
				}
				if _, err := c.Erase(ctx, 0, []int64{victim}); session.ErrorCode(err) != session.EINVALID {
					t.Fatalf("erase without shop: %v", err)
				}
			})
		}
	}
}

// TestColdExpire applies retention to one shop's cold tier, stopping once before an object delete:
// its old segments end expired in the manifest, their objects gone, everything else untouched.
func TestColdExpire(t *testing.T) {
	t.Parallel()
	for _, tr := range tiers() {
		for _, point := range []string{"", "expire.before_delete"} {
			t.Run(fmt.Sprintf("%s/%s", tr.name, point), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				db, blobs := tr.db(t), tr.blobs(t)
				want := fill(t, db)
				if _, err := newArchiver(t, db, blobs, ArchiverConfig{PartMessages: 5}).Run(ctx); err != nil {
					t.Fatal(err)
				}
				_, before := everything(t, db, blobs, true)
				statsBefore, _ := NewManifest(db).Stats(ctx)
				c := NewCold(db, blobs, 0)
				july := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
				if point != "" {
					c.crashPoint = func(name string) error {
						if name == point {
							return errors.New("crash")
						}
						return nil
					}
					if _, err := c.Expire(ctx, 1, july); err == nil {
						t.Fatal("expire did not stop")
					}
					c.crashPoint = nil
				}
				if _, err := c.Expire(ctx, 1, july); err != nil {
					t.Fatal(err)
				}
				warm, cold := everything(t, db, blobs, true)
				var expired int64
				for conv, ms := range before {
					for _, m := range ms {
						gone := !slices.ContainsFunc(cold[conv], func(x session.Message) bool { return x.Seq == m.Seq })
						if m.ShopID == 1 && m.CreatedAt.Before(july) != gone {
							t.Fatalf("message %d/%d of %s: gone=%v", conv, m.Seq, m.CreatedAt, gone)
						}
						if gone {
							expired++
						}
					}
					if w := want[conv]; len(warm[conv])+len(cold[conv])+int(countGone(before[conv], cold[conv])) != len(w) {
						t.Fatalf("conversation %d: messages lost beyond retention", conv)
					}
				}
				recs, _ := NewManifest(db).Segments(ctx, 1)
				var rows int64
				for _, r := range recs {
					if r.State == StateExpired {
						rows += r.MessageCount
						if r.RewrittenAt == nil || len(r.Ranges) != 0 || !r.LastTime.Before(july) {
							t.Fatalf("expired row %+v", r)
						}
					}
				}
				if rows != expired || expired == 0 {
					t.Fatalf("expired rows record %d messages, %d gone", rows, expired)
				}
				if st, _ := NewManifest(db).Stats(ctx); st.Messages != statsBefore.Messages-expired {
					t.Fatalf("stats %+v after expiring %d of %+v", st, expired, statsBefore)
				}
				if res, err := c.Expire(ctx, 1, july); err != nil || res.Segments != 0 {
					t.Fatalf("second expire: %+v %v", res, err)
				}
				if _, err := c.Expire(ctx, 1, time.Time{}); session.ErrorCode(err) != session.EINVALID {
					t.Fatalf("expire without a time: %v", err)
				}
			})
		}
	}
}

func countGone(before, after []session.Message) int64 {
	var n int64
	for _, m := range before {
		if !slices.ContainsFunc(after, func(x session.Message) bool { return x.Seq == m.Seq }) {
			n++
		}
	}
	return n
}
