package session

import (
	"context"
	"slices"
	"time"

	"gorm.io/gorm"
)

// MessageKey names one message: (conversation, seq).
type MessageKey struct {
	ConversationID int64 `json:"conversation_id"`
	Seq            int64 `json:"seq"`
}

// ShopsWithMessagesBefore returns the shops that have warm messages created before t, in id order:
// the candidates of the archive job.
func (l *SQLLog) ShopsWithMessagesBefore(ctx context.Context, t time.Time) ([]int64, error) {
	var ids []int64
	err := l.db.WithContext(ctx).Model(&Message{}).Distinct("shop_id").Where("created_at < ?", t.UTC()).
		Order("shop_id").Pluck("shop_id", &ids).Error
	return ids, unavailable(err, "list shops with old messages")
}

// OldestMessageTime returns when the shop's oldest warm message was created; ok is false when the
// shop has none.
func (l *SQLLog) OldestMessageTime(ctx context.Context, shopID int64) (t time.Time, ok bool, err error) {
	var m Message
	res := l.db.WithContext(ctx).Where("shop_id = ?", shopID).Order("created_at").Limit(1).Find(&m)
	if res.Error != nil {
		return time.Time{}, false, unavailable(res.Error, "read oldest message")
	}
	if res.RowsAffected == 0 {
		return time.Time{}, false, nil
	}
	return m.CreatedAt.UTC(), true, nil
}

// MessagesBetween returns up to limit of the shop's warm messages created in [from, to), oldest
// first (ties by conversation and seq): the same rows in the same order every time the range is
// unchanged. The order is the (shop_id, created_at) index's, so a part is read without a sort.
func (l *SQLLog) MessagesBetween(ctx context.Context, shopID int64, from, to time.Time, limit int) ([]Message, error) {
	if limit <= 0 {
		return nil, Errorf(EINVALID, "limit %d: want a positive number", limit)
	}
	var out []Message
	err := l.db.WithContext(ctx).Where("shop_id = ? AND created_at >= ? AND created_at < ?", shopID, from.UTC(), to.UTC()).
		Order("created_at, conversation_id, seq").Limit(limit).Find(&out).Error
	return out, unavailable(err, "read messages to archive")
}

// DeleteMessages deletes the given messages from the warm store, the last step of moving them to the
// cold tier, and returns how many rows it removed; keys already gone are not an error.
func (l *SQLLog) DeleteMessages(ctx context.Context, keys []MessageKey) (int64, error) {
	byConv := groupByConversation(keys)
	convs := make([]int64, 0, len(byConv))
	for conv := range byConv {
		convs = append(convs, conv)
	}
	slices.Sort(convs) // one lock order for concurrent deleters
	var deleted int64
	// One transaction, so one commit (one log flush) for the call instead of one per conversation:
	// that made the deletes the slowest step of the archive job.
	err := l.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		deleted = 0
		for _, conv := range convs {
			seqs := byConv[conv]
			for len(seqs) > 0 {
				n := min(len(seqs), 500)
				res := tx.Where("conversation_id = ? AND seq IN ?", conv, seqs[:n]).Delete(&Message{})
				if res.Error != nil {
					return res.Error
				}
				deleted += res.RowsAffected
				seqs = seqs[n:]
			}
		}
		return nil
	})
	if err != nil {
		return 0, unavailable(err, "delete archived messages")
	}
	return deleted, nil
}

// WarmFloor returns the lowest seq of the conversation still in the warm store, 0 when it has none
// there: history below it is in the cold tier.
func (l *SQLLog) WarmFloor(ctx context.Context, conversationID int64) (int64, error) {
	var floor *int64
	err := l.db.WithContext(ctx).Model(&Message{}).Where("conversation_id = ?", conversationID).
		Select("MIN(seq)").Scan(&floor).Error
	if err != nil {
		return 0, unavailable(err, "read warm floor")
	}
	if floor == nil {
		return 0, nil
	}
	return *floor, nil
}

// CountMessages returns how many of the given messages are in the warm store.
func (l *SQLLog) CountMessages(ctx context.Context, keys []MessageKey) (int64, error) {
	var total int64
	for conv, seqs := range groupByConversation(keys) {
		for len(seqs) > 0 {
			n := min(len(seqs), 500)
			var c int64
			err := l.db.WithContext(ctx).Model(&Message{}).Where("conversation_id = ? AND seq IN ?", conv, seqs[:n]).Count(&c).Error
			if err != nil {
				return 0, unavailable(err, "count archived messages")
			}
			total += c
			seqs = seqs[n:]
		}
	}
	return total, nil
}

func groupByConversation(keys []MessageKey) map[int64][]int64 {
	out := map[int64][]int64{}
	for _, k := range keys {
		out[k.ConversationID] = append(out[k.ConversationID], k.Seq)
	}
	return out
}

// MessageCursor is a place in a shop's warm messages in (created_at, conversation, seq) order.
type MessageCursor struct {
	CreatedAt      time.Time `json:"created_at"`
	ConversationID int64     `json:"conversation_id"`
	Seq            int64     `json:"seq"`
}

// MessagesAfter returns up to limit of the shop's warm messages after the cursor in (created_at,
// conversation, seq) order: a scan that never stalls on many messages of one instant. A non-zero
// before leaves out messages created at or after it: the caller's bound below which no message can
// still arrive (see WarmBefore), so that a cursor moved past the result never skips one.
func (l *SQLLog) MessagesAfter(ctx context.Context, shopID int64, c MessageCursor, before time.Time, limit int) ([]Message, error) {
	if limit <= 0 {
		return nil, Errorf(EINVALID, "limit %d: want a positive number", limit)
	}
	var out []Message
	err := l.after(ctx, shopID, c, before).Order("created_at, conversation_id, seq").Limit(limit).Find(&out).Error
	return out, unavailable(err, "read messages to index")
}

// CountMessagesAfter counts the shop's warm messages after the cursor (MessagesAfter's, unbounded).
func (l *SQLLog) CountMessagesAfter(ctx context.Context, shopID int64, c MessageCursor) (int64, error) {
	var n int64
	err := l.after(ctx, shopID, c, time.Time{}).Count(&n).Error
	return n, unavailable(err, "count messages to index")
}

// after selects the shop's warm messages after c in (created_at, conversation, seq) order, created
// before before unless it is zero.
func (l *SQLLog) after(ctx context.Context, shopID int64, c MessageCursor, before time.Time) *gorm.DB {
	t := c.CreatedAt.UTC()
	q := l.db.WithContext(ctx).Model(&Message{}).Where("shop_id = ? AND created_at >= ?", shopID, t).
		Where("created_at > ? OR conversation_id > ? OR (conversation_id = ? AND seq > ?)", t, c.ConversationID, c.ConversationID, c.Seq)
	if !before.IsZero() {
		q = q.Where("created_at < ?", before.UTC())
	}
	return q
}

// AppendGrace bounds how long after taking its created_at a message may reach its log: a send
// queued behind others, a transaction that commits late, a node's clock ahead of another's. Readers
// that follow the warm store in created_at order stay this far behind what they can see.
const AppendGrace = 3 * time.Second

// WarmBefore returns a time before which every message of the log is in the warm store: the SQL log
// is the warm store, so only messages still being appended, AppendGrace, can be missing.
func (l *SQLLog) WarmBefore(context.Context) (time.Time, error) {
	return time.Now().Add(-AppendGrace), nil
}
