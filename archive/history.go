package archive

import (
	"context"

	"github.com/shopdesk/shopdesk/session"
)

// History is a session.Log whose reads continue into the cold tier: paging forwards or backwards
// from any seq returns the same messages whichever tier holds them. Writes and counters go to the
// wrapped log unchanged.
type History struct {
	log  session.Log
	cold *Cold
}

// NewHistory returns log with cold history merged into its reads.
func NewHistory(log session.Log, cold *Cold) *History { return &History{log: log, cold: cold} }

var _ session.Log = (*History)(nil)

// Append stores the message in the wrapped log.
func (h *History) Append(ctx context.Context, m session.Message) (session.Message, bool, error) {
	return h.log.Append(ctx, m)
}

// LastSeq returns the wrapped log's counter.
func (h *History) LastSeq(ctx context.Context, conversationID int64) (int64, error) {
	return h.log.LastSeq(ctx, conversationID)
}

// After reads the hot and warm tiers first. Seqs have no holes, so the cold tier is asked only when
// the page does not start right after `after`: the seqs in between have moved to cold.
func (h *History) After(ctx context.Context, conversationID, after int64, limit int) ([]session.Message, error) {
	page, err := h.log.After(ctx, conversationID, after, limit)
	if err != nil || (len(page) > 0 && page[0].Seq == after+1) {
		return page, err
	}
	if len(page) == 0 { // a device syncing at the top of the conversation must not cost a cold lookup
		last, err := h.log.LastSeq(ctx, conversationID)
		if err != nil || after >= last {
			return page, err
		}
	}
	cold, err := h.cold.After(ctx, conversationID, after, limit)
	if err != nil {
		return nil, err
	}
	if len(page) > 0 {
		cold = cutAt(cold, page[0].Seq)
	}
	out := append(cold, page...)
	return out[:min(limit, len(out))], nil
}

// Before reads the hot and warm tiers first, and the cold tier only for what a short page lacks.
func (h *History) Before(ctx context.Context, conversationID, before int64, limit int) ([]session.Message, error) {
	page, err := h.log.Before(ctx, conversationID, before, limit)
	if err != nil || len(page) == limit || (len(page) > 0 && page[0].Seq == 1) {
		return page, err
	}
	below := before
	if len(page) > 0 {
		below = page[0].Seq
	}
	if below <= 1 {
		return page, nil
	}
	cold, err := h.cold.Before(ctx, conversationID, below, limit-len(page))
	if err != nil {
		return nil, err
	}
	return append(cold, page...), nil
}

// cutAt keeps the messages below seq.
func cutAt(ms []session.Message, seq int64) []session.Message {
	for i, m := range ms {
		if m.Seq >= seq {
			return ms[:i]
		}
	}
	return ms
}
