package session

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Deletions of history for retention and erasure. They are the only writes that remove stored
// messages other than the archive job's move to the cold tier; each is idempotent, so a run that
// stopped midway is finished by running it again.

// ExpiredMessages returns up to limit keys of the shop's warm messages created before t, oldest first,
// with the blob keys their bodies reference: one batch of a retention run.
func (l *SQLLog) ExpiredMessages(ctx context.Context, shopID int64, t time.Time, limit int) ([]MessageKey, []string, error) {
	if limit <= 0 {
		return nil, nil, Errorf(EINVALID, "limit %d: want a positive number", limit)
	}
	var msgs []Message
	err := l.db.WithContext(ctx).Where("shop_id = ? AND created_at < ?", shopID, t.UTC()).
		Order("created_at, conversation_id, seq").Limit(limit).Find(&msgs).Error
	if err != nil {
		return nil, nil, unavailable(err, "read expired messages")
	}
	var blobs []string
	for _, m := range msgs {
		if m.Body.BlobKey != "" {
			blobs = append(blobs, m.Body.BlobKey)
		}
	}
	return messageKeysOf(msgs), blobs, nil
}

func messageKeysOf(msgs []Message) []MessageKey {
	keys := make([]MessageKey, len(msgs))
	for i, m := range msgs {
		keys[i] = MessageKey{ConversationID: m.ConversationID, Seq: m.Seq}
	}
	return keys
}

// DeleteConversationMessages deletes the conversation's warm messages with seq <= upTo (an erasure)
// in batches, and returns how many rows it removed.
func (l *SQLLog) DeleteConversationMessages(ctx context.Context, conversationID, upTo int64) (int64, error) {
	var total int64
	for {
		var seqs []int64
		err := l.db.WithContext(ctx).Model(&Message{}).Where("conversation_id = ? AND seq <= ?", conversationID, upTo).
			Order("seq").Limit(1000).Pluck("seq", &seqs).Error
		if err != nil {
			return total, unavailable(err, "read messages to erase")
		}
		if len(seqs) == 0 {
			return total, nil
		}
		res := l.db.WithContext(ctx).Where("conversation_id = ? AND seq IN ?", conversationID, seqs).Delete(&Message{})
		if res.Error != nil {
			return total, unavailable(res.Error, "erase messages")
		}
		total += res.RowsAffected
	}
}

// ConversationsCreatedBefore returns up to limit ids above afterID of the shop's conversations
// created before t, in id order: only they can hold messages older than t.
func (s *Store) ConversationsCreatedBefore(ctx context.Context, shopID int64, t time.Time, afterID int64, limit int) ([]int64, error) {
	var ids []int64
	err := s.db.WithContext(ctx).Model(&Conversation{}).Where("shop_id = ? AND created_at < ? AND id > ?", shopID, t.UTC(), afterID).
		Order("id").Limit(limit).Pluck("id", &ids).Error
	return ids, unavailable(err, "list old conversations")
}

// ConversationOfBuyer returns the buyer's conversation with the shop; ENOTFOUND when they have none.
func (s *Store) ConversationOfBuyer(ctx context.Context, shopID, buyerID int64) (*Conversation, error) {
	var out []Conversation
	err := s.db.WithContext(ctx).Where("shop_id = ? AND buyer_id = ?", shopID, buyerID).Limit(1).Find(&out).Error
	if err != nil {
		return nil, unavailable(err, "find conversation")
	}
	if len(out) == 0 {
		return nil, Errorf(ENOTFOUND, "buyer %d has no conversation", buyerID)
	}
	return &out[0], nil
}

// DeleteClosedSessionsBefore deletes up to limit of the shop's sessions closed before t (retention)
// and returns how many it removed. Open and queued sessions are never deleted.
func (s *Store) DeleteClosedSessionsBefore(ctx context.Context, shopID int64, t time.Time, limit int) (int64, error) {
	var ids []int64
	err := s.db.WithContext(ctx).Model(&Session{}).Where("shop_id = ? AND state = ? AND closed_at < ?", shopID, StateClosed, t.UTC()).
		Order("id").Limit(limit).Pluck("id", &ids).Error
	if err != nil || len(ids) == 0 {
		return 0, unavailable(err, "list expired sessions")
	}
	res := s.db.WithContext(ctx).Where("id IN ? AND state = ?", ids, StateClosed).Delete(&Session{})
	return res.RowsAffected, unavailable(res.Error, "delete expired sessions")
}

// ForgetContexts clears what the conversation and its sessions recorded of where the buyer came
// from (product, order, page) and the buyer's rating comments: the erasure of a buyer keeps these
// rows, which hold the seq counter and the service statistics, without the buyer's data.
func (s *Store) ForgetContexts(ctx context.Context, conversationID int64) (int64, error) {
	db := s.db.WithContext(ctx)
	err := db.Model(&Conversation{}).Where("id = ?", conversationID).Update("context", "{}").Error
	if err != nil {
		return 0, unavailable(err, "forget conversation context")
	}
	res := db.Model(&Session{}).Where("conversation_id = ?", conversationID).
		Updates(map[string]any{"context": "{}", "rating_comment": ""})
	return res.RowsAffected, unavailable(res.Error, "forget session contexts")
}

// ExpireHot removes from the hot tier the conversation's messages created before t that are already
// warm (at or below its flushed marker), so the retention job never deletes a message the warm
// store has not seen. It returns how many it removed.
func (l *RedisLog) ExpireHot(ctx context.Context, conversationID int64, t time.Time) (int64, error) {
	key := l.key(conversationID, "log")
	flushed, err := l.rdb.Get(ctx, l.key(conversationID, "flushed")).Int64()
	if err != nil && err != redis.Nil {
		return 0, unavailable(err, "read flushed seq")
	}
	var removed int64
	after := int64(0)
	for {
		page, err := l.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: key, Start: "(" + strconv.FormatInt(after, 10),
			Stop: strconv.FormatInt(flushed, 10), ByScore: true, Count: 200}).Result()
		if err != nil {
			return removed, unavailable(err, "read hot messages")
		}
		msgs, err := decodeMessages(page)
		if err != nil {
			return removed, err
		}
		var old []any
		stop := len(page) < 200
		for i, m := range msgs {
			if !m.CreatedAt.Before(t) {
				stop = true
				break
			}
			old = append(old, page[i])
			after = m.Seq
		}
		if len(old) > 0 {
			n, err := l.rdb.ZRem(ctx, key, old...).Result()
			removed += n
			if err != nil {
				return removed, unavailable(err, "delete expired hot messages")
			}
		}
		if stop {
			return removed, nil
		}
	}
}

// EraseHot removes the conversation's hot messages with seq <= upTo, flushed or not (an erasure), and
// returns how many it removed. The seq counter and dedupe records stay: a seq is never handed out
// twice, and a resend of an erased message is still recognised.
func (l *RedisLog) EraseHot(ctx context.Context, conversationID, upTo int64) (int64, error) {
	n, err := l.rdb.ZRemRangeByScore(ctx, l.key(conversationID, "log"), "-inf", strconv.FormatInt(upTo, 10)).Result()
	return n, unavailable(err, "erase hot messages")
}
