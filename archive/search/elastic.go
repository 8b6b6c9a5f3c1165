package search

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/shopdesk/shopdesk/session"
)

// Analyzer choices for the message text in Elasticsearch.
const (
	AnalyzerAuto = "auto" // IK when every node has the analysis-ik plugin, else cjk
	AnalyzerIK   = "ik"   // ik_max_word to index, ik_smart to search; needs the plugin
	AnalyzerCJK  = "cjk"  // Elasticsearch's built-in bigram analyzer
)

// DefaultPrefix names the alias, the template and (with "-YYYY.MM") the monthly indices.
const DefaultPrefix = "shopdesk-messages"

// ElasticConfig is how to reach Elasticsearch 7 and how to lay out the index there.
type ElasticConfig struct {
	URLs     []string // SHOPDESK_ES_URL, split on commas
	Username string   // basic auth, optional
	Password string
	Prefix   string // DefaultPrefix when empty; tests use their own
	Analyzer string // AnalyzerAuto when empty
	Shards   int    // primary shards per monthly index; 1 when 0
	Replicas int    // replicas per monthly index; 0 is valid (a one-node cluster)
	// HTTPClient carries timeouts and TLS; http.DefaultClient when nil.
	HTTPClient *http.Client
}

// Elastic is the Index on Elasticsearch 7. Documents go to a monthly index named by the month (UTC)
// the message was created in, "<prefix>-2026.03"; every monthly index joins the alias "<prefix>" by
// the index template, and searches and deletes go through the alias. Monthly indices rather than a
// rollover alias because the index a message lands in must follow from the message alone: a retry
// after a rollover would otherwise write a second copy into the new index.
type Elastic struct {
	client   *elastic.Client
	prefix   string
	analyzer string // the one in use: AnalyzerIK or AnalyzerCJK
	now      func() time.Time
	months   sync.Map // names of the monthly indices known to exist
}

var _ Index = (*Elastic)(nil)

// NewElastic connects to Elasticsearch (without sniffing or health checks, which break behind
// proxies and in containers), chooses the analyzer, puts the index template and creates the current
// month's index, so the alias exists before the first search.
func NewElastic(ctx context.Context, cfg ElasticConfig) (*Elastic, error) {
	return newElastic(ctx, cfg, time.Now)
}

func newElastic(ctx context.Context, cfg ElasticConfig, now func() time.Time) (*Elastic, error) {
	if len(cfg.URLs) == 0 {
		return nil, session.Errorf(session.EINVALID, "search: no Elasticsearch URL")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Prefix != strings.ToLower(cfg.Prefix) || strings.ContainsAny(cfg.Prefix, `*,"\/?<>| #`) {
		return nil, session.Errorf(session.EINVALID, "search: %q is not a valid index prefix", cfg.Prefix)
	}
	if cfg.Shards == 0 {
		cfg.Shards = 1
	}
	if cfg.Shards < 0 || cfg.Replicas < 0 {
		return nil, session.Errorf(session.EINVALID, "search: shards and replicas may not be negative")
	}
	opts := []elastic.ClientOptionFunc{
		elastic.SetURL(cfg.URLs...),
		elastic.SetSniff(false),
		elastic.SetHealthcheck(false),
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, elastic.SetHttpClient(cfg.HTTPClient))
	}
	if cfg.Username != "" {
		opts = append(opts, elastic.SetBasicAuth(cfg.Username, cfg.Password))
	}
	client, err := elastic.NewClient(opts...)
	if err != nil {
		return nil, esError(err, "connect to Elasticsearch")
	}
	e := &Elastic{client: client, prefix: cfg.Prefix, now: now}
	if e.analyzer, err = e.chooseAnalyzer(ctx, cfg.Analyzer); err != nil {
		return nil, err
	}
	if _, err := client.IndexPutTemplate(e.prefix).BodyJson(e.template(cfg.Shards, cfg.Replicas)).Do(ctx); err != nil {
		return nil, esError(err, "put index template")
	}
	if err := e.ensureIndex(ctx, e.indexName(now())); err != nil {
		return nil, err
	}
	return e, nil
}

// Analyzer returns the analyzer in use, AnalyzerIK or AnalyzerCJK, for status pages.
func (e *Elastic) Analyzer() string { return e.analyzer }

func (e *Elastic) chooseAnalyzer(ctx context.Context, want string) (string, error) {
	switch want {
	case AnalyzerCJK:
		return AnalyzerCJK, nil
	case "", AnalyzerAuto, AnalyzerIK:
	default:
		return "", session.Errorf(session.EINVALID, "search: unknown analyzer %q (want auto, ik or cjk)", want)
	}
	info, err := e.client.NodesInfo().Metric("plugins").Do(ctx)
	if err != nil {
		return "", esError(err, "list Elasticsearch plugins")
	}
	ik := len(info.Nodes) > 0
	for _, n := range info.Nodes {
		has := false
		for _, p := range n.Plugins {
			has = has || p.Name == "analysis-ik"
		}
		ik = ik && has
	}
	switch {
	case ik:
		return AnalyzerIK, nil
	case want == AnalyzerIK:
		return "", session.Errorf(session.EINVALID, "search: analyzer ik asked for, but not every Elasticsearch node has the analysis-ik plugin")
	}
	return AnalyzerCJK, nil
}

func (e *Elastic) indexName(t time.Time) string { return e.prefix + "-" + t.UTC().Format("2006.01") }

// template is the legacy index template (it works on every 7.x, composable ones from 7.8 only).
func (e *Elastic) template(shards, replicas int) map[string]any {
	text := map[string]any{"type": "text", "analyzer": "cjk"}
	if e.analyzer == AnalyzerIK {
		text = map[string]any{"type": "text", "analyzer": "ik_max_word", "search_analyzer": "ik_smart"}
	}
	long := map[string]any{"type": "long"}
	kw := map[string]any{"type": "keyword"}
	return map[string]any{
		"index_patterns": []string{e.prefix + "-*"},
		"version":        1,
		"aliases":        map[string]any{e.prefix: map[string]any{}},
		"settings": map[string]any{
			"number_of_shards":   shards,
			"number_of_replicas": replicas,
			"max_ngram_diff":     maxGram - minGram,
			"analysis": map[string]any{
				"normalizer": map[string]any{
					"code_lower": map[string]any{"type": "custom", "filter": []string{"lowercase"}},
				},
				"tokenizer": map[string]any{
					"code_ngram": map[string]any{"type": "ngram", "min_gram": minGram, "max_gram": maxGram},
				},
				"analyzer": map[string]any{
					"code_ngram":  map[string]any{"type": "custom", "tokenizer": "code_ngram", "filter": []string{"lowercase"}},
					"code_search": map[string]any{"type": "custom", "tokenizer": "keyword", "filter": []string{"lowercase"}},
				},
			},
		},
		"mappings": map[string]any{
			"dynamic": "strict",
			"properties": map[string]any{
				"shop_id": long, "conversation_id": long, "seq": long, "session_id": long,
				"buyer_id": long, "agent_id": long, "sender_id": long,
				"kind": kw, "sender_kind": kw, "type": kw,
				"text": text,
				"codes": map[string]any{
					"type": "keyword", "normalizer": "code_lower",
					"fields": map[string]any{
						"ngram": map[string]any{"type": "text", "analyzer": "code_ngram", "search_analyzer": "code_search"},
					},
				},
				"recalled":   map[string]any{"type": "boolean"},
				"created_at": map[string]any{"type": "date"},
			},
		},
	}
}

// ensureIndex creates a monthly index once per process, rather than leaving it to the first bulk
// request, because hardened clusters turn off action.auto_create_index.
func (e *Elastic) ensureIndex(ctx context.Context, name string) error {
	if _, ok := e.months.Load(name); ok {
		return nil
	}
	_, err := e.client.CreateIndex(name).Do(ctx)
	var ee *elastic.Error
	if err == nil || errors.As(err, &ee) && ee.Details != nil && ee.Details.Type == "resource_already_exists_exception" {
		e.months.Store(name, true)
		return nil
	}
	return esError(err, "create index "+name)
}

// esTime is the form of times in Elasticsearch: milliseconds, its date resolution.
const esTime = "2006-01-02T15:04:05.000Z07:00"

// esDoc is a document as stored in Elasticsearch; its created_at shadows Document's.
type esDoc struct {
	Document
	CreatedAt string `json:"created_at"`
}

// Index implements Index with one bulk request.
func (e *Elastic) Index(ctx context.Context, docs []Document) error {
	if len(docs) > MaxBatch {
		return session.Errorf(session.ETOOLARGE, "search: %d documents in one batch, at most %d", len(docs), MaxBatch)
	}
	if len(docs) == 0 {
		return nil
	}
	bulk := e.client.Bulk()
	for _, d := range docs {
		if err := d.validate(); err != nil {
			return err
		}
		if d.Codes == nil {
			d.Codes = []string{}
		}
		name := e.indexName(d.CreatedAt)
		if err := e.ensureIndex(ctx, name); err != nil {
			return err
		}
		bulk.Add(elastic.NewBulkIndexRequest().Index(name).Id(d.ID()).
			Doc(esDoc{Document: d, CreatedAt: d.CreatedAt.UTC().Format(esTime)}))
	}
	res, err := bulk.Do(ctx)
	if err != nil {
		return esError(err, "bulk index")
	}
	if failed := res.Failed(); len(failed) > 0 {
		code := session.EINTERNAL
		for _, f := range failed {
			if f.Status == http.StatusTooManyRequests || f.Status >= 500 {
				code = session.EUNAVAILABLE
			}
		}
		first := "unknown"
		if f := failed[0]; f.Error != nil {
			first = f.Id + ": " + f.Error.Type + ": " + f.Error.Reason
		}
		return session.Errorf(code, "search: %d of %d documents not indexed (first %s)", len(failed), len(docs), first)
	}
	return nil
}

func esFilters(q Query) []elastic.Query {
	fs := []elastic.Query{elastic.NewTermQuery("shop_id", q.ShopID)}
	if q.AgentID != 0 {
		fs = append(fs, elastic.NewTermQuery("agent_id", q.AgentID))
	}
	if q.BuyerID != 0 {
		fs = append(fs, elastic.NewTermQuery("buyer_id", q.BuyerID))
	}
	if q.ConversationID != 0 {
		fs = append(fs, elastic.NewTermQuery("conversation_id", q.ConversationID))
	}
	if q.Kind != "" {
		fs = append(fs, elastic.NewTermQuery("kind", string(q.Kind)))
	}
	if !q.Since.IsZero() || !q.Until.IsZero() {
		r := elastic.NewRangeQuery("created_at")
		if !q.Since.IsZero() {
			r = r.Gte(q.Since.UTC().Format(esTime))
		}
		if !q.Until.IsZero() {
			r = r.Lt(q.Until.UTC().Format(esTime))
		}
		fs = append(fs, r)
	}
	return fs
}

func (k keyword) esQuery() []elastic.Query {
	var must []elastic.Query
	for _, w := range k.words {
		m := elastic.NewMatchQuery("text", w).Operator("and")
		c, ok := codeQuery(w)
		if !ok {
			must = append(must, m)
			continue
		}
		alts := []elastic.Query{m}
		for _, v := range codeForms(c) {
			alts = append(alts, elastic.NewTermQuery("codes", v).Boost(2))
			if len(v) <= maxGram {
				alts = append(alts, elastic.NewTermQuery("codes.ngram", v))
			}
		}
		must = append(must, elastic.NewBoolQuery().Should(alts...).MinimumNumberShouldMatch(1))
	}
	for _, p := range k.phrases {
		must = append(must, elastic.NewMatchPhraseQuery("text", p))
	}
	return must
}

// Search implements Index.
func (e *Elastic) Search(ctx context.Context, q Query) (Result, error) {
	q, k, err := q.normalize()
	if err != nil {
		return Result{}, err
	}
	query := elastic.NewBoolQuery().Filter(esFilters(q)...)
	s := e.client.Search(e.prefix).From(q.Offset).Size(q.Limit).TrackTotalHits(true)
	newest := []elastic.Sorter{elastic.NewFieldSort("created_at").Desc(), elastic.NewFieldSort("conversation_id").Desc(), elastic.NewFieldSort("seq").Desc()}
	if k.empty() {
		s = s.SortBy(newest...)
	} else {
		query = query.Must(k.esQuery()...)
		s = s.SortBy(append([]elastic.Sorter{elastic.NewScoreSort()}, newest...)...).
			Highlight(elastic.NewHighlight().Field("text").PreTags("<mark>").PostTags("</mark>").Encoder("html"))
	}
	res, err := s.Query(query).Do(ctx)
	if err != nil {
		return Result{}, esError(err, "search")
	}
	out := Result{Total: res.TotalHits(), Hits: make([]Hit, 0, len(res.Hits.Hits))}
	for _, h := range res.Hits.Hits {
		var d esDoc
		if err := json.Unmarshal(h.Source, &d); err != nil {
			return Result{}, fmt.Errorf("search: document %s: %w", h.Id, err)
		}
		d.Document.CreatedAt, err = time.Parse(time.RFC3339Nano, d.CreatedAt)
		if err != nil {
			return Result{}, fmt.Errorf("search: document %s: %w", h.Id, err)
		}
		hit := Hit{Document: d.Document, Highlights: h.Highlight["text"]}
		if h.Score != nil && !k.empty() {
			hit.Score = *h.Score
		}
		out.Hits = append(out.Hits, hit)
	}
	return out, nil
}

func (e *Elastic) deleteByQuery(ctx context.Context, filters ...elastic.Query) (int64, error) {
	res, err := e.client.DeleteByQuery(e.prefix).Query(elastic.NewBoolQuery().Filter(filters...)).
		Conflicts("proceed").Refresh("true").Do(ctx)
	if err != nil {
		return 0, esError(err, "delete by query")
	}
	if len(res.Failures) > 0 || res.VersionConflicts > 0 || res.TimedOut {
		return res.Deleted, session.Errorf(session.EUNAVAILABLE, "search: delete by query incomplete (%d deleted, %d failures, %d conflicts): run it again",
			res.Deleted, len(res.Failures), res.VersionConflicts)
	}
	return res.Deleted, nil
}

// DeleteBuyer implements Index.
func (e *Elastic) DeleteBuyer(ctx context.Context, shopID, buyerID int64) (int64, error) {
	if shopID <= 0 || buyerID <= 0 {
		return 0, session.Errorf(session.EINVALID, "search: erasure needs a shop and a buyer")
	}
	return e.deleteByQuery(ctx, elastic.NewTermQuery("shop_id", shopID), elastic.NewTermQuery("buyer_id", buyerID))
}

// DeleteBefore implements Index.
func (e *Elastic) DeleteBefore(ctx context.Context, shopID int64, before time.Time) (int64, error) {
	if shopID <= 0 || before.IsZero() {
		return 0, session.Errorf(session.EINVALID, "search: retention needs a shop and a time")
	}
	return e.deleteByQuery(ctx, elastic.NewTermQuery("shop_id", shopID),
		elastic.NewRangeQuery("created_at").Lt(before.UTC().Format(esTime)))
}

// Refresh makes everything indexed so far searchable now rather than within the refresh interval
// (a second by default); for tests and benchmarks.
func (e *Elastic) Refresh(ctx context.Context) error {
	_, err := e.client.Refresh(e.prefix).Do(ctx)
	return esError(err, "refresh")
}

// Close implements Index; the client holds no goroutines with sniffing and health checks off.
func (e *Elastic) Close() error {
	e.client.Stop()
	return nil
}

// esError tells a retryable failure (no connection, overload, a server error: EUNAVAILABLE) from
// one that retrying will not fix.
func esError(err error, what string) error {
	if err == nil {
		return nil
	}
	var ee *elastic.Error
	if errors.As(err, &ee) && ee.Status != http.StatusTooManyRequests && ee.Status < 500 {
		return &session.Error{Code: session.EINTERNAL, Message: "search: " + what, Err: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &session.Error{Code: session.EUNAVAILABLE, Message: "search: " + what, Err: err}
}
