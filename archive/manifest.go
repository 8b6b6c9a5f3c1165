package archive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/shopdesk/shopdesk/session"
)

// Segment states in the manifest.
const (
	// StateWritten: the object is stored and verified; warm rows it holds may still exist.
	StateWritten = "written"
	// StateDone: the warm rows the segment holds have been deleted.
	StateDone = "done"
	// StateExpired: the segment passed its shop's retention; its object is deleted and the row stays
	// as the record of the deletion.
	StateExpired = "expired"
)

// SegmentRecord is a segment's manifest row.
type SegmentRecord struct {
	ID           int64          `json:"id" gorm:"primaryKey;autoIncrement"`
	ShopID       int64          `json:"shop_id"`
	Period       string         `json:"period"`
	Part         int            `json:"part"`
	Generation   int            `json:"generation"`
	ObjectKey    string         `json:"object_key"`
	MessageCount int64          `json:"message_count"`
	SizeBytes    int64          `json:"size_bytes"`
	Checksum     string         `json:"checksum"`
	FirstTime    time.Time      `json:"first_time"`
	LastTime     time.Time      `json:"last_time"`
	State        string         `json:"state"`
	CreatedAt    time.Time      `json:"created_at"`
	RewrittenAt  *time.Time     `json:"rewritten_at,omitempty"`
	Ranges       []SegmentRange `json:"ranges,omitempty" gorm:"-"`
}

// TableName is the manifest's table.
func (SegmentRecord) TableName() string { return "cold_segments" }

// SegmentRange says which seqs of one conversation a segment holds: MessageCount of them between
// FirstSeq and LastSeq.
type SegmentRange struct {
	SegmentID      int64 `json:"-" gorm:"primaryKey;autoIncrement:false"`
	ConversationID int64 `json:"conversation_id" gorm:"primaryKey;autoIncrement:false"`
	FirstSeq       int64 `json:"first_seq"`
	LastSeq        int64 `json:"last_seq"`
	MessageCount   int64 `json:"message_count"`
}

// TableName is the table of the manifest's seq ranges.
func (SegmentRange) TableName() string { return "cold_segment_ranges" }

// Manifest is the record of every cold segment, kept in the warm store's database.
type Manifest struct {
	db *gorm.DB
}

// NewManifest returns the manifest in db, which must be migrated (migration 00003).
func NewManifest(db *gorm.DB) *Manifest { return &Manifest{db: db} }

// ErrManifestConflict is wrapped when the manifest already records a different object for a part.
var ErrManifestConflict = errors.New("manifest conflict")

// Record adds rec and its ranges in one transaction, as the segment that now holds the warm messages
// named by warm. Recording the same object again (a rerun after a crash) returns the stored row. It
// refuses with ErrManifestConflict, recording nothing, when the part already holds another object,
// when another segment of the shop is recorded but its warm rows not yet deleted, or when any of
// the warm messages is gone: each means another run archived them first (two runs whose leases
// overlapped), and recording would hold a message twice.
func (m *Manifest) Record(ctx context.Context, rec SegmentRecord, warm []session.MessageKey) (SegmentRecord, error) {
	rec.ID = 0
	ranges := rec.Ranges
	err := m.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var got SegmentRecord
		res := tx.Where("shop_id = ? AND period = ? AND part = ?", rec.ShopID, rec.Period, rec.Part).Limit(1).Find(&got)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected > 0 {
			if got.ObjectKey != rec.ObjectKey || got.Checksum != rec.Checksum {
				return fmt.Errorf("%w: shop %d period %s part %d holds %s, not %s", ErrManifestConflict,
					rec.ShopID, rec.Period, rec.Part, got.ObjectKey, rec.ObjectKey)
			}
			rec = got
			return nil
		}
		// A locking read: a concurrent Record for the shop waits here until this one commits, then
		// sees its row.
		var open []SegmentRecord
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("shop_id = ? AND state = ?", rec.ShopID, StateWritten).Find(&open).Error
		if err != nil {
			return err
		}
		if len(open) > 0 {
			return fmt.Errorf("%w: segment %s of shop %d still has warm rows to delete", ErrManifestConflict, open[0].ObjectKey, rec.ShopID)
		}
		if n, err := session.NewSQLLog(tx).CountMessages(ctx, warm); err != nil {
			return err
		} else if n != int64(len(warm)) {
			return fmt.Errorf("%w: %d of the segment's %d messages are no longer warm", ErrManifestConflict, int64(len(warm))-n, len(warm))
		}
		if err := tx.Omit("Ranges").Create(&rec).Error; err != nil {
			return err
		}
		for i := range ranges {
			ranges[i].SegmentID = rec.ID
		}
		if len(ranges) > 0 {
			if err := tx.CreateInBatches(ranges, 500).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return SegmentRecord{}, fmt.Errorf("manifest: record segment %s: %w", rec.ObjectKey, err)
	}
	rec.Ranges = ranges
	return rec, nil
}

// NextPart returns the first part number of the shop's period not yet in the manifest.
func (m *Manifest) NextPart(ctx context.Context, shopID int64, period string) (int, error) {
	var last *int
	err := m.db.WithContext(ctx).Model(&SegmentRecord{}).Where("shop_id = ? AND period = ?", shopID, period).
		Select("MAX(part)").Scan(&last).Error
	if err != nil {
		return 0, fmt.Errorf("manifest: next part: %w", err)
	}
	if last == nil {
		return 0, nil
	}
	return *last + 1, nil
}

// Pending returns the shop's segments whose warm rows may not all be deleted yet, oldest first.
func (m *Manifest) Pending(ctx context.Context, shopID int64) ([]SegmentRecord, error) {
	var out []SegmentRecord
	err := m.db.WithContext(ctx).Where("shop_id = ? AND state = ?", shopID, StateWritten).Order("id").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("manifest: pending segments: %w", err)
	}
	return out, nil
}

// PendingShops returns the shops that have segments whose warm rows may not all be deleted yet, in
// id order.
func (m *Manifest) PendingShops(ctx context.Context) ([]int64, error) {
	var out []int64
	err := m.db.WithContext(ctx).Model(&SegmentRecord{}).Where("state = ?", StateWritten).Distinct().Order("shop_id").Pluck("shop_id", &out).Error
	if err != nil {
		return nil, fmt.Errorf("manifest: shops with pending segments: %w", err)
	}
	return out, nil
}

// MarkDone records that the segment's warm rows are deleted.
func (m *Manifest) MarkDone(ctx context.Context, id int64) error {
	err := m.db.WithContext(ctx).Model(&SegmentRecord{}).Where("id = ?", id).Update("state", StateDone).Error
	if err != nil {
		return fmt.Errorf("manifest: mark segment %d done: %w", id, err)
	}
	return nil
}

// Segments returns the shop's segments with their ranges, in (period, part) order; shopID 0 means
// every shop.
func (m *Manifest) Segments(ctx context.Context, shopID int64) ([]SegmentRecord, error) {
	q := m.db.WithContext(ctx).Order("shop_id, period, part")
	if shopID != 0 {
		q = q.Where("shop_id = ?", shopID)
	}
	var out []SegmentRecord
	if err := q.Find(&out).Error; err != nil {
		return nil, fmt.Errorf("manifest: list segments: %w", err)
	}
	return out, m.withRanges(ctx, out)
}

// ForConversation returns the segments holding any of the conversation's seqs in [from, to], in
// first-seq order, each with only that conversation's range.
func (m *Manifest) ForConversation(ctx context.Context, conversationID, from, to int64) ([]SegmentRecord, error) {
	// One query, the ranges joined to their segments: every cold read asks this first, and a
	// cached page is otherwise only memory.
	var rows []struct {
		SegmentRecord
		RConversationID int64
		RFirstSeq       int64
		RLastSeq        int64
		RMessageCount   int64
	}
	err := m.db.WithContext(ctx).Table("cold_segment_ranges AS r").
		Select("s.*, r.conversation_id AS r_conversation_id, r.first_seq AS r_first_seq, r.last_seq AS r_last_seq, r.message_count AS r_message_count").
		Joins("JOIN cold_segments s ON s.id = r.segment_id").
		Where("r.conversation_id = ? AND r.last_seq >= ? AND r.first_seq <= ?", conversationID, from, to).
		Order("r.first_seq").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("manifest: segments of conversation %d: %w", conversationID, err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	out := make([]SegmentRecord, len(rows))
	for i, r := range rows {
		out[i] = r.SegmentRecord
		out[i].Ranges = []SegmentRange{{SegmentID: r.ID, ConversationID: r.RConversationID, FirstSeq: r.RFirstSeq,
			LastSeq: r.RLastSeq, MessageCount: r.RMessageCount}}
	}
	return out, nil
}

// Replace switches a segment's row to a rewritten object, only if the row is still at old's
// generation; ok is false when someone else changed it first.
func (m *Manifest) Replace(ctx context.Context, old, rec SegmentRecord) (ok bool, err error) {
	now := time.Now().UTC()
	err = m.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&SegmentRecord{}).Where("id = ? AND generation = ?", old.ID, old.Generation).Updates(map[string]any{
			"generation": rec.Generation, "object_key": rec.ObjectKey, "message_count": rec.MessageCount,
			"size_bytes": rec.SizeBytes, "checksum": rec.Checksum, "first_time": rec.FirstTime.UTC(),
			"last_time": rec.LastTime.UTC(), "rewritten_at": now,
		})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		ok = true
		if err := tx.Where("segment_id = ?", old.ID).Delete(&SegmentRange{}).Error; err != nil {
			return err
		}
		ranges := rec.Ranges
		for i := range ranges {
			ranges[i].SegmentID = old.ID
		}
		if len(ranges) > 0 {
			return tx.CreateInBatches(ranges, 500).Error
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("manifest: replace segment %d: %w", old.ID, err)
	}
	return ok, nil
}

// segmentsOf returns the shop's segments holding any of the conversations, by id.
func (m *Manifest) segmentsOf(ctx context.Context, shopID int64, conversationIDs []int64) ([]SegmentRecord, error) {
	var ids []int64
	err := m.db.WithContext(ctx).Model(&SegmentRange{}).Distinct("segment_id").
		Where("conversation_id IN ?", conversationIDs).Pluck("segment_id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("manifest: segments of conversations: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	var out []SegmentRecord
	if err := m.db.WithContext(ctx).Where("id IN ? AND shop_id = ?", ids, shopID).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("manifest: segments of conversations: %w", err)
	}
	return out, nil
}

func (m *Manifest) withRanges(ctx context.Context, recs []SegmentRecord) error {
	if len(recs) == 0 {
		return nil
	}
	idx := make(map[int64]int, len(recs))
	ids := make([]int64, len(recs))
	for i, r := range recs {
		idx[r.ID], ids[i] = i, r.ID
	}
	var rs []SegmentRange
	if err := m.db.WithContext(ctx).Where("segment_id IN ?", ids).Order(clause.OrderByColumn{Column: clause.Column{Name: "first_seq"}}).Find(&rs).Error; err != nil {
		return fmt.Errorf("manifest: ranges: %w", err)
	}
	for _, r := range rs {
		i := idx[r.SegmentID]
		recs[i].Ranges = append(recs[i].Ranges, r)
	}
	return nil
}

// ColdStats is the size of the cold tier, for `shopdesk archive status`; expired segments are not
// counted.
type ColdStats struct {
	Segments int64 `json:"segments"`
	Messages int64 `json:"messages"`
	Bytes    int64 `json:"bytes"`
	// Pending counts segments whose warm rows are not yet all deleted.
	Pending int64 `json:"pending"`
}

// Stats sums the manifest.
func (m *Manifest) Stats(ctx context.Context) (ColdStats, error) {
	var s ColdStats
	err := m.db.WithContext(ctx).Model(&SegmentRecord{}).Where("state <> ?", StateExpired).
		Select("COUNT(*) AS segments, COALESCE(SUM(message_count), 0) AS messages, COALESCE(SUM(size_bytes), 0) AS bytes, "+
			"COALESCE(SUM(CASE WHEN state = ? THEN 1 ELSE 0 END), 0) AS pending", StateWritten).Scan(&s).Error
	if err != nil {
		return ColdStats{}, fmt.Errorf("manifest: stats: %w", err)
	}
	return s, nil
}

// expire marks a segment expired and drops its ranges, so readers no longer find it; ok is false
// when the row changed since it was read.
func (m *Manifest) expire(ctx context.Context, rec SegmentRecord) (ok bool, err error) {
	err = m.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&SegmentRecord{}).Where("id = ? AND generation = ? AND state = ?", rec.ID, rec.Generation, StateDone).
			Updates(map[string]any{"state": StateExpired, "rewritten_at": time.Now().UTC()})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		ok = true
		return tx.Where("segment_id = ?", rec.ID).Delete(&SegmentRange{}).Error
	})
	if err != nil {
		return false, fmt.Errorf("manifest: expire segment %d: %w", rec.ID, err)
	}
	return ok, nil
}

// expiring returns the shop's done segments whose newest message is older than before. A segment
// whose warm rows are not yet deleted waits for the archive job first.
func (m *Manifest) expiring(ctx context.Context, shopID int64, before time.Time) ([]SegmentRecord, error) {
	var out []SegmentRecord
	err := m.db.WithContext(ctx).Where("shop_id = ? AND last_time < ? AND state = ?", shopID, before.UTC(), StateDone).
		Order("id").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("manifest: expiring segments: %w", err)
	}
	return out, nil
}
