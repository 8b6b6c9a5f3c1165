package search

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shopdesk/shopdesk/session"
)

// Limits on a query. They keep one request from costing the engine more than a page of results is
// worth, and they match Elasticsearch's default max_result_window so both backends page alike.
const (
	MaxKeywordRunes = 200   // longest keyword a query may carry
	MaxKeywordTerms = 16    // most whitespace-separated words and phrases in a keyword
	DefaultLimit    = 20    // page size when Query.Limit is 0
	MaxLimit        = 100   // largest page
	MaxWindow       = 10000 // Offset+Limit may not exceed this
	MaxBatch        = 10000 // most documents one Index call accepts
)

// Code n-gram lengths: a partial order number, SKU or phone number must have at least minGram
// characters (shorter fragments match too much to be useful) and at most maxGram.
const (
	minGram = 3
	maxGram = 20
)

// Index is the message search index of every shop. Every call is scoped to one shop.
type Index interface {
	// Index adds or replaces documents; a document's id is (shop, conversation, seq), so indexing the
	// same message twice leaves one document. After an error part of the batch may be indexed;
	// retrying the whole batch is the remedy.
	Index(ctx context.Context, docs []Document) error
	// Search returns one page of the shop's messages that match q.
	Search(ctx context.Context, q Query) (Result, error)
	// DeleteBuyer removes every message of the buyer's conversations in the shop (erasure) and
	// returns how many documents were removed.
	DeleteBuyer(ctx context.Context, shopID, buyerID int64) (int64, error)
	// DeleteBefore removes the shop's messages created before the time (retention) and returns how
	// many documents were removed.
	DeleteBefore(ctx context.Context, shopID int64, before time.Time) (int64, error)
	// Close releases the index.
	Close() error
}

// Document is one message as the search index sees it: the message and the session it belongs to.
type Document struct {
	ShopID         int64             `json:"shop_id"`
	ConversationID int64             `json:"conversation_id"`
	Seq            int64             `json:"seq"`
	SessionID      int64             `json:"session_id"`
	Kind           session.Kind      `json:"kind"`
	BuyerID        int64             `json:"buyer_id"`
	AgentID        int64             `json:"agent_id"`
	SenderKind     session.PartyKind `json:"sender_kind"`
	SenderID       int64             `json:"sender_id"`
	Type           string            `json:"type"`
	Text           string            `json:"text"`
	Codes          []string          `json:"codes"`
	Recalled       bool              `json:"recalled"`
	CreatedAt      time.Time         `json:"created_at"`
}

// ID is the document's deterministic id, "shop-conversation-seq".
func (d Document) ID() string { return DocID(d.ShopID, d.ConversationID, d.Seq) }

// DocID is the id of the document of message (conversation, seq) in a shop.
func DocID(shopID, conversationID, seq int64) string {
	return strconv.FormatInt(shopID, 10) + "-" + strconv.FormatInt(conversationID, 10) + "-" + strconv.FormatInt(seq, 10)
}

func (d Document) validate() error {
	switch {
	case d.ShopID <= 0:
		return session.Errorf(session.EINVALID, "search: document %s has no shop", d.ID())
	case d.ConversationID <= 0 || d.Seq <= 0:
		return session.Errorf(session.EINVALID, "search: document %s has no conversation or seq", d.ID())
	case d.CreatedAt.IsZero():
		return session.Errorf(session.EINVALID, "search: document %s has no time", d.ID())
	}
	return nil
}

// FromMessage builds the document of a message. conv is the message's conversation (for the
// buyer), sess the service session the message belongs to, or nil outside any session. Codes are
// taken from the text and from product and order cards. A recall message is indexed too (every
// message reaches the index); the message it recalls must be indexed again with Recalled set, which
// is what a manager's read of the history returns.
func FromMessage(m session.Message, conv session.Conversation, sess *session.Session) Document {
	d := Document{
		ShopID:         m.ShopID,
		ConversationID: m.ConversationID,
		Seq:            m.Seq,
		BuyerID:        conv.BuyerID,
		Kind:           conv.Context.Kind(),
		SenderKind:     m.SenderKind,
		SenderID:       m.SenderID,
		Type:           m.Body.Type,
		Recalled:       m.Recalled,
		CreatedAt:      m.CreatedAt,
	}
	if sess != nil {
		d.SessionID, d.Kind, d.AgentID = sess.ID, sess.Kind, sess.AgentID
	}
	parts := []string{m.Body.Text, m.Body.Name}
	if c := m.Body.Card; c != nil {
		parts = append(parts, c.Title, c.ID)
	}
	var text []string
	for _, p := range parts {
		if p != "" {
			text = append(text, p)
		}
	}
	d.Text = strings.Join(text, "\n")
	d.Codes = ExtractCodes(d.Text)
	return d
}

// codeRe finds candidate codes: runs of ASCII letters, digits and the separators people type in
// order numbers, SKUs and phone numbers. Chinese text around a code ends the run, which is why
// "订单E2026112200012" still yields the order number.
var codeRe = regexp.MustCompile(`[A-Za-z0-9][A-Za-z0-9_\-]*[A-Za-z0-9]`)

// ExtractCodes returns the order numbers, SKUs and phone numbers in text: tokens of at least five
// characters with at least three digits, lower-cased, each also without its separators so that
// "138-1234-5678" is found as "13812345678".
func ExtractCodes(text string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, tok := range codeRe.FindAllString(text, -1) {
		if len(tok) < 5 || len(tok) > 64 || digits(tok) < 3 {
			continue
		}
		tok = strings.ToLower(tok)
		add(tok)
		if bare := stripSeparators(tok); bare != tok {
			add(bare)
		}
	}
	return out
}

func digits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			n++
		}
	}
	return n
}

func stripSeparators(s string) string {
	return strings.NewReplacer("-", "", "_", "").Replace(s)
}

// Query selects a page of one shop's messages. Zero values mean "any".
type Query struct {
	ShopID int64 // required: nothing crosses shops
	// Keyword is full text in any language. Words separated by spaces must all match; text in double
	// quotes must match as a phrase. A word that looks like a code (letters and at least one digit,
	// three characters or more) also matches order numbers, SKUs and phone numbers exactly or by a
	// part. Empty lists the filtered messages newest first.
	Keyword        string
	AgentID        int64
	BuyerID        int64
	ConversationID int64
	Kind           session.Kind
	Since          time.Time // inclusive
	Until          time.Time // exclusive
	Offset         int
	Limit          int // DefaultLimit when 0
}

// Result is one page of hits and how many documents match in all. With a keyword the best match
// comes first (Elasticsearch breaks ties by time, newest first; bleve by index order); without one
// the newest message comes first.
type Result struct {
	Total int64 `json:"total"`
	Hits  []Hit `json:"hits"`
}

// Hit is one matching message, with what a UI needs to show it and link to the conversation at its
// seq. Highlights are fragments of the text with the matches in <mark></mark>, the rest
// HTML-escaped.
type Hit struct {
	Document
	Score      float64  `json:"score"`
	Highlights []string `json:"highlights,omitempty"`
}

// keyword is a query's keyword broken into what the backends match.
type keyword struct {
	words   []string // each must match the text, or a code
	phrases []string // each must match the text as a phrase
}

func (k keyword) empty() bool { return len(k.words) == 0 && len(k.phrases) == 0 }

// normalize checks q and returns it with defaults filled in and its keyword parsed.
func (q Query) normalize() (Query, keyword, error) {
	if q.ShopID <= 0 {
		return q, keyword{}, session.Errorf(session.EINVALID, "search: a shop is required")
	}
	if q.Offset < 0 || q.Limit < 0 {
		return q, keyword{}, session.Errorf(session.EINVALID, "search: offset and limit may not be negative")
	}
	if q.Limit == 0 {
		q.Limit = DefaultLimit
	}
	if q.Limit > MaxLimit {
		return q, keyword{}, session.Errorf(session.EINVALID, "search: limit %d is over %d", q.Limit, MaxLimit)
	}
	if q.Offset+q.Limit > MaxWindow {
		return q, keyword{}, session.Errorf(session.EINVALID, "search: offset+limit %d is over %d; narrow the query", q.Offset+q.Limit, MaxWindow)
	}
	if q.AgentID < 0 || q.BuyerID < 0 || q.ConversationID < 0 {
		return q, keyword{}, session.Errorf(session.EINVALID, "search: ids may not be negative")
	}
	switch q.Kind {
	case "", session.KindPreSale, session.KindAfterSale, session.KindUnknown:
	default:
		return q, keyword{}, session.Errorf(session.EINVALID, "search: unknown session kind %q", q.Kind)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return q, keyword{}, session.Errorf(session.EINVALID, "search: since must be before until")
	}
	if !utf8.ValidString(q.Keyword) {
		return q, keyword{}, session.Errorf(session.EINVALID, "search: keyword is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(q.Keyword); n > MaxKeywordRunes {
		return q, keyword{}, session.Errorf(session.ETOOLARGE, "search: keyword has %d characters, at most %d", n, MaxKeywordRunes)
	}
	k := parseKeyword(q.Keyword)
	if n := len(k.words) + len(k.phrases); n > MaxKeywordTerms {
		return q, keyword{}, session.Errorf(session.ETOOLARGE, "search: keyword has %d words, at most %d", n, MaxKeywordTerms)
	}
	return q, k, nil
}

// parseKeyword splits a keyword into words and quoted phrases. An unclosed quote runs to the end,
// because people type a trailing quote less often than they forget one.
func parseKeyword(s string) keyword {
	var k keyword
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			k.words = append(k.words, strings.Fields(s)...)
			break
		}
		k.words = append(k.words, strings.Fields(s[:i])...)
		s = s[i+1:]
		j := strings.IndexByte(s, '"')
		if j < 0 {
			j = len(s)
		}
		if p := strings.TrimSpace(s[:j]); p != "" {
			k.phrases = append(k.phrases, p)
		}
		if j == len(s) {
			break
		}
		s = s[j+1:]
	}
	return k
}

// codeQuery returns the form in which a query word is looked up among codes, and whether it looks
// like a code at all: only ASCII letters, digits and separators, with a digit, three characters or
// more.
func codeQuery(w string) (string, bool) {
	if len(w) < minGram || digits(w) == 0 {
		return "", false
	}
	for _, r := range w {
		if r > unicode.MaxASCII || !(r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return "", false
		}
	}
	return strings.ToLower(w), true
}
