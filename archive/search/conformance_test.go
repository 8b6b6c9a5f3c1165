package search

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/session"
)

// fixture is the suite's data set: several shops, so that every test also checks tenant isolation.
// Shop 1 has buyers 11 (conversation 101, agent 7, after-sale) and 12 (conversation 102, agent 8,
// pre-sale); shop 2 has the same words in conversation 201.
var base = time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC)

func fixture() []Document {
	doc := func(shop, conv, seq, buyer, agent int64, kind session.Kind, sender session.PartyKind, text string) Document {
		d := Document{
			ShopID: shop, ConversationID: conv, Seq: seq, SessionID: conv*10 + 1, Kind: kind,
			BuyerID: buyer, AgentID: agent, SenderKind: sender, Type: session.TypeText, Text: text,
			CreatedAt: base.Add(time.Duration(conv*100+seq) * time.Minute),
		}
		d.SenderID = buyer
		if sender == session.PartyStaff {
			d.SenderID = agent
		}
		d.Codes = ExtractCodes(text)
		return d
	}
	b, s := session.PartyBuyer, session.PartyStaff
	as, ps := session.KindAfterSale, session.KindPreSale
	return []Document{
		doc(1, 101, 1, 11, 7, as, b, "你好，我的订单E20260310123456还没有发货"),
		doc(1, 101, 2, 11, 7, as, s, "您好，订单已经申请退款，请耐心等待"),
		doc(1, 101, 3, 11, 7, as, b, "Please refund to my card, phone 138-1234-5678"),
		doc(1, 101, 4, 11, 7, as, s, "The refund status is processing"),
		doc(1, 102, 1, 12, 8, ps, b, "这件衣服有XL尺码吗？SKU-A1234-RED"),
		doc(1, 102, 2, 12, 8, ps, s, "XL has stock, shipping within 24 hours"),
		doc(1, 102, 3, 12, 8, ps, b, "好的，我要退款 <b>不要了</b>"),
		doc(2, 201, 1, 21, 9, as, b, "我要退款，订单E20260310999999"),
		doc(2, 201, 2, 21, 9, as, s, "refund status is processing"),
		// Shops 5 and 17 share a shard with shop 1 in the bleve index (4 shards in memory, 16 on
		// disk), so isolation is also checked inside one shard.
		doc(5, 501, 1, 11, 7, as, b, "退款 refund status E20260310123456 5678"),
		doc(17, 1701, 1, 11, 7, as, b, "退款 refund status E20260310123456 5678"),
	}
}

// RunConformance runs the suite against a fresh index from open. refresh makes what was indexed
// visible to searches (Elasticsearch refreshes on a timer; bleve needs nothing).
func runConformance(t *testing.T, open func(t *testing.T) Index, refresh func(t *testing.T, idx Index)) {
	ctx := context.Background()
	setup := func(t *testing.T) Index {
		idx := open(t)
		if err := idx.Index(ctx, fixture()); err != nil {
			t.Fatal(err)
		}
		refresh(t, idx)
		return idx
	}
	refs := func(r Result) []string {
		var out []string
		for _, h := range r.Hits {
			out = append(out, fmt.Sprintf("%d/%d", h.ConversationID, h.Seq))
		}
		slices.Sort(out)
		return out
	}
	search := func(t *testing.T, idx Index, q Query) Result {
		t.Helper()
		r, err := idx.Search(ctx, q)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		return r
	}

	t.Run("keywords", func(t *testing.T) {
		idx := setup(t)
		for _, c := range []struct {
			name string
			q    Query
			want []string
		}{
			{"zh word", Query{ShopID: 1, Keyword: "退款"}, []string{"101/2", "102/3"}},
			{"zh words all must match", Query{ShopID: 1, Keyword: "退款 耐心"}, []string{"101/2"}},
			{"en word", Query{ShopID: 1, Keyword: "refund"}, []string{"101/3", "101/4"}},
			{"en case-insensitive", Query{ShopID: 1, Keyword: "REFUND Status"}, []string{"101/4"}},
			{"phrase", Query{ShopID: 1, Keyword: `"refund status"`}, []string{"101/4"}},
			{"phrase words apart", Query{ShopID: 1, Keyword: `"status refund"`}, nil},
			{"zh phrase", Query{ShopID: 1, Keyword: `"申请退款"`}, []string{"101/2"}},
			{"order number exact", Query{ShopID: 1, Keyword: "E20260310123456"}, []string{"101/1"}},
			{"order number part", Query{ShopID: 1, Keyword: "0310123"}, []string{"101/1"}},
			{"phone as typed", Query{ShopID: 1, Keyword: "138-1234-5678"}, []string{"101/3"}},
			{"phone without dashes", Query{ShopID: 1, Keyword: "13812345678"}, []string{"101/3"}},
			{"phone last digits", Query{ShopID: 1, Keyword: "5678"}, []string{"101/3"}},
			{"sku part", Query{ShopID: 1, Keyword: "a1234"}, []string{"102/1"}},
			{"no match", Query{ShopID: 1, Keyword: "发票"}, nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				if got := refs(search(t, idx, c.q)); !slices.Equal(got, c.want) {
					t.Errorf("got %v, want %v", got, c.want)
				}
			})
		}
	})

	t.Run("filters", func(t *testing.T) {
		idx := setup(t)
		for _, c := range []struct {
			name string
			q    Query
			want []string
		}{
			{"agent", Query{ShopID: 1, Keyword: "退款", AgentID: 8}, []string{"102/3"}},
			{"buyer", Query{ShopID: 1, BuyerID: 11}, []string{"101/1", "101/2", "101/3", "101/4"}},
			{"conversation", Query{ShopID: 1, ConversationID: 102, Keyword: "XL"}, []string{"102/1", "102/2"}},
			{"kind", Query{ShopID: 1, Kind: session.KindPreSale, Keyword: "退款"}, []string{"102/3"}},
			{"time range", Query{ShopID: 1, Since: base.Add(10102 * time.Minute), Until: base.Add(10104 * time.Minute)}, []string{"101/2", "101/3"}},
			{"since only", Query{ShopID: 1, Since: base.Add(10202 * time.Minute)}, []string{"102/2", "102/3"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				if got := refs(search(t, idx, c.q)); !slices.Equal(got, c.want) {
					t.Errorf("got %v, want %v", got, c.want)
				}
			})
		}
	})

	t.Run("tenant isolation", func(t *testing.T) {
		idx := setup(t)
		for _, kw := range []string{"退款", "refund status", "E20260310999999", "999999", "E20260310123456", "5678", ""} {
			for _, h := range search(t, idx, Query{ShopID: 1, Keyword: kw}).Hits {
				if h.ShopID != 1 {
					t.Errorf("%q in shop 1 returned %+v", kw, h.Document)
				}
			}
		}
		if r := search(t, idx, Query{ShopID: 2, Keyword: "E20260310123456"}); r.Total != 0 {
			t.Errorf("shop 2 sees shop 1's order: %+v", r)
		}
		if r := search(t, idx, Query{ShopID: 5, BuyerID: 11}); r.Total != 1 {
			t.Errorf("shop 5 has its one message of buyer 11, got %d", r.Total)
		}
		if r := search(t, idx, Query{ShopID: 3}); r.Total != 0 {
			t.Errorf("empty shop has %d", r.Total)
		}
		if _, err := idx.Search(ctx, Query{Keyword: "退款"}); session.ErrorCode(err) != session.EINVALID {
			t.Errorf("no shop: %v", err)
		}
	})

	t.Run("paging", func(t *testing.T) {
		idx := setup(t)
		all := search(t, idx, Query{ShopID: 1, Limit: 100})
		if all.Total != 7 || len(all.Hits) != 7 {
			t.Fatalf("total %d hits %d, want 7", all.Total, len(all.Hits))
		}
		for i := 1; i < len(all.Hits); i++ {
			if all.Hits[i].CreatedAt.After(all.Hits[i-1].CreatedAt) {
				t.Errorf("without keyword the newest come first: %v after %v", all.Hits[i].CreatedAt, all.Hits[i-1].CreatedAt)
			}
		}
		var paged []Hit
		for off := 0; off < 7; off += 3 {
			r := search(t, idx, Query{ShopID: 1, Offset: off, Limit: 3})
			if r.Total != 7 {
				t.Errorf("page %d total %d", off, r.Total)
			}
			paged = append(paged, r.Hits...)
		}
		if len(paged) != 7 {
			t.Fatalf("pages hold %d hits", len(paged))
		}
		for i := range paged {
			if paged[i].ID() != all.Hits[i].ID() {
				t.Errorf("hit %d: paged %s, whole %s", i, paged[i].ID(), all.Hits[i].ID())
			}
		}
		if r := search(t, idx, Query{ShopID: 1, Offset: 50}); len(r.Hits) != 0 || r.Total != 7 {
			t.Errorf("past the end: %+v", r)
		}
	})

	t.Run("hits carry the message", func(t *testing.T) {
		idx := setup(t)
		r := search(t, idx, Query{ShopID: 1, Keyword: "E20260310123456"})
		if len(r.Hits) != 1 {
			t.Fatalf("%+v", r)
		}
		want := fixture()[0]
		got := r.Hits[0].Document
		got.Codes = want.Codes // codes are indexed, not necessarily returned
		if !got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("created %v, want %v", got.CreatedAt, want.CreatedAt)
		}
		got.CreatedAt = want.CreatedAt
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("hit\n%+v\nwant\n%+v", got, want)
		}
		if r.Hits[0].Score <= 0 {
			t.Errorf("keyword hit has score %v", r.Hits[0].Score)
		}
	})

	t.Run("highlighting", func(t *testing.T) {
		idx := setup(t)
		r := search(t, idx, Query{ShopID: 1, Keyword: "refund", ConversationID: 101})
		if len(r.Hits) != 2 {
			t.Fatalf("%+v", r)
		}
		for _, h := range r.Hits {
			if len(h.Highlights) == 0 || !strings.Contains(strings.Join(h.Highlights, " "), "<mark>refund</mark>") {
				t.Errorf("%s highlights %q", h.ID(), h.Highlights)
			}
		}
		r = search(t, idx, Query{ShopID: 1, Keyword: "退款", ConversationID: 102})
		if len(r.Hits) != 1 || len(r.Hits[0].Highlights) == 0 {
			t.Fatalf("%+v", r)
		}
		hl := strings.Join(r.Hits[0].Highlights, " ")
		if !strings.Contains(hl, "<mark>退款</mark>") || strings.Contains(hl, "<b>") || !strings.Contains(hl, "&lt;b&gt;") {
			t.Errorf("highlight must mark the match and escape the rest: %q", hl)
		}
	})

	t.Run("re-index is idempotent and marks recalls", func(t *testing.T) {
		idx := setup(t)
		docs := fixture()
		docs[1].Recalled = true
		if err := idx.Index(ctx, docs); err != nil {
			t.Fatal(err)
		}
		if err := idx.Index(ctx, docs[:2]); err != nil {
			t.Fatal(err)
		}
		refresh(t, idx)
		if r := search(t, idx, Query{ShopID: 1, Limit: 100}); r.Total != 7 {
			t.Errorf("shop 1 has %d documents after re-indexing, want 7", r.Total)
		}
		r := search(t, idx, Query{ShopID: 1, Keyword: "耐心"})
		if len(r.Hits) != 1 || !r.Hits[0].Recalled {
			t.Errorf("recalled message: %+v", r)
		}
	})

	t.Run("delete by buyer", func(t *testing.T) {
		idx := setup(t)
		n, err := idx.DeleteBuyer(ctx, 1, 11)
		if err != nil || n != 4 {
			t.Fatalf("deleted %d, %v; want 4", n, err)
		}
		refresh(t, idx)
		if r := search(t, idx, Query{ShopID: 1, BuyerID: 11}); r.Total != 0 {
			t.Errorf("buyer still has %d", r.Total)
		}
		if r := search(t, idx, Query{ShopID: 1}); r.Total != 3 {
			t.Errorf("other buyer has %d, want 3", r.Total)
		}
		if r := search(t, idx, Query{ShopID: 2}); r.Total != 2 {
			t.Errorf("other shop has %d, want 2", r.Total)
		}
		for _, shop := range []int64{5, 17} {
			if r := search(t, idx, Query{ShopID: shop}); r.Total != 1 {
				t.Errorf("erasure in shop 1 touched shop %d: %d left", shop, r.Total)
			}
		}
		if n, err := idx.DeleteBuyer(ctx, 1, 11); err != nil || n != 0 {
			t.Errorf("second erasure deleted %d, %v", n, err)
		}
	})

	t.Run("delete before", func(t *testing.T) {
		idx := setup(t)
		n, err := idx.DeleteBefore(ctx, 1, base.Add(10200*time.Minute))
		if err != nil || n != 4 {
			t.Fatalf("deleted %d, %v; want 4", n, err)
		}
		refresh(t, idx)
		if r := search(t, idx, Query{ShopID: 1}); r.Total != 3 {
			t.Errorf("shop 1 keeps %d, want 3", r.Total)
		}
		if r := search(t, idx, Query{ShopID: 2}); r.Total != 2 {
			t.Errorf("other shop keeps %d, want 2", r.Total)
		}
		if r := search(t, idx, Query{ShopID: 5}); r.Total != 1 {
			t.Errorf("shop 5 keeps %d, want 1", r.Total)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		idx := open(t)
		for _, c := range []struct {
			q    Query
			code string
		}{
			{Query{}, session.EINVALID},
			{Query{ShopID: 1, Limit: -1}, session.EINVALID},
			{Query{ShopID: 1, Offset: -1}, session.EINVALID},
			{Query{ShopID: 1, Limit: MaxLimit + 1}, session.EINVALID},
			{Query{ShopID: 1, Offset: MaxWindow}, session.EINVALID},
			{Query{ShopID: 1, Kind: "vip"}, session.EINVALID},
			{Query{ShopID: 1, Since: base, Until: base}, session.EINVALID},
			{Query{ShopID: 1, Keyword: strings.Repeat("退", MaxKeywordRunes+1)}, session.ETOOLARGE},
			{Query{ShopID: 1, Keyword: strings.Repeat("a ", MaxKeywordTerms+1)}, session.ETOOLARGE},
		} {
			if _, err := idx.Search(ctx, c.q); session.ErrorCode(err) != c.code {
				t.Errorf("%+v: %v, want %s", c.q, err, c.code)
			}
		}
		for _, d := range []Document{{ConversationID: 1, Seq: 1, CreatedAt: base}, {ShopID: 1, Seq: 1, CreatedAt: base}, {ShopID: 1, ConversationID: 1, Seq: 1}} {
			if err := idx.Index(ctx, []Document{d}); session.ErrorCode(err) != session.EINVALID {
				t.Errorf("%+v: %v", d, err)
			}
		}
		if err := idx.Index(ctx, make([]Document, MaxBatch+1)); session.ErrorCode(err) != session.ETOOLARGE {
			t.Errorf("oversize batch: %v", err)
		}
		if _, err := idx.DeleteBuyer(ctx, 0, 11); session.ErrorCode(err) != session.EINVALID {
			t.Errorf("erasure without shop: %v", err)
		}
		if _, err := idx.DeleteBefore(ctx, 1, time.Time{}); session.ErrorCode(err) != session.EINVALID {
			t.Errorf("retention without time: %v", err)
		}
	})
}

func TestBleveConformance(t *testing.T) {
	runConformance(t, func(t *testing.T) Index {
		idx, err := NewMemBleve()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { idx.Close() })
		return idx
	}, func(*testing.T, Index) {})
}

func TestBleveDirectory(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir() + "/data/search"
	idx, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.Index(ctx, fixture()); err != nil {
		t.Fatal(err)
	}
	if err := idx.Close(); err != nil {
		t.Fatal(err)
	}
	idx, err = Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := idx.(*Bleve); !ok {
		t.Errorf("without Elasticsearch URLs Open gives %T", idx)
	}
	r, err := idx.Search(ctx, Query{ShopID: 1, Keyword: "退款"})
	if err != nil || r.Total != 2 {
		t.Errorf("after reopening: %+v, %v", r, err)
	}
	if r, err := idx.Search(ctx, Query{ShopID: 17, Keyword: "退款"}); err != nil || r.Total != 1 {
		t.Errorf("shop 17 shares shop 1's shard: %+v, %v", r, err)
	}
	idx.Close()
	if err := os.WriteFile(filepath.Join(dir, layoutFile), []byte(`{"version":"1","shards":16}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBleve(dir); err == nil || !strings.Contains(err.Error(), "rebuild") {
		t.Errorf("an index of another mapping version must be refused: %v", err)
	}
}
