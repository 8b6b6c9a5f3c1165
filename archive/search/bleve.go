package search

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/lang/cjk"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/token/ngram"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/single"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/mapping"
	bq "github.com/blevesearch/bleve/v2/search/query"
	"golang.org/x/sync/errgroup"

	"github.com/shopdesk/shopdesk/session"
)

// Bleve is the embedded Index: bleve indexes in a directory (or in memory), for one node. Shops are
// spread over a fixed number of shards, one bleve index each, because a query is always for one
// shop: it then reads only its shard's postings, not every shop's, and batches for different shards
// are written in parallel.
type Bleve struct {
	shards []bleve.Index
}

var _ Index = (*Bleve)(nil)

// DefaultShards is the number of shards of a new embedded index; it is fixed when the directory is
// created.
const DefaultShards = 16

// mappingVersion is recorded in each shard; a directory made with another version is refused
// rather than searched with a mapping it was not built with.
const (
	mappingVersionKey = "shopdesk.mapping"
	mappingVersion    = "2"
	layoutFile        = "shopdesk-search.json"
)

// layout is what the directory's layoutFile records.
type layout struct {
	Version string `json:"version"`
	Shards  int    `json:"shards"`
}

// OpenBleve opens the index in dir, creating it (and dir) with DefaultShards shards when it does
// not exist yet.
func OpenBleve(dir string) (*Bleve, error) {
	lay := layout{Version: mappingVersion, Shards: DefaultShards}
	raw, err := os.ReadFile(filepath.Join(dir, layoutFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("search: create %s: %w", dir, err)
		}
		raw, _ = json.Marshal(lay)
		if err := os.WriteFile(filepath.Join(dir, layoutFile), raw, 0o644); err != nil {
			return nil, fmt.Errorf("search: create %s: %w", dir, err)
		}
	case err != nil:
		return nil, fmt.Errorf("search: open %s: %w", dir, err)
	default:
		if err := json.Unmarshal(raw, &lay); err != nil || lay.Shards <= 0 {
			return nil, fmt.Errorf("search: %s is not a search index directory: bad %s", dir, layoutFile)
		}
		if lay.Version != mappingVersion {
			return nil, fmt.Errorf("search: index %s has mapping version %q, this build needs %q: rebuild it", dir, lay.Version, mappingVersion)
		}
	}
	b := &Bleve{}
	for i := range lay.Shards {
		idx, err := openShard(filepath.Join(dir, fmt.Sprintf("%02d", i)))
		if err != nil {
			_ = b.Close()
			return nil, err
		}
		b.shards = append(b.shards, idx)
	}
	return b, nil
}

func openShard(path string) (bleve.Index, error) {
	idx, err := bleve.Open(path)
	if errors.Is(err, bleve.ErrorIndexPathDoesNotExist) {
		m, merr := bleveMapping()
		if merr != nil {
			return nil, merr
		}
		idx, err = bleve.New(path, m)
		if err == nil {
			err = idx.SetInternal([]byte(mappingVersionKey), []byte(mappingVersion))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("search: open bleve index %s: %w", path, err)
	}
	if v, err := idx.GetInternal([]byte(mappingVersionKey)); err != nil || string(v) != mappingVersion {
		_ = idx.Close()
		return nil, fmt.Errorf("search: bleve index %s has mapping version %q, this build needs %q: rebuild it", path, v, mappingVersion)
	}
	return idx, nil
}

// NewMemBleve returns an empty index kept in memory, for tests and benchmarks.
func NewMemBleve() (*Bleve, error) {
	m, err := bleveMapping()
	if err != nil {
		return nil, err
	}
	b := &Bleve{}
	for range 4 {
		// scorch, the engine of on-disk indexes, also runs without a path; bleve's NewMemOnly
		// would use an older engine that is many times slower at indexing.
		idx, err := bleve.NewUsing("", m, scorch.Name, scorch.Name, nil)
		if err != nil {
			_ = b.Close()
			return nil, fmt.Errorf("search: new bleve index: %w", err)
		}
		b.shards = append(b.shards, idx)
	}
	return b, nil
}

func (b *Bleve) shard(shopID int64) bleve.Index { return b.shards[shopID%int64(len(b.shards))] }

// Analyzers of the code fields: a code is one token, lower-cased; its n-grams let a part of it match.
const (
	codeExactAnalyzer = "shopdesk_code"
	codeNgramAnalyzer = "shopdesk_code_ngram"
	codeNgramFilter   = "shopdesk_code_ngram"
)

// bleveMapping mirrors the Elasticsearch mapping: ids and enums as exact keywords, text through
// the cjk analyzer, codes as keyword and n-gram fields.
func bleveMapping() (mapping.IndexMapping, error) {
	im := bleve.NewIndexMapping()
	if err := im.AddCustomTokenFilter(codeNgramFilter, map[string]any{
		"type": ngram.Name, "min": float64(minGram), "max": float64(maxGram),
	}); err != nil {
		return nil, err
	}
	if err := im.AddCustomAnalyzer(codeExactAnalyzer, map[string]any{
		"type": custom.Name, "tokenizer": single.Name, "token_filters": []any{lowercase.Name},
	}); err != nil {
		return nil, err
	}
	if err := im.AddCustomAnalyzer(codeNgramAnalyzer, map[string]any{
		"type": custom.Name, "tokenizer": single.Name, "token_filters": []any{lowercase.Name, codeNgramFilter},
	}); err != nil {
		return nil, err
	}

	keyword := func(store bool) *mapping.FieldMapping {
		f := bleve.NewKeywordFieldMapping()
		f.Store = store
		f.IncludeInAll = false
		f.IncludeTermVectors = false
		return f
	}
	dm := bleve.NewDocumentStaticMapping()
	for _, f := range []string{"shop", "conv", "buyer", "agent"} {
		dm.AddFieldMappingsAt(f, keyword(false)) // the numeric copies are the stored ones
	}
	for _, f := range []string{"kind", "sender_kind", "type"} {
		dm.AddFieldMappingsAt(f, keyword(true))
	}
	for _, f := range []string{"shop_id", "conversation_id", "seq", "session_id", "buyer_id", "agent_id", "sender_id"} {
		nf := bleve.NewNumericFieldMapping()
		nf.Index = false
		nf.DocValues = false
		nf.IncludeInAll = false
		dm.AddFieldMappingsAt(f, nf)
	}
	text := bleve.NewTextFieldMapping()
	text.Analyzer = cjk.AnalyzerName
	text.IncludeInAll = false
	dm.AddFieldMappingsAt("text", text)

	exact := bleve.NewTextFieldMapping()
	exact.Analyzer = codeExactAnalyzer
	exact.Store = false
	exact.IncludeTermVectors = false
	exact.IncludeInAll = false
	grams := bleve.NewTextFieldMapping()
	grams.Name = "codes_ngram"
	grams.Analyzer = codeNgramAnalyzer
	grams.Store = false
	grams.IncludeTermVectors = false
	grams.IncludeInAll = false
	dm.AddFieldMappingsAt("codes", exact, grams)

	recalled := bleve.NewBooleanFieldMapping()
	recalled.IncludeInAll = false
	dm.AddFieldMappingsAt("recalled", recalled)
	created := bleve.NewDateTimeFieldMapping()
	created.IncludeInAll = false
	dm.AddFieldMappingsAt("created_at", created)

	im.DefaultMapping = dm
	im.DefaultAnalyzer = cjk.AnalyzerName
	im.StoreDynamic = false
	im.IndexDynamic = false
	im.DocValuesDynamic = false
	return im, nil
}

// bleveDoc is what bleve stores: the filter ids once more as keywords, because an exact term
// lookup is much cheaper in bleve than a numeric range of one value.
type bleveDoc struct {
	Shop  string `json:"shop"`
	Conv  string `json:"conv"`
	Buyer string `json:"buyer"`
	Agent string `json:"agent"`
	Document
}

func key(id int64) string { return strconv.FormatInt(id, 10) }

// Index implements Index. Each shard's batch is on disk when Index returns.
func (b *Bleve) Index(ctx context.Context, docs []Document) error {
	if len(docs) > MaxBatch {
		return session.Errorf(session.ETOOLARGE, "search: %d documents in one batch, at most %d", len(docs), MaxBatch)
	}
	batches := make(map[bleve.Index]*bleve.Batch)
	for _, d := range docs {
		if err := d.validate(); err != nil {
			return err
		}
		d.CreatedAt = d.CreatedAt.UTC()
		idx := b.shard(d.ShopID)
		batch := batches[idx]
		if batch == nil {
			batch = idx.NewBatch()
			batches[idx] = batch
		}
		bd := bleveDoc{Shop: key(d.ShopID), Conv: key(d.ConversationID), Buyer: key(d.BuyerID), Agent: key(d.AgentID), Document: d}
		if err := batch.Index(d.ID(), bd); err != nil {
			return fmt.Errorf("search: index %s: %w", d.ID(), err)
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	for idx, batch := range batches {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := idx.Batch(batch); err != nil {
				return fmt.Errorf("search: index batch: %w", err)
			}
			return nil
		})
	}
	return g.Wait()
}

func term(field, value string) bq.Query {
	t := bq.NewTermQuery(value)
	t.SetField(field)
	return t
}

// filters are the clauses every query has: the shop first, always.
func (q Query) bleveFilters() []bq.Query {
	fs := []bq.Query{term("shop", key(q.ShopID))}
	if q.AgentID != 0 {
		fs = append(fs, term("agent", key(q.AgentID)))
	}
	if q.BuyerID != 0 {
		fs = append(fs, term("buyer", key(q.BuyerID)))
	}
	if q.ConversationID != 0 {
		fs = append(fs, term("conv", key(q.ConversationID)))
	}
	if q.Kind != "" {
		fs = append(fs, term("kind", string(q.Kind)))
	}
	if !q.Since.IsZero() || !q.Until.IsZero() {
		incl, excl := true, false
		r := bq.NewDateRangeInclusiveQuery(q.Since, q.Until, &incl, &excl)
		r.SetField("created_at")
		fs = append(fs, r)
	}
	return fs
}

func (k keyword) bleveQuery() bq.Query {
	var must []bq.Query
	for _, w := range k.words {
		m := bq.NewMatchQuery(w)
		m.SetField("text")
		m.SetOperator(bq.MatchQueryOperatorAnd)
		c, ok := codeQuery(w)
		if !ok {
			must = append(must, m)
			continue
		}
		alts := []bq.Query{m}
		for _, v := range codeForms(c) {
			exact := term("codes", v)
			exact.(*bq.TermQuery).SetBoost(2)
			alts = append(alts, exact)
			if len(v) <= maxGram {
				alts = append(alts, term("codes_ngram", v))
			}
		}
		must = append(must, bq.NewDisjunctionQuery(alts))
	}
	for _, p := range k.phrases {
		m := bq.NewMatchPhraseQuery(p)
		m.SetField("text")
		must = append(must, m)
	}
	return bq.NewConjunctionQuery(must)
}

// codeForms is a code as typed and without separators, the two forms ExtractCodes indexes.
func codeForms(c string) []string {
	if bare := stripSeparators(c); bare != c && len(bare) >= minGram {
		return []string{c, bare}
	}
	return []string{c}
}

// Search implements Index.
func (b *Bleve) Search(ctx context.Context, q Query) (Result, error) {
	q, k, err := q.normalize()
	if err != nil {
		return Result{}, err
	}
	var top bq.Query
	var sort []string
	if k.empty() {
		top = bq.NewConjunctionQuery(q.bleveFilters())
		sort = []string{"-created_at", "-_id"}
	} else {
		both := bq.NewBooleanQuery(nil, nil, nil)
		both.AddMust(k.bleveQuery())
		both.AddFilter(bq.NewConjunctionQuery(q.bleveFilters()))
		top = both
		// Score alone: a sort field is read for every matching document, and a time tie-break made
		// common words several times slower over a million messages (BenchmarkSearch). Equal scores
		// keep index order.
		sort = []string{"-_score"}
	}
	req := bleve.NewSearchRequestOptions(top, q.Limit, q.Offset, false)
	req.SortBy(sort)
	req.Fields = []string{"*"}
	if !k.empty() {
		req.Highlight = bleve.NewHighlightWithStyle("html")
		req.Highlight.AddField("text")
	}
	res, err := b.shard(q.ShopID).SearchInContext(ctx, req)
	if err != nil {
		return Result{}, fmt.Errorf("search: %w", err)
	}
	out := Result{Total: int64(res.Total), Hits: make([]Hit, 0, len(res.Hits))}
	for _, h := range res.Hits {
		hit := Hit{Document: documentFromFields(h.Fields), Score: h.Score}
		if k.empty() {
			hit.Score = 0
		}
		hit.Highlights = h.Fragments["text"]
		out.Hits = append(out.Hits, hit)
	}
	return out, nil
}

// documentFromFields rebuilds a document from bleve's stored fields, which come back as float64
// numbers and strings.
func documentFromFields(f map[string]any) Document {
	num := func(k string) int64 { v, _ := f[k].(float64); return int64(v) }
	str := func(k string) string { v, _ := f[k].(string); return v }
	d := Document{
		ShopID:         num("shop_id"),
		ConversationID: num("conversation_id"),
		Seq:            num("seq"),
		SessionID:      num("session_id"),
		Kind:           session.Kind(str("kind")),
		BuyerID:        num("buyer_id"),
		AgentID:        num("agent_id"),
		SenderKind:     session.PartyKind(str("sender_kind")),
		SenderID:       num("sender_id"),
		Type:           str("type"),
		Text:           str("text"),
	}
	d.Recalled, _ = f["recalled"].(bool)
	d.CreatedAt, _ = time.Parse(time.RFC3339Nano, str("created_at"))
	return d
}

// deleteMatching deletes, page by page, every document q matches. Each page is searched again
// after the previous one is deleted, so a crash midway leaves a smaller set for the rerun.
func (b *Bleve) deleteMatching(ctx context.Context, shopID int64, q bq.Query) (int64, error) {
	idx := b.shard(shopID)
	var n int64
	for {
		req := bleve.NewSearchRequestOptions(q, 1000, 0, false)
		res, err := idx.SearchInContext(ctx, req)
		if err != nil {
			return n, fmt.Errorf("search: delete: %w", err)
		}
		if len(res.Hits) == 0 {
			return n, nil
		}
		batch := idx.NewBatch()
		for _, h := range res.Hits {
			batch.Delete(h.ID)
		}
		if err := idx.Batch(batch); err != nil {
			return n, fmt.Errorf("search: delete: %w", err)
		}
		n += int64(len(res.Hits))
	}
}

// DeleteBuyer implements Index.
func (b *Bleve) DeleteBuyer(ctx context.Context, shopID, buyerID int64) (int64, error) {
	if shopID <= 0 || buyerID <= 0 {
		return 0, session.Errorf(session.EINVALID, "search: erasure needs a shop and a buyer")
	}
	return b.deleteMatching(ctx, shopID, bq.NewConjunctionQuery([]bq.Query{term("shop", key(shopID)), term("buyer", key(buyerID))}))
}

// DeleteBefore implements Index.
func (b *Bleve) DeleteBefore(ctx context.Context, shopID int64, before time.Time) (int64, error) {
	if shopID <= 0 || before.IsZero() {
		return 0, session.Errorf(session.EINVALID, "search: retention needs a shop and a time")
	}
	excl := false
	r := bq.NewDateRangeInclusiveQuery(time.Time{}, before, nil, &excl)
	r.SetField("created_at")
	return b.deleteMatching(ctx, shopID, bq.NewConjunctionQuery([]bq.Query{term("shop", key(shopID)), r}))
}

// Close implements Index.
func (b *Bleve) Close() error {
	var errs []error
	for _, idx := range b.shards {
		errs = append(errs, idx.Close())
	}
	return errors.Join(errs...)
}
