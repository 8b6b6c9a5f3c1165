package search

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/session"
)

// exchange is one request the Elastic index must send and the answer Elasticsearch 7 gives, in the
// shapes its reference documents.
type exchange struct {
	method string
	path   string // with the query string; parameters compare in any order
	body   string // JSON, or NDJSON for _bulk; compared by value, so key order and spacing do not matter
	status int
	reply  string
}

// fakeES answers a fixed script of exchanges and fails the test on any request out of script.
type fakeES struct {
	t      *testing.T
	mu     sync.Mutex
	script []exchange
	next   int
}

func (f *fakeES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	if f.next >= len(f.script) {
		f.t.Errorf("unexpected request %s %s %s", r.Method, r.URL, body)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	x := f.script[f.next]
	f.next++
	wantPath, wantQuery, _ := strings.Cut(x.path, "?")
	wantParams, _ := url.ParseQuery(wantQuery)
	if r.Method != x.method || r.URL.Path != wantPath || !reflect.DeepEqual(map[string][]string(r.URL.Query()), map[string][]string(wantParams)) {
		f.t.Errorf("request %d: got %s %s, want %s %s", f.next, r.Method, r.URL, x.method, x.path)
	}
	if err := sameJSON(string(body), x.body, strings.HasSuffix(wantPath, "/_bulk")); err != nil {
		f.t.Errorf("request %d %s %s: %v", f.next, x.method, x.path, err)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(x.status)
	io.WriteString(w, x.reply)
}

func (f *fakeES) done() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next != len(f.script) {
		f.t.Errorf("%d of %d scripted requests were sent", f.next, len(f.script))
	}
}

// sameJSON compares two JSON documents (or two NDJSON streams, line by line) by value.
func sameJSON(got, want string, ndjson bool) error {
	if strings.TrimSpace(want) == "" {
		if strings.TrimSpace(got) != "" {
			return fmt.Errorf("want no body, got %s", got)
		}
		return nil
	}
	gotLines, wantLines := []string{got}, []string{want}
	if ndjson {
		if !strings.HasSuffix(got, "\n") {
			return fmt.Errorf("bulk body does not end with a newline")
		}
		gotLines, wantLines = strings.Split(strings.TrimSpace(got), "\n"), strings.Split(strings.TrimSpace(want), "\n")
		if len(gotLines) != len(wantLines) {
			return fmt.Errorf("%d lines, want %d:\n%s", len(gotLines), len(wantLines), got)
		}
	}
	for i := range gotLines {
		var g, w any
		if err := json.Unmarshal([]byte(gotLines[i]), &g); err != nil {
			return fmt.Errorf("line %d is not JSON: %v: %s", i+1, err, gotLines[i])
		}
		if err := json.Unmarshal([]byte(wantLines[i]), &w); err != nil {
			return fmt.Errorf("the test's line %d is not JSON: %v", i+1, err)
		}
		if !reflect.DeepEqual(g, w) {
			return fmt.Errorf("line %d:\n got %s\nwant %s", i+1, canonical(g), canonical(w))
		}
	}
	return nil
}

func canonical(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func fakeElastic(t *testing.T, script ...exchange) *fakeES {
	f := &fakeES{t: t, script: script}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Cleanup(f.done)
	urls = append(urls[:0], srv.URL)
	return f
}

// urls is where the last fakeElastic listens; tests run one fake at a time.
var urls []string

var march = func() time.Time { return time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC) }

// Documented response shapes of Elasticsearch 7.
const (
	nodesWithIK = `{"_nodes":{"total":1,"successful":1,"failed":0},"cluster_name":"es","nodes":{"n1":{"name":"es1","version":"7.17.18","plugins":[{"name":"analysis-ik","version":"7.17.18","elasticsearch_version":"7.17.18","java_version":"1.8","description":"IK Analyzer for Elasticsearch","classname":"com.infinilabs.ik.elasticsearch.AnalysisIkPlugin","extended_plugins":[],"has_native_controller":false}]}}}`
	nodesNoIK   = `{"_nodes":{"total":2,"successful":2,"failed":0},"cluster_name":"es","nodes":{"n1":{"name":"es1","version":"7.17.18","plugins":[{"name":"analysis-ik","version":"7.17.18"}]},"n2":{"name":"es2","version":"7.17.18","plugins":[]}}}`
	acked       = `{"acknowledged":true}`
	created     = `{"acknowledged":true,"shards_acknowledged":true,"index":"t-2026.03"}`
	exists      = `{"error":{"root_cause":[{"type":"resource_already_exists_exception","reason":"index [t-2026.03/x] already exists","index_uuid":"x","index":"t-2026.03"}],"type":"resource_already_exists_exception","reason":"index [t-2026.03/x] already exists","index_uuid":"x","index":"t-2026.03"},"status":400}`
)

func templateBody(text string) string {
	return `{
  "index_patterns": ["t-*"], "version": 1, "aliases": {"t": {}},
  "settings": {
    "number_of_shards": 1, "number_of_replicas": 0, "max_ngram_diff": 17,
    "analysis": {
      "normalizer": {"code_lower": {"type": "custom", "filter": ["lowercase"]}},
      "tokenizer": {"code_ngram": {"type": "ngram", "min_gram": 3, "max_gram": 20}},
      "analyzer": {
        "code_ngram": {"type": "custom", "tokenizer": "code_ngram", "filter": ["lowercase"]},
        "code_search": {"type": "custom", "tokenizer": "keyword", "filter": ["lowercase"]}
      }
    }
  },
  "mappings": {
    "dynamic": "strict",
    "properties": {
      "shop_id": {"type": "long"}, "conversation_id": {"type": "long"}, "seq": {"type": "long"},
      "session_id": {"type": "long"}, "buyer_id": {"type": "long"}, "agent_id": {"type": "long"},
      "sender_id": {"type": "long"},
      "kind": {"type": "keyword"}, "sender_kind": {"type": "keyword"}, "type": {"type": "keyword"},
      "text": ` + text + `,
      "codes": {"type": "keyword", "normalizer": "code_lower",
        "fields": {"ngram": {"type": "text", "analyzer": "code_ngram", "search_analyzer": "code_search"}}},
      "recalled": {"type": "boolean"},
      "created_at": {"type": "date"}
    }
  }
}`
}

const (
	ikText  = `{"type": "text", "analyzer": "ik_max_word", "search_analyzer": "ik_smart"}`
	cjkText = `{"type": "text", "analyzer": "cjk"}`
)

// startScript is what NewElastic sends on a cluster with IK everywhere and no index yet.
func startScript() []exchange {
	return []exchange{
		{"GET", "/_nodes/_all/plugins", "", 200, nodesWithIK},
		{"PUT", "/_template/t", templateBody(ikText), 200, acked},
		{"PUT", "/t-2026.03", "", 200, created},
	}
}

func openFake(t *testing.T, cfg ElasticConfig) (*Elastic, error) {
	cfg.URLs, cfg.Prefix = urls, "t"
	return newElastic(context.Background(), cfg, march)
}

func TestElasticStart(t *testing.T) {
	t.Run("ik when every node has it", func(t *testing.T) {
		fakeElastic(t, startScript()...)
		e, err := openFake(t, ElasticConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if e.Analyzer() != AnalyzerIK {
			t.Errorf("analyzer %s", e.Analyzer())
		}
	})
	t.Run("cjk when a node lacks ik; an existing index is fine", func(t *testing.T) {
		fakeElastic(t,
			exchange{"GET", "/_nodes/_all/plugins", "", 200, nodesNoIK},
			exchange{"PUT", "/_template/t", templateBody(cjkText), 200, acked},
			exchange{"PUT", "/t-2026.03", "", 400, exists},
		)
		e, err := openFake(t, ElasticConfig{Analyzer: AnalyzerAuto})
		if err != nil {
			t.Fatal(err)
		}
		if e.Analyzer() != AnalyzerCJK {
			t.Errorf("analyzer %s", e.Analyzer())
		}
	})
	t.Run("cjk asked for: no plugin check", func(t *testing.T) {
		fakeElastic(t,
			exchange{"PUT", "/_template/t", templateBody(cjkText), 200, acked},
			exchange{"PUT", "/t-2026.03", "", 200, created},
		)
		if _, err := openFake(t, ElasticConfig{Analyzer: AnalyzerCJK}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Open with URLs gives Elasticsearch", func(t *testing.T) {
		month := "/t-" + time.Now().UTC().Format("2006.01")
		fakeElastic(t, startScript()[0], startScript()[1], exchange{"PUT", month, "", 200, created})
		idx, err := Open(context.Background(), Config{Dir: t.TempDir(), Elastic: ElasticConfig{URLs: urls, Prefix: "t"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := idx.(*Elastic); !ok {
			t.Errorf("Open gave %T", idx)
		}
	})
	t.Run("ik asked for but missing", func(t *testing.T) {
		fakeElastic(t, exchange{"GET", "/_nodes/_all/plugins", "", 200, nodesNoIK})
		if _, err := openFake(t, ElasticConfig{Analyzer: AnalyzerIK}); session.ErrorCode(err) != session.EINVALID {
			t.Errorf("%v", err)
		}
	})
	t.Run("bad config", func(t *testing.T) {
		for _, cfg := range []ElasticConfig{
			{Analyzer: "smart"},
			{Prefix: "Shop"},
			{Prefix: "a*b"},
			{Replicas: -1},
		} {
			fakeElastic(t)
			if cfg.Prefix == "" {
				cfg.Prefix = "t"
			}
			cfg.URLs = urls
			if _, err := newElastic(context.Background(), cfg, march); session.ErrorCode(err) != session.EINVALID {
				t.Errorf("%+v: %v", cfg, err)
			}
		}
		if _, err := NewElastic(context.Background(), ElasticConfig{}); session.ErrorCode(err) != session.EINVALID {
			t.Errorf("no URL: %v", err)
		}
	})
	t.Run("cluster down", func(t *testing.T) {
		fakeElastic(t, exchange{"GET", "/_nodes/_all/plugins", "", 503,
			`{"error":{"root_cause":[{"type":"master_not_discovered_exception","reason":null}],"type":"master_not_discovered_exception","reason":null},"status":503}`})
		if _, err := openFake(t, ElasticConfig{}); session.ErrorCode(err) != session.EUNAVAILABLE {
			t.Errorf("%v", err)
		}
	})
}

func withScript(t *testing.T, more ...exchange) *Elastic {
	fakeElastic(t, append(startScript(), more...)...)
	e, err := openFake(t, ElasticConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestElasticIndex(t *testing.T) {
	docs := fixture()[:2]
	docs[1].CreatedAt = time.Date(2026, 4, 1, 0, 0, 0, 123456789, time.FixedZone("CST", 8*3600))
	docs[1].Recalled = true
	const bulk = `{"index":{"_index":"t-2026.03","_id":"1-101-1"}}
{"shop_id":1,"conversation_id":101,"seq":1,"session_id":1011,"kind":"aftersale","buyer_id":11,"agent_id":7,"sender_kind":"buyer","sender_id":11,"type":"text","text":"你好，我的订单E20260310123456还没有发货","codes":["e20260310123456"],"recalled":false,"created_at":"2026-03-17T08:21:00.000Z"}
{"index":{"_index":"t-2026.03","_id":"1-101-2"}}
{"shop_id":1,"conversation_id":101,"seq":2,"session_id":1011,"kind":"aftersale","buyer_id":11,"agent_id":7,"sender_kind":"staff","sender_id":7,"type":"text","text":"您好，订单已经申请退款，请耐心等待","codes":[],"recalled":true,"created_at":"2026-03-31T16:00:00.123Z"}
`
	ok := `{"took":30,"errors":false,"items":[
{"index":{"_index":"t-2026.03","_type":"_doc","_id":"1-101-1","_version":1,"result":"created","_shards":{"total":1,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},
{"index":{"_index":"t-2026.03","_type":"_doc","_id":"1-101-2","_version":2,"result":"updated","_shards":{"total":1,"successful":1,"failed":0},"_seq_no":1,"_primary_term":1,"status":200}}]}`
	item := func(status int, typ, reason string) string {
		return fmt.Sprintf(`{"index":{"_index":"t-2026.03","_type":"_doc","_id":"1-101-2","status":%d,"error":{"type":%q,"reason":%q}}}`, status, typ, reason)
	}
	first := `{"index":{"_index":"t-2026.03","_type":"_doc","_id":"1-101-1","_version":1,"result":"created","_shards":{"total":1,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}}`
	rejected := `{"took":3,"errors":true,"items":[` + first + `,` + item(429, "es_rejected_execution_exception", "rejected execution of coordinating operation") + `]}`
	unmappable := `{"took":3,"errors":true,"items":[` + first + `,` + item(400, "mapper_parsing_exception", "failed to parse field [seq] of type [long]") + `]}`

	inMay := fixture()[8]
	inMay.CreatedAt = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	const may = `{"index":{"_index":"t-2026.05","_id":"2-201-2"}}
{"shop_id":2,"conversation_id":201,"seq":2,"session_id":2011,"kind":"aftersale","buyer_id":21,"agent_id":9,"sender_kind":"staff","sender_id":9,"type":"text","text":"refund status is processing","codes":[],"recalled":false,"created_at":"2026-05-01T00:00:00.000Z"}
`
	const mayOK = `{"took":2,"errors":false,"items":[{"index":{"_index":"t-2026.05","_type":"_doc","_id":"2-201-2","_version":1,"result":"created","_shards":{"total":1,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}}]}`
	e := withScript(t,
		exchange{"POST", "/_bulk", bulk, 200, ok},
		exchange{"POST", "/_bulk", bulk, 200, rejected},
		exchange{"POST", "/_bulk", bulk, 200, unmappable},
		exchange{"POST", "/_bulk", bulk, 503, `{"error":{"type":"cluster_block_exception","reason":"blocked"},"status":503}`},
		exchange{"PUT", "/t-2026.05", "", 200, created},
		exchange{"POST", "/_bulk", may, 200, mayOK},
		exchange{"POST", "/_bulk", may, 200, mayOK},
	)
	ctx := context.Background()
	if err := e.Index(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if err := e.Index(ctx, docs); session.ErrorCode(err) != session.EUNAVAILABLE || !strings.Contains(err.Error(), "1 of 2") {
		t.Errorf("overloaded: %v", err)
	}
	if err := e.Index(ctx, docs); session.ErrorCode(err) != session.EINTERNAL || !strings.Contains(err.Error(), "mapper_parsing_exception") {
		t.Errorf("bad document: %v", err)
	}
	if err := e.Index(ctx, docs); session.ErrorCode(err) != session.EUNAVAILABLE {
		t.Errorf("blocked: %v", err)
	}
	// A new month's index is created before its first bulk request, once.
	for range 2 {
		if err := e.Index(ctx, []Document{inMay}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Index(ctx, nil); err != nil {
		t.Errorf("empty batch: %v", err)
	}
	if err := e.Index(ctx, []Document{{ShopID: 1}}); session.ErrorCode(err) != session.EINVALID {
		t.Errorf("invalid document: %v", err)
	}
}

func TestElasticSearch(t *testing.T) {
	const query = `{
  "from": 20, "size": 10, "track_total_hits": true,
  "query": {"bool": {
    "filter": [
      {"term": {"shop_id": 1}}, {"term": {"agent_id": 7}}, {"term": {"buyer_id": 11}},
      {"term": {"conversation_id": 101}}, {"term": {"kind": "aftersale"}},
      {"range": {"created_at": {"from": "2026-03-01T00:00:00.000Z", "include_lower": true, "include_upper": false, "to": "2026-03-31T16:00:00.000Z"}}}
    ],
    "must": [
      {"match": {"text": {"query": "退款", "operator": "and"}}},
      {"bool": {"minimum_should_match": "1", "should": [
        {"match": {"text": {"query": "138-1234", "operator": "and"}}},
        {"term": {"codes": {"value": "138-1234", "boost": 2}}},
        {"term": {"codes.ngram": "138-1234"}},
        {"term": {"codes": {"value": "1381234", "boost": 2}}},
        {"term": {"codes.ngram": "1381234"}}
      ]}},
      {"match_phrase": {"text": {"query": "refund status"}}}
    ]
  }},
  "sort": [{"_score": {"order": "desc"}}, {"created_at": {"order": "desc"}}, {"conversation_id": {"order": "desc"}}, {"seq": {"order": "desc"}}],
  "highlight": {"encoder": "html", "fields": {"text": {}}, "pre_tags": ["<mark>"], "post_tags": ["</mark>"]}
}`
	const reply = `{"took":5,"timed_out":false,"_shards":{"total":2,"successful":2,"skipped":0,"failed":0},
"hits":{"total":{"value":21,"relation":"eq"},"max_score":3.2,"hits":[
{"_index":"t-2026.03","_type":"_doc","_id":"1-101-3","_score":3.2,
 "_source":{"shop_id":1,"conversation_id":101,"seq":3,"session_id":1011,"kind":"aftersale","buyer_id":11,"agent_id":7,"sender_kind":"buyer","sender_id":11,"type":"text","text":"Please refund to my card, phone 138-1234-5678 &","codes":["138-1234-5678","13812345678"],"recalled":true,"created_at":"2026-03-17T08:23:00.000Z"},
 "highlight":{"text":["Please <mark>refund</mark> to my card, phone 138-1234-5678 &amp;"]},
 "sort":[3.2,1773735780000,101,3]}]}}`
	const browse = `{
  "from": 0, "size": 20, "track_total_hits": true,
  "query": {"bool": {"filter": [{"term": {"shop_id": 2}}, {"range": {"created_at": {"from": null, "include_lower": true, "include_upper": false, "to": "2026-03-31T16:00:00.000Z"}}}]}},
  "sort": [{"created_at": {"order": "desc"}}, {"conversation_id": {"order": "desc"}}, {"seq": {"order": "desc"}}]
}`
	const none = `{"took":1,"timed_out":false,"_shards":{"total":2,"successful":2,"skipped":0,"failed":0},"hits":{"total":{"value":0,"relation":"eq"},"max_score":null,"hits":[]}}`
	e := withScript(t,
		exchange{"POST", "/t/_search", query, 200, reply},
		exchange{"POST", "/t/_search", browse, 200, none},
	)
	ctx := context.Background()
	april := time.Date(2026, 4, 1, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))
	r, err := e.Search(ctx, Query{ShopID: 1, Keyword: `退款 138-1234 "refund status"`, AgentID: 7, BuyerID: 11, ConversationID: 101,
		Kind: session.KindAfterSale, Since: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Until: april, Offset: 20, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	want := fixture()[2]
	want.Recalled = true
	want.Text += " &"
	if r.Total != 21 || len(r.Hits) != 1 || r.Hits[0].Score != 3.2 || !reflect.DeepEqual(r.Hits[0].Highlights, []string{"Please <mark>refund</mark> to my card, phone 138-1234-5678 &amp;"}) {
		t.Fatalf("%+v", r)
	}
	if got := r.Hits[0].Document; !reflect.DeepEqual(got, want) {
		t.Errorf("hit\n%+v\nwant\n%+v", got, want)
	}
	r, err = e.Search(ctx, Query{ShopID: 2, Until: april})
	if err != nil || r.Total != 0 || len(r.Hits) != 0 {
		t.Errorf("%+v %v", r, err)
	}
	if _, err := e.Search(ctx, Query{Keyword: "退款"}); session.ErrorCode(err) != session.EINVALID {
		t.Errorf("no shop: %v", err)
	}
}

func TestElasticDelete(t *testing.T) {
	const dbqReply = `{"took":147,"timed_out":false,"total":4,"deleted":4,"batches":1,"version_conflicts":0,"noops":0,"retries":{"bulk":0,"search":0},"throttled_millis":0,"requests_per_second":-1.0,"throttled_until_millis":0,"failures":[]}`
	const conflicts = `{"took":147,"timed_out":false,"total":4,"deleted":3,"batches":1,"version_conflicts":1,"noops":0,"retries":{"bulk":0,"search":0},"throttled_millis":0,"requests_per_second":-1.0,"throttled_until_millis":0,"failures":[]}`
	e := withScript(t,
		exchange{"POST", "/t/_delete_by_query?conflicts=proceed&refresh=true",
			`{"query":{"bool":{"filter":[{"term":{"shop_id":1}},{"term":{"buyer_id":11}}]}}}`, 200, dbqReply},
		exchange{"POST", "/t/_delete_by_query?conflicts=proceed&refresh=true",
			`{"query":{"bool":{"filter":[{"term":{"shop_id":1}},{"range":{"created_at":{"from":null,"include_lower":true,"include_upper":false,"to":"2023-03-10T00:00:00.000Z"}}}]}}}`, 200, conflicts},
		exchange{"POST", "/t/_refresh", "", 200, `{"_shards":{"total":2,"successful":1,"failed":0}}`},
	)
	ctx := context.Background()
	if n, err := e.DeleteBuyer(ctx, 1, 11); n != 4 || err != nil {
		t.Errorf("erasure: %d %v", n, err)
	}
	if n, err := e.DeleteBefore(ctx, 1, time.Date(2023, 3, 10, 0, 0, 0, 0, time.UTC)); n != 3 || session.ErrorCode(err) != session.EUNAVAILABLE {
		t.Errorf("retention with a conflict must ask for a rerun: %d %v", n, err)
	}
	if _, err := e.DeleteBuyer(ctx, 1, 0); session.ErrorCode(err) != session.EINVALID {
		t.Errorf("erasure without buyer: %v", err)
	}
	if err := e.Refresh(ctx); err != nil {
		t.Error(err)
	}
}

// TestElasticConformance runs the suite against a real cluster at SHOPDESK_TEST_ES_URL, each test
// in its own prefix, removed afterwards.
func TestElasticConformance(t *testing.T) {
	u := os.Getenv("SHOPDESK_TEST_ES_URL")
	if u == "" {
		// No Elasticsearch runs on the machines of make test and CI: this suite is optional, like the
		// real-MinIO one; the request fixtures above are what always runs.
		t.Skip("SHOPDESK_TEST_ES_URL is not set: the Elasticsearch suite runs against request fixtures only")
	}
	ctx := context.Background()
	runConformance(t, func(t *testing.T) Index {
		prefix := fmt.Sprintf("shopdesk-t-%08x", rand.Uint32())
		e, err := NewElastic(ctx, ElasticConfig{URLs: strings.Split(u, ","), Prefix: prefix, Analyzer: os.Getenv("SHOPDESK_TEST_ES_ANALYZER")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if _, err := e.client.DeleteIndex(prefix + "-*").Do(ctx); err != nil {
				t.Errorf("drop %s: %v", prefix, err)
			}
			if _, err := e.client.IndexDeleteTemplate(prefix).Do(ctx); err != nil {
				t.Errorf("drop template %s: %v", prefix, err)
			}
			e.Close()
		})
		return e
	}, func(t *testing.T, idx Index) {
		if err := idx.(*Elastic).Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
