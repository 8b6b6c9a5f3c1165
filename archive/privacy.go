package archive

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/shopdesk/shopdesk/session"
)

// DefaultRetentionDays is how long a shop keeps history unless its settings say otherwise: three
// years.
const DefaultRetentionDays = 1095

// Kinds of deletion recorded in data_deletions.
const (
	DeletionRetention = "retention"
	DeletionErasure   = "erasure"
)

// States of a recorded deletion. A row left "running" belongs to a run that stopped midway; running
// the same deletion again finishes the work under a new row.
const (
	DeletionRunning = "running"
	DeletionDone    = "done"
	DeletionFailed  = "failed"
)

// Deletion is the record of one deletion of history: a retention run over one shop, or the erasure
// of one buyer, with what each tier lost.
type Deletion struct {
	ID          int64      `json:"id" gorm:"primaryKey;autoIncrement"`
	ShopID      int64      `json:"shop_id"`
	Kind        string     `json:"kind"`
	Subject     string     `json:"subject,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	Cutoff      *time.Time `json:"cutoff,omitempty"`
	RequestedBy string     `json:"requested_by"`
	State       string     `json:"state"`
	// HotMessages counts copies removed from the hot tier; they are also counted in WarmMessages
	// when their warm copy went too, so the tiers' counts are not to be added up.
	HotMessages    int64 `json:"hot_messages"`
	WarmMessages   int64 `json:"warm_messages"`
	ColdMessages   int64 `json:"cold_messages"`
	ColdSegments   int64 `json:"cold_segments"`
	IndexDocuments int64 `json:"index_documents"`
	IndexPending   bool  `json:"index_pending"`
	Blobs          int64 `json:"blobs"`
	// Sessions counts the closed sessions a retention run deleted, or the sessions whose entry
	// context an erasure cleared.
	Sessions   int64      `json:"sessions"`
	Error      string     `json:"error,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// TableName is the deletions table of migration 00007.
func (Deletion) TableName() string { return "data_deletions" }

// BuyerSubject is the Subject of a buyer's erasure.
func BuyerSubject(buyerID int64) string { return "buyer:" + strconv.FormatInt(buyerID, 10) }

// Deletions is the record of deletions in the warm store.
type Deletions struct{ db *gorm.DB }

// NewDeletions returns the deletions record in db.
func NewDeletions(db *gorm.DB) *Deletions { return &Deletions{db: db} }

func (d *Deletions) start(ctx context.Context, rec *Deletion) error {
	rec.State, rec.StartedAt = DeletionRunning, time.Now().UTC()
	return unavailable(d.db.WithContext(ctx).Create(rec).Error)
}

// save writes the row's counts and state; it uses its own deadline so that a run stopped by its
// context still records how far it got.
func (d *Deletions) save(ctx context.Context, rec *Deletion) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return unavailable(d.db.WithContext(ctx).Save(rec).Error)
}

// finish records the end of a run: done, or failed with err.
func (d *Deletions) finish(ctx context.Context, rec *Deletion, err error) error {
	now := time.Now().UTC()
	rec.FinishedAt, rec.State, rec.Error = &now, DeletionDone, ""
	if err != nil {
		rec.State, rec.Error = DeletionFailed, err.Error()
	}
	return d.save(ctx, rec)
}

// List returns the shop's most recent deletions, newest first, at most limit (1 to 500).
func (d *Deletions) List(ctx context.Context, shopID int64, limit int) ([]Deletion, error) {
	if limit <= 0 || limit > 500 {
		limit = 500
	}
	var out []Deletion
	err := d.db.WithContext(ctx).Where("shop_id = ?", shopID).Order("id DESC").Limit(limit).Find(&out).Error
	return out, unavailable(err)
}

// HotEraser removes messages from the hot tier: session.RedisLog.
type HotEraser interface {
	// ExpireHot removes the conversation's warm-already messages created before t.
	ExpireHot(ctx context.Context, conversationID int64, t time.Time) (int64, error)
	// EraseHot removes the conversation's messages with seq <= upTo.
	EraseHot(ctx context.Context, conversationID, upTo int64) (int64, error)
}

// IndexEraser removes messages from the search index: search.Index.
type IndexEraser interface {
	DeleteBuyer(ctx context.Context, shopID, buyerID int64) (int64, error)
	DeleteBefore(ctx context.Context, shopID int64, before time.Time) (int64, error)
}

// PrivacyConfig wires retention and erasure to the tiers outside the warm store.
type PrivacyConfig struct {
	// Shops lists every shop id: the shops a retention run visits.
	Shops func(ctx context.Context) ([]int64, error)
	// Days returns a shop's retention in days; 0 means DefaultRetentionDays.
	Days func(ctx context.Context, shopID int64) (int, error)
	// Hot is the hot tier, nil when there is none (embedded mode: messages are warm when acknowledged).
	Hot HotEraser
	// Index returns the search index, or nil when this process has none open (the embedded index
	// belongs to the serving node): the index part of a deletion is then recorded as pending and
	// done by the next retention run of a process that has it.
	Index func() IndexEraser
	// Anonymize replaces an erased buyer's identity (agent.Store.AnonymizeBuyer).
	Anonymize func(ctx context.Context, shopID, buyerID int64) error
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Privacy applies retention and erasure to every tier: hot, warm, cold, the search index and the
// blob store, and records each deletion.
type Privacy struct {
	history   session.Log
	warm      *session.SQLLog
	store     *session.Store
	cold      *Cold
	blobs     Blobs
	deletions *Deletions
	cfg       PrivacyConfig
}

// NewPrivacy returns retention and erasure over the warm store db, the merged history (whose reads
// see every tier, and to which the erasure marker is appended), the cold tier and the blob store.
func NewPrivacy(db *gorm.DB, history session.Log, cold *Cold, blobs Blobs, cfg PrivacyConfig) (*Privacy, error) {
	if db == nil || history == nil || cold == nil || blobs == nil || cfg.Shops == nil {
		return nil, errors.New("privacy: needs a warm store, the history, the cold tier, a blob store and the shops")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Privacy{history: history, warm: session.NewSQLLog(db), store: session.NewStore(db), cold: cold, blobs: blobs,
		deletions: NewDeletions(db), cfg: cfg}, nil
}

// Deletions returns the record of deletions.
func (p *Privacy) Deletions() *Deletions { return p.deletions }

func (p *Privacy) index() IndexEraser {
	if p.cfg.Index == nil {
		return nil
	}
	return p.cfg.Index()
}

// Run applies retention over the run's scope (ScopeFrom; by default every shop by its own period):
// the Scheduler's "retention" job.
func (p *Privacy) Run(ctx context.Context) (JobResult, error) {
	return p.Retain(ctx, ScopeFrom(ctx))
}

// Retain applies retention over scope: for each shop, data created before its cutoff (now minus its
// retention days, or scope.Until) is deleted from every tier, and the deletion recorded. A failing
// shop is counted in Errors and the others go on. Processed counts the shops visited, Deleted the
// messages deleted from the warm and cold tiers.
func (p *Privacy) Retain(ctx context.Context, scope Scope) (JobResult, error) {
	var res JobResult
	now := p.cfg.Now().UTC()
	if scope.ShopID < 0 {
		return res, session.Errorf(session.EINVALID, "shop %d: want a positive id", scope.ShopID)
	}
	if scope.Until.After(now) {
		return res, session.Errorf(session.EINVALID, "retention cutoff %s is in the future", scope.Until.Format(time.RFC3339))
	}
	shops := []int64{scope.ShopID}
	if scope.ShopID == 0 {
		var err error
		if shops, err = p.cfg.Shops(ctx); err != nil {
			return res, err
		}
	}
	var errs []error
	if err := p.applyPendingIndex(ctx, scope.ShopID); err != nil {
		res.Errors++
		errs = append(errs, fmt.Errorf("pending index deletions: %w", err))
	}
	for _, shop := range shops {
		cutoff := scope.Until
		if cutoff.IsZero() {
			days := DefaultRetentionDays
			if p.cfg.Days != nil {
				d, err := p.cfg.Days(ctx, shop)
				if err != nil {
					res.Errors++
					errs = append(errs, fmt.Errorf("shop %d: retention days: %w", shop, err))
					continue
				}
				if d > 0 {
					days = d
				}
			}
			cutoff = now.AddDate(0, 0, -days)
		}
		res.Processed++
		rec, err := p.retainShop(ctx, shop, cutoff)
		res.Deleted += rec.WarmMessages + rec.ColdMessages
		if err != nil {
			if errors.Is(err, ErrLeaseLost) || ctx.Err() != nil {
				return res, err
			}
			res.Errors++
			errs = append(errs, fmt.Errorf("shop %d: %w", shop, err))
		}
	}
	return res, errors.Join(errs...)
}

// retainShop deletes the shop's data created before cutoff, tier by tier, saving the record's counts
// after each. A run that deleted nothing leaves no record.
func (p *Privacy) retainShop(ctx context.Context, shop int64, cutoff time.Time) (Deletion, error) {
	c := cutoff.UTC()
	rec := Deletion{ShopID: shop, Kind: DeletionRetention, Cutoff: &c, RequestedBy: "retention job"}
	if err := p.deletions.start(ctx, &rec); err != nil {
		return rec, err
	}
	err := p.retainTiers(ctx, &rec, c)
	if err == nil && rec.HotMessages+rec.WarmMessages+rec.ColdSegments+rec.IndexDocuments+rec.Blobs+rec.Sessions == 0 && !rec.IndexPending {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return rec, unavailable(p.deletions.db.WithContext(dctx).Delete(&Deletion{}, rec.ID).Error)
	}
	return rec, errors.Join(err, p.deletions.finish(ctx, &rec, err))
}

func (p *Privacy) retainTiers(ctx context.Context, rec *Deletion, cutoff time.Time) error {
	shop := rec.ShopID
	held := func() error {
		if !LeaseFrom(ctx).Held(ctx) {
			return ErrLeaseLost
		}
		return nil
	}
	// Hot first: its copies are warm already (ExpireHot takes only those), so nothing is lost if the
	// run stops before the warm step.
	if p.cfg.Hot != nil {
		for after := int64(0); ; {
			ids, err := p.store.ConversationsCreatedBefore(ctx, shop, cutoff, after, 500)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if err := held(); err != nil {
					return err
				}
				n, err := p.cfg.Hot.ExpireHot(ctx, id, cutoff)
				rec.HotMessages += n
				if err != nil {
					return err
				}
				after = id
			}
			if len(ids) < 500 {
				break
			}
		}
		if err := p.deletions.save(ctx, rec); err != nil {
			return err
		}
	}
	for {
		keys, blobKeys, err := p.warm.ExpiredMessages(ctx, shop, cutoff, 2000)
		if err != nil || len(keys) == 0 {
			if err != nil {
				return err
			}
			break
		}
		if err := held(); err != nil {
			return err
		}
		n, err := p.warm.DeleteMessages(ctx, keys)
		rec.WarmMessages += n
		if err != nil {
			return err
		}
		// The messages' uploads go with them; one the run stops before is found by its month below.
		if err := p.deleteUploads(ctx, rec, blobKeys); err != nil {
			return err
		}
		if err := p.deletions.save(ctx, rec); err != nil {
			return err
		}
	}
	for {
		if err := held(); err != nil {
			return err
		}
		n, err := p.store.DeleteClosedSessionsBefore(ctx, shop, cutoff, 1000)
		rec.Sessions += n
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	// The uploads of the cold messages about to expire go first: once a segment's object is gone,
	// only the month rule below could find them.
	expiring, err := p.cold.manifest.expiring(ctx, shop, cutoff)
	if err != nil {
		return unavailable(err)
	}
	for _, segRec := range expiring {
		seg, _, err := fetchSegment(ctx, p.cold.blobs, segRec)
		if err != nil {
			return err
		}
		var keys []string
		for _, m := range seg.Messages {
			if m.Body.BlobKey != "" {
				keys = append(keys, m.Body.BlobKey)
			}
		}
		if err := p.deleteUploads(ctx, rec, keys); err != nil {
			return err
		}
	}
	cold, err := p.cold.Expire(ctx, shop, cutoff)
	rec.ColdSegments += int64(cold.Segments)
	rec.ColdMessages += cold.Messages
	if err != nil {
		return err
	}
	if err := p.deletions.save(ctx, rec); err != nil {
		return err
	}
	if idx := p.index(); idx == nil {
		rec.IndexPending = true
	} else {
		if err := held(); err != nil {
			return err
		}
		n, err := idx.DeleteBefore(ctx, shop, cutoff)
		rec.IndexDocuments += n
		if err != nil {
			return err
		}
	}
	return p.expireUploads(ctx, rec, cutoff)
}

// deleteUploads deletes the given blobs that are uploads of the record's shop.
func (p *Privacy) deleteUploads(ctx context.Context, rec *Deletion, keys []string) error {
	prefix := session.UploadPrefix(rec.ShopID)
	for _, key := range keys {
		if !strings.HasPrefix(key, prefix) || CheckKey(key) != nil {
			continue
		}
		if !LeaseFrom(ctx).Held(ctx) {
			return ErrLeaseLost
		}
		if _, err := p.blobs.Stat(ctx, key); errors.Is(err, ErrNotFound) {
			continue
		}
		if err := p.blobs.Delete(ctx, key); err != nil {
			return unavailable(err)
		}
		rec.Blobs++
	}
	return nil
}

// expireUploads deletes the shop's uploads of every month that ended before cutoff: uploads are kept
// under uploads/<shop>/<yyyy>/<mm>/, and an upload is sent right after it is made, so its month is
// its messages' month. Uploads never sent are removed by the same rule.
func (p *Privacy) expireUploads(ctx context.Context, rec *Deletion, cutoff time.Time) error {
	prefix := session.UploadPrefix(rec.ShopID)
	objs, err := p.blobs.List(ctx, prefix)
	if err != nil {
		return unavailable(err)
	}
	var old []string
	for _, o := range objs {
		parts := strings.SplitN(strings.TrimPrefix(o.Key, prefix), "/", 3)
		if len(parts) < 3 {
			continue
		}
		month, err := time.Parse("2006/01", parts[0]+"/"+parts[1])
		if err != nil {
			continue
		}
		if !month.AddDate(0, 1, 0).After(cutoff) {
			old = append(old, o.Key)
		}
	}
	if err := p.deleteUploads(ctx, rec, old); err != nil {
		return err
	}
	return p.deletions.save(ctx, rec)
}

// applyPendingIndex does the index part of recorded deletions that a process without the index ran
// (shopID 0: every shop's).
func (p *Privacy) applyPendingIndex(ctx context.Context, shopID int64) error {
	idx := p.index()
	if idx == nil {
		return nil
	}
	q := p.deletions.db.WithContext(ctx).Where("index_pending = ?", true)
	if shopID != 0 {
		q = q.Where("shop_id = ?", shopID)
	}
	var recs []Deletion
	if err := q.Order("id").Limit(1000).Find(&recs).Error; err != nil {
		return unavailable(err)
	}
	for i := range recs {
		rec := &recs[i]
		if !LeaseFrom(ctx).Held(ctx) {
			return ErrLeaseLost
		}
		var n int64
		var err error
		switch {
		case rec.Kind == DeletionRetention && rec.Cutoff != nil:
			n, err = idx.DeleteBefore(ctx, rec.ShopID, *rec.Cutoff)
		case rec.Kind == DeletionErasure && strings.HasPrefix(rec.Subject, "buyer:"):
			buyer, perr := strconv.ParseInt(strings.TrimPrefix(rec.Subject, "buyer:"), 10, 64)
			if perr != nil {
				continue
			}
			n, err = idx.DeleteBuyer(ctx, rec.ShopID, buyer)
		default:
			continue
		}
		if err != nil {
			return err
		}
		rec.IndexDocuments += n
		rec.IndexPending = false
		if err := p.deletions.save(ctx, rec); err != nil {
			return err
		}
	}
	return nil
}

// ErasureRequest asks for a buyer's data to be erased.
type ErasureRequest struct {
	ShopID  int64
	BuyerID int64
	// Reason is recorded with the deletion (the request's reference, the law invoked).
	Reason string
	// RequestedBy says who asked, e.g. "staff:7".
	RequestedBy string
}

// ErasedEvent is the Event of the system message an erasure leaves at the end of the conversation.
const ErasedEvent = "erased"

// EraseBuyer erases the buyer's conversation with the shop from every tier: the buyer's uploads, the
// hot, warm and cold messages (cold segments are rewritten without them), the search index; then
// the conversation's and sessions' record of where the buyer came from, and the buyer's identity
// (cfg.Anonymize). Every message of the conversation goes, the staff's replies too: they are part of
// the buyer's data. The conversation and session rows stay (they hold the seq counter and the
// service statistics), and a system message with event "erased" is appended, so a device paging
// the history finds one explained marker after the gap. Running it again finishes a stopped erasure.
// The buyer must belong to the shop: the caller checks it.
func (p *Privacy) EraseBuyer(ctx context.Context, req ErasureRequest) (*Deletion, error) {
	if req.ShopID <= 0 || req.BuyerID <= 0 {
		return nil, session.Errorf(session.EINVALID, "erasure needs a shop and a buyer")
	}
	if len(req.Reason) > 512 {
		return nil, session.Errorf(session.EINVALID, "reason is limited to 512 bytes")
	}
	rec := &Deletion{ShopID: req.ShopID, Kind: DeletionErasure, Subject: BuyerSubject(req.BuyerID), Reason: req.Reason, RequestedBy: req.RequestedBy}
	conv, err := p.store.ConversationOfBuyer(ctx, req.ShopID, req.BuyerID)
	if err != nil && session.ErrorCode(err) != session.ENOTFOUND {
		return nil, err
	}
	if err := p.deletions.start(ctx, rec); err != nil {
		return nil, err
	}
	err = p.erase(ctx, rec, req, conv)
	return rec, errors.Join(err, p.deletions.finish(ctx, rec, err))
}

func (p *Privacy) erase(ctx context.Context, rec *Deletion, req ErasureRequest, conv *session.Conversation) error {
	if conv != nil {
		upTo, err := p.history.LastSeq(ctx, conv.ID)
		if err != nil {
			return err
		}
		// The marker a previous erasure left last stays: a rerun erases what came before it.
		if tail, err := p.history.Before(ctx, conv.ID, upTo+1, 1); err != nil {
			return err
		} else if len(tail) == 1 && isErasedMarker(tail[0]) {
			upTo = tail[0].Seq - 1
		}
		// The buyer's uploads are found through their messages, so they go before the messages.
		var uploads []string
		for after := int64(0); after < upTo; {
			page, err := p.history.After(ctx, conv.ID, after, 500)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				break
			}
			for _, m := range page {
				if m.SenderKind == session.PartyBuyer && m.Body.BlobKey != "" && m.Seq <= upTo {
					uploads = append(uploads, m.Body.BlobKey)
				}
			}
			after = page[len(page)-1].Seq
		}
		if err := p.deleteUploads(ctx, rec, uploads); err != nil {
			return err
		}
		if p.cfg.Hot != nil {
			n, err := p.cfg.Hot.EraseHot(ctx, conv.ID, upTo)
			rec.HotMessages += n
			if err != nil {
				return err
			}
		}
		n, err := p.warm.DeleteConversationMessages(ctx, conv.ID, upTo)
		rec.WarmMessages += n
		if err != nil {
			return err
		}
		if err := p.deletions.save(ctx, rec); err != nil {
			return err
		}
		cold, err := p.cold.Erase(ctx, req.ShopID, []int64{conv.ID})
		rec.ColdSegments += int64(cold.Rewritten)
		rec.ColdMessages += cold.Messages
		if err != nil {
			return err
		}
		if err := p.deletions.save(ctx, rec); err != nil {
			return err
		}
		if err := p.eraseIndex(ctx, rec, req); err != nil {
			return err
		}
		// A flush that read the hot copy before it went may have written it to the warm store since,
		// and an index batch that read it there to the index (the caller normally keeps both jobs
		// from running meanwhile: this is for an erasure that outlived that hold).
		if n, err = p.warm.DeleteConversationMessages(ctx, conv.ID, upTo); err != nil {
			return err
		}
		rec.WarmMessages += n
		if n > 0 {
			if err := p.eraseIndex(ctx, rec, req); err != nil {
				return err
			}
		}
		n, err = p.store.ForgetContexts(ctx, conv.ID)
		rec.Sessions += n
		if err != nil {
			return err
		}
	} else if err := p.eraseIndex(ctx, rec, req); err != nil {
		return err
	}
	if p.cfg.Anonymize != nil {
		if err := p.cfg.Anonymize(ctx, req.ShopID, req.BuyerID); err != nil {
			return err
		}
	}
	if conv == nil {
		return nil
	}
	// One marker per erasure: a rerun that finds the marker last adds no other.
	if last, err := p.history.LastSeq(ctx, conv.ID); err != nil {
		return err
	} else if tail, err := p.history.Before(ctx, conv.ID, last+1, 1); err != nil {
		return err
	} else if len(tail) == 1 && isErasedMarker(tail[0]) {
		return nil
	}
	now := p.cfg.Now().UTC()
	_, _, err := p.history.Append(ctx, session.Message{ConversationID: conv.ID, ClientMsgID: "sys-erased-" + strconv.FormatInt(rec.ID, 10),
		ShopID: conv.ShopID, SenderKind: session.PartySystem,
		Body:      session.Body{Type: session.TypeSystem, Event: ErasedEvent, Text: "The buyer's messages were erased on request."},
		CreatedAt: now})
	return err
}

func isErasedMarker(m session.Message) bool {
	return m.SenderKind == session.PartySystem && m.Body.Type == session.TypeSystem && m.Body.Event == ErasedEvent
}

func (p *Privacy) eraseIndex(ctx context.Context, rec *Deletion, req ErasureRequest) error {
	idx := p.index()
	if idx == nil {
		rec.IndexPending = true
		return nil
	}
	n, err := idx.DeleteBuyer(ctx, req.ShopID, req.BuyerID)
	rec.IndexDocuments += n
	return err
}
