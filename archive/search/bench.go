package search

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/shopdesk/shopdesk/session"
)

// CorpusConfig sizes a generated corpus. Zero fields take the defaults in NewCorpus.
type CorpusConfig struct {
	Docs                    int    // messages; 1,000,000 for the scenario's goal
	Shops                   int    // 20 by default
	MessagesPerConversation int    // 20 by default
	Seed                    uint64 // the same seed gives the same corpus
}

// Corpus is a generated zh/en customer-service history with order numbers, SKUs and phone numbers.
// Documents are computed from their position, so a million of them never sit in memory and a query
// can name a code that is certainly in the corpus.
//
// Each conversation belongs to one buyer and one shop and has one order number and one phone number;
// SKUs come from a catalog of 500. About 60% of messages are Chinese, 40% English; buyers and agents
// alternate; messages are 3 s apart from 2026-03-01 UTC.
type Corpus struct {
	cfg CorpusConfig
}

// NewCorpus returns the corpus cfg describes.
func NewCorpus(cfg CorpusConfig) *Corpus {
	if cfg.Shops <= 0 {
		cfg.Shops = 20
	}
	if cfg.MessagesPerConversation <= 0 {
		cfg.MessagesPerConversation = 20
	}
	return &Corpus{cfg: cfg}
}

// Len is the number of documents.
func (c *Corpus) Len() int { return c.cfg.Docs }

var corpusStart = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

var (
	zhBuyer = []string{
		"你好，我的订单{o}什么时候发货？",
		"请问{s}这款还有货吗？尺码偏大还是偏小？",
		"我的手机号是{p}，快递到了请联系我",
		"订单{o}的物流三天没更新了，能帮忙催一下吗",
		"这个颜色有色差，我想换货",
		"优惠券怎么用不了？结算的时候提示不满足条件",
		"收到的衣服有线头，可以退款吗",
		"好的，谢谢",
	}
	zhStaff = []string{
		"亲，已经为您申请退款，预计3个工作日到账",
		"亲，物流显示已经签收了，请您查看一下",
		"您好，{s}目前有货，今天下单明天发货",
		"已经帮您备注加急发货，请耐心等待",
		"亲，换货请在订单{o}里点申请售后",
		"这款尺码标准，建议按平时的尺码购买",
	}
	enBuyer = []string{
		"Hi, where is my order {o}? It has not shipped yet",
		"Is {s} in stock in size M?",
		"Please call me at {p} when the courier arrives",
		"The tracking shows delivered but I did not receive the package",
		"Can I exchange it for another color?",
		"The coupon code does not work at checkout",
		"Thanks, that helps",
	}
	enStaff = []string{
		"Your refund has been approved and will arrive in 3 business days",
		"Sorry for the delay, order {o} will ship today",
		"{s} is back in stock, would you like to order it?",
		"Please send us a photo of the damaged item so we can arrange an exchange",
		"The coupon requires a minimum spend of 99",
	}
	fillers = []string{"谢谢", "麻烦了", "急", "在吗", "请尽快", "please", "asap", "thanks", "hello", "OK", "嗯嗯", "亲"}
	colors  = []string{"RED", "BLK", "WHT", "BLU", "GRN"}
)

// orderNumber, phone and sku give each conversation its codes; they mix the id so neighbouring
// conversations share no long digit runs by accident.
func orderNumber(conv int64) string {
	return fmt.Sprintf("E2026%012d", uint64(conv)*7919%1_000_000_000_000)
}
func phone(conv int64) string {
	return fmt.Sprintf("1%d%d%08d", 3+conv%7, conv%10, uint64(conv)*104729%100_000_000)
}
func sku(n int) string {
	return fmt.Sprintf("SKU-%c%04d-%s", 'A'+rune(n%26), 1000+n*37%9000, colors[n%len(colors)])
}

// Doc is the i-th document, 0 ≤ i < Len.
func (c *Corpus) Doc(i int) Document {
	mpc := c.cfg.MessagesPerConversation
	conv := int64(i/mpc) + 1
	seq := int64(i%mpc) + 1
	shop := (conv-1)%int64(c.cfg.Shops) + 1
	rng := rand.New(rand.NewPCG(c.cfg.Seed, uint64(i)))
	kind := session.KindPreSale
	if conv%2 == 0 {
		kind = session.KindAfterSale
	}
	d := Document{
		ShopID: shop, ConversationID: conv, Seq: seq, SessionID: conv, Kind: kind,
		BuyerID: conv, AgentID: shop*100 + conv%5 + 1, Type: session.TypeText,
		CreatedAt: corpusStart.Add(time.Duration(i) * 3 * time.Second),
	}
	templates := zhBuyer
	zh := rng.IntN(10) < 6
	if seq%2 == 1 {
		d.SenderKind, d.SenderID = session.PartyBuyer, d.BuyerID
		if !zh {
			templates = enBuyer
		}
	} else {
		d.SenderKind, d.SenderID = session.PartyStaff, d.AgentID
		templates = zhStaff
		if !zh {
			templates = enStaff
		}
	}
	text := strings.NewReplacer("{o}", orderNumber(conv), "{s}", sku(int(conv%500)), "{p}", phone(conv)).
		Replace(templates[rng.IntN(len(templates))])
	if rng.IntN(3) == 0 {
		text += " " + fillers[rng.IntN(len(fillers))]
	}
	d.Text = text
	d.Codes = ExtractCodes(d.Text)
	return d
}

// Queries returns n queries in the scenario's stated mix, every one scoped to one shop, 20 hits a
// page:
//
//	30% a Chinese word (退款, 发货, 物流, ...)
//	20% an English word (refund, coupon, tracking, ...)
//	10% two words or a phrase ("business days", 退款 到账)
//	15% an exact order number of a conversation in the corpus
//	10% the last four digits of a buyer's phone number
//	10% a part of a SKU (A1234)
//	 5% no keyword: one buyer's messages, newest first
func (c *Corpus) Queries(n int, seed uint64) []Query {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	zhWords := []string{"退款", "发货", "物流", "优惠券", "尺码", "换货", "色差", "签收"}
	enWords := []string{"refund", "shipped", "coupon", "exchange", "delivered", "stock", "tracking"}
	multi := []string{`"business days"`, "退款 到账", `"加急发货"`, "coupon checkout", `"申请售后"`}
	out := make([]Query, 0, n)
	for range n {
		d := c.Doc(rng.IntN(max(c.Len(), 1)))
		q := Query{ShopID: d.ShopID, Limit: 20}
		switch p := rng.IntN(100); {
		case p < 30:
			q.Keyword = zhWords[rng.IntN(len(zhWords))]
		case p < 50:
			q.Keyword = enWords[rng.IntN(len(enWords))]
		case p < 60:
			q.Keyword = multi[rng.IntN(len(multi))]
		case p < 75:
			q.Keyword = orderNumber(d.ConversationID)
		case p < 85:
			ph := phone(d.ConversationID)
			q.Keyword = ph[len(ph)-4:]
		case p < 95:
			q.Keyword = strings.Split(sku(int(d.ConversationID%500)), "-")[1]
		default:
			q.BuyerID = d.BuyerID
		}
		out = append(out, q)
	}
	return out
}

// BenchResult is what the search scenario measures.
type BenchResult struct {
	Docs        int
	IndexPerSec float64
	Queries     int
	Empty       int // queries that found nothing; a sanity check on the mix, not a figure of merit
	QueryP50    time.Duration
	QueryP99    time.Duration
}

// String is the scenario's last line.
func (r BenchResult) String() string {
	return fmt.Sprintf("SEARCH docs=%d index_per_sec=%.0f query_p50_ms=%.2f query_p99_ms=%.2f",
		r.Docs, r.IndexPerSec, ms(r.QueryP50), ms(r.QueryP99))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// IndexCorpus indexes every document of c in batches of batch documents and returns how long it
// took, including making the documents searchable when idx can be refreshed.
func IndexCorpus(ctx context.Context, idx Index, c *Corpus, batch int, progress func(done int)) (time.Duration, error) {
	if batch <= 0 || batch > MaxBatch {
		return 0, session.Errorf(session.EINVALID, "search: batch %d is out of 1..%d", batch, MaxBatch)
	}
	start := time.Now()
	docs := make([]Document, 0, batch)
	for i := 0; i < c.Len(); i += batch {
		docs = docs[:0]
		for j := i; j < min(i+batch, c.Len()); j++ {
			docs = append(docs, c.Doc(j))
		}
		if err := idx.Index(ctx, docs); err != nil {
			return 0, err
		}
		if progress != nil {
			progress(i + len(docs))
		}
	}
	if r, ok := idx.(interface{ Refresh(context.Context) error }); ok {
		if err := r.Refresh(ctx); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// RunQueries runs the queries one after another and returns each one's latency and how many found
// nothing.
func RunQueries(ctx context.Context, idx Index, qs []Query) ([]time.Duration, int, error) {
	lat := make([]time.Duration, 0, len(qs))
	empty := 0
	for _, q := range qs {
		start := time.Now()
		r, err := idx.Search(ctx, q)
		if err != nil {
			return nil, 0, fmt.Errorf("%+v: %w", q, err)
		}
		lat = append(lat, time.Since(start))
		if r.Total == 0 {
			empty++
		}
	}
	return lat, empty, nil
}

// Percentile returns the p-th percentile (0 < p ≤ 100, nearest rank) of the latencies.
func Percentile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// BenchBatch is the batch size of the scenario: each bleve batch waits for its fsync, so larger
// batches index faster, and 5000 short messages stay far below Elasticsearch's request size limits.
const BenchBatch = 5000

// Bench is the search scenario: index the corpus into idx (which should be empty) in batches of
// BenchBatch, then run queries from the stated mix, and report throughput and latency.
func Bench(ctx context.Context, idx Index, c *Corpus, queries int, progress func(done int)) (BenchResult, error) {
	took, err := IndexCorpus(ctx, idx, c, BenchBatch, progress)
	if err != nil {
		return BenchResult{}, err
	}
	lat, empty, err := RunQueries(ctx, idx, c.Queries(queries, c.cfg.Seed))
	if err != nil {
		return BenchResult{}, err
	}
	return BenchResult{
		Docs: c.Len(), IndexPerSec: float64(c.Len()) / took.Seconds(), Queries: queries, Empty: empty,
		QueryP50: Percentile(lat, 50), QueryP99: Percentile(lat, 99),
	}, nil
}
