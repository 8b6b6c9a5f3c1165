package loadtest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shopdesk/shopdesk/app"
	"github.com/shopdesk/shopdesk/archive/search"
)

// searchOptions are the flags of `shopdesk bench --scenario search`.
type searchOptions struct {
	messages   int
	queries    int
	shops      int
	seed       uint64
	dir        string
	esURL      string
	esAnalyzer string
}

func parseSearchOptions(args []string, stderr io.Writer) (searchOptions, error) {
	var o searchOptions
	var scenario string
	fs := flag.NewFlagSet("bench --scenario search", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&scenario, "scenario", "search", "search: index a generated zh/en corpus and time a stated query mix (SEARCH line)")
	fs.IntVar(&o.messages, "messages", 1_000_000, "messages (documents) of the generated corpus to index")
	fs.IntVar(&o.queries, "queries", 1000, "queries to run from the stated mix, one after another")
	fs.IntVar(&o.shops, "shops", 20, "shops the corpus is spread over; every query is scoped to one")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the corpus and of the queries")
	fs.StringVar(&o.dir, "dir", "", "directory of the embedded index; must not exist yet (default: a temporary directory, removed afterwards)")
	fs.StringVar(&o.esURL, "es-url", app.Getenv(app.EnvName("es-url")), "Elasticsearch 7 URLs, comma-separated, instead of the embedded index; the bench writes under an index prefix of its own and deletes it afterwards")
	fs.StringVar(&o.esAnalyzer, "es-analyzer", app.Getenv(app.EnvName("es-analyzer")), "Elasticsearch analyzer: ik, cjk or empty for auto")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.messages < 1 || o.queries < 1 || o.shops < 1:
		return o, errors.New("--messages, --queries and --shops must be at least 1")
	case o.esURL != "" && o.dir != "":
		return o, errors.New("--dir is for the embedded index; with --es-url leave it out")
	}
	for _, raw := range strings.Split(o.esURL, ",") {
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil {
			return o, fmt.Errorf("--es-url %q: %w", raw, err)
		}
		if err := checkLoopback("--es-url", u.Host); err != nil {
			return o, err
		}
	}
	if o.dir != "" {
		if _, err := os.Stat(o.dir); err == nil {
			return o, fmt.Errorf("--dir %s exists: the bench indexes into an empty index of its own", o.dir)
		}
	}
	return o, nil
}

// benchSearch runs the search scenario: the corpus and the query mix are search.NewCorpus's and
// Corpus.Queries's, the measurement search.Bench's, so `go test -bench Search ./archive/search` and
// this command measure the same thing.
func benchSearch(ctx context.Context, o searchOptions, log *logger) (search.BenchResult, error) {
	var idx search.Index
	var err error
	var cleanup func()
	if o.esURL != "" {
		idx, cleanup, err = openBenchElastic(ctx, o)
	} else {
		idx, cleanup, err = openBenchBleve(o)
	}
	if err != nil {
		return search.BenchResult{}, err
	}
	defer cleanup()
	c := search.NewCorpus(search.CorpusConfig{Docs: o.messages, Shops: o.shops, Seed: o.seed})
	log.printf("indexing %d messages of %d shops in batches of %d", c.Len(), o.shops, search.BenchBatch)
	began, last := time.Now(), time.Now()
	res, err := search.Bench(ctx, idx, c, o.queries, func(done int) {
		if time.Since(last) >= progressEvery {
			last = time.Now()
			log.printf("indexed %d/%d (%.0f/s)", done, c.Len(), float64(done)/time.Since(began).Seconds())
		}
	})
	if err != nil {
		return res, err
	}
	log.printf("indexed %d at %.0f/s; %d queries: p50 %.2f ms, p99 %.2f ms, %d found nothing",
		res.Docs, res.IndexPerSec, res.Queries, ms(res.QueryP50), ms(res.QueryP99), res.Empty)
	if res.Empty > res.Queries/5 {
		return res, fmt.Errorf("%d of %d queries found nothing: the index does not hold the corpus", res.Empty, res.Queries)
	}
	return res, nil
}

// openBenchBleve opens the embedded index in --dir, or in a temporary directory removed afterwards.
func openBenchBleve(o searchOptions) (search.Index, func(), error) {
	dir, remove := o.dir, func() {}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "shopdesk-bench-search-")
		if err != nil {
			return nil, nil, err
		}
		dir, remove = filepath.Join(tmp, "search"), func() { _ = os.RemoveAll(tmp) }
	}
	idx, err := search.Open(context.Background(), search.Config{Dir: dir})
	if err != nil {
		remove()
		return nil, nil, err
	}
	return idx, func() { _ = idx.Close(); remove() }, nil
}

// openBenchElastic opens Elasticsearch under an index prefix of the bench's own, so that it never
// touches a node's indices, and deletes that prefix's indices and template afterwards.
func openBenchElastic(ctx context.Context, o searchOptions) (search.Index, func(), error) {
	urls := strings.Split(o.esURL, ",")
	prefix := "shopdesk-bench-" + randomHex(6)
	hc := newHTTPClient()
	hc.Timeout = 5 * time.Minute // a bulk request of BenchBatch documents on a busy cluster
	idx, err := search.Open(ctx, search.Config{Elastic: search.ElasticConfig{URLs: urls, Prefix: prefix, Analyzer: o.esAnalyzer, HTTPClient: hc}})
	if err != nil {
		return nil, nil, err
	}
	return idx, func() {
		_ = idx.Close()
		base := strings.TrimRight(urls[0], "/")
		for _, path := range []string{"/" + prefix + "-*", "/_template/" + prefix} {
			req, err := http.NewRequest(http.MethodDelete, base+path, bytes.NewReader(nil))
			if err != nil {
				continue
			}
			if resp, err := hc.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// scenarioOf returns the value of --scenario in args ("" when absent), so that Main can hand the
// in-process scenarios, whose flags differ from the load scenarios', to their own parsers.
func scenarioOf(args []string) string {
	for i, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "scenario" {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// searchMain runs `shopdesk bench --scenario search`: 0 when every query ran and no more than a fifth
// of them found nothing, 1 otherwise, 2 for bad flags. The last line of stdout is the SEARCH line.
func searchMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseSearchOptions(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "shopdesk bench:", err)
		}
		return 2
	}
	res, err := benchSearch(ctx, o, &logger{w: stderr})
	if err != nil {
		fmt.Fprintln(stderr, "shopdesk bench:", err)
		return 1
	}
	fmt.Fprintln(stdout, res)
	return 0
}
