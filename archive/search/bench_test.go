package search

import (
	"context"
	"flag"
	"fmt"
	"reflect"
	"testing"
	"time"
)

var (
	benchDocs  = flag.Int("search.docs", 1_000_000, "documents BenchmarkSearch indexes before it queries")
	benchBatch = flag.Int("search.batch", BenchBatch, "documents per Index call in BenchmarkSearch")
)

func TestCorpus(t *testing.T) {
	c := NewCorpus(CorpusConfig{Docs: 2000, Seed: 7})
	if !reflect.DeepEqual(c.Doc(123), c.Doc(123)) {
		t.Fatal("a document must not depend on when it is generated")
	}
	codes, shops := 0, map[int64]bool{}
	for i := range c.Len() {
		d := c.Doc(i)
		if err := d.validate(); err != nil {
			t.Fatal(err)
		}
		if d.ID() == c.Doc((i+1)%c.Len()).ID() {
			t.Fatalf("documents %d and %d share id %s", i, i+1, d.ID())
		}
		codes += min(len(d.Codes), 1)
		shops[d.ShopID] = true
	}
	if codes < c.Len()/10 || len(shops) != 20 {
		t.Errorf("%d of %d documents carry a code, %d shops", codes, c.Len(), len(shops))
	}
	if qs := c.Queries(100, 1); len(qs) != 100 || !reflect.DeepEqual(qs, c.Queries(100, 1)) {
		t.Errorf("queries must be as many as asked and repeatable")
	}
}

// TestBenchSmall runs the scenario end to end on a small corpus; it checks that the mix finds
// what it looks for, not how fast.
func TestBenchSmall(t *testing.T) {
	idx, err := NewMemBleve()
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	c := NewCorpus(CorpusConfig{Docs: 3000, Seed: 1})
	r, err := Bench(context.Background(), idx, c, 300, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Docs != 3000 || r.Queries != 300 || r.Empty > r.Queries/5 {
		t.Errorf("%+v: too many queries found nothing", r)
	}
	if s := r.String(); len(s) < len("SEARCH docs=3000") || s[:17] != "SEARCH docs=3000 " {
		t.Errorf("line %q", s)
	}
	if got := Percentile([]time.Duration{5, 1, 3, 2, 4}, 50); got != 3 {
		t.Errorf("p50 %v", got)
	}
	if got := Percentile([]time.Duration{5, 1, 3, 2, 4}, 99); got != 5 {
		t.Errorf("p99 %v", got)
	}
}

// BenchmarkSearch is the search scenario on the embedded index in a directory: it indexes
// -search.docs generated documents (a million by default) once, then times queries from the stated
// mix. Run: go test -run '^$' -bench Search -benchtime 2000x ./archive/search
func BenchmarkSearch(b *testing.B) {
	ctx := context.Background()
	idx, err := OpenBleve(b.TempDir() + "/search")
	if err != nil {
		b.Fatal(err)
	}
	defer idx.Close()
	c := NewCorpus(CorpusConfig{Docs: *benchDocs, Seed: 1})
	took, err := IndexCorpus(ctx, idx, c, *benchBatch, nil)
	if err != nil {
		b.Fatal(err)
	}
	qs := c.Queries(10000, 2)
	lat := make([]time.Duration, 0, 10000)
	empty := 0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		r, err := idx.Search(ctx, qs[i%len(qs)])
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		if r.Total == 0 {
			empty++
		}
	}
	res := BenchResult{Docs: c.Len(), IndexPerSec: float64(c.Len()) / took.Seconds(), Queries: len(lat), Empty: empty,
		QueryP50: Percentile(lat, 50), QueryP99: Percentile(lat, 99)}
	b.ReportMetric(res.IndexPerSec, "index_docs/s")
	b.ReportMetric(ms(res.QueryP50), "query_p50_ms")
	b.ReportMetric(ms(res.QueryP99), "query_p99_ms")
	b.Log(fmt.Sprintf("%s queries=%d empty=%d", res, res.Queries, res.Empty))
}
