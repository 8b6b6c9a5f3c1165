package session

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// SQLLog is the message log kept in SQL: the system of record in embedded and MySQL-only mode, and
// the warm store behind the Redis hot tier in production.
type SQLLog struct {
	db *gorm.DB
}

// NewSQLLog returns a log over db.
func NewSQLLog(db *gorm.DB) *SQLLog { return &SQLLog{db: db} }

// Append stores m with the next seq of its conversation in one transaction: the conversation row's
// last_seq is the counter, so its row lock orders concurrent senders. A resend (the same
// client_msg_id) is found by the unique key refusing it, which rolls the counter back, rather than
// by a read before every insert: resends are rare.
func (l *SQLLog) Append(ctx context.Context, m Message) (Message, bool, error) {
	out, err := l.append(ctx, m)
	if err == nil {
		return out, false, nil
	}
	if !isDuplicate(err) {
		return Message{}, false, unavailable(err, "append message")
	}
	var prev Message
	rerr := l.db.WithContext(ctx).Where("conversation_id = ? AND client_msg_id = ?", m.ConversationID, m.ClientMsgID).Take(&prev).Error
	switch {
	case rerr == nil:
		return prev, true, nil
	case errors.Is(rerr, gorm.ErrRecordNotFound):
		return Message{}, false, err // another key: (conversation, seq) taken behind the counter
	default:
		return Message{}, false, unavailable(rerr, "append message")
	}
}

func (l *SQLLog) append(ctx context.Context, m Message) (Message, error) {
	err := l.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&Conversation{}).Where("id = ?", m.ConversationID).
			Updates(map[string]any{"last_seq": gorm.Expr("last_seq + 1"), "updated_at": m.CreatedAt})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return Errorf(ENOTFOUND, "conversation %d not found", m.ConversationID)
		}
		var seq int64
		if err := tx.Model(&Conversation{}).Where("id = ?", m.ConversationID).Select("last_seq").Scan(&seq).Error; err != nil {
			return err
		}
		m.Seq = seq
		return tx.Create(&m).Error
	})
	if err != nil {
		return Message{}, err
	}
	return m, nil
}

// After returns up to limit messages with seq > after, in seq order.
func (l *SQLLog) After(ctx context.Context, conversationID, after int64, limit int) ([]Message, error) {
	var out []Message
	err := l.db.WithContext(ctx).Where("conversation_id = ? AND seq > ?", conversationID, after).
		Order("seq").Limit(limit).Find(&out).Error
	return out, unavailable(err, "read messages")
}

// Before returns up to limit messages with seq < before, in seq order.
func (l *SQLLog) Before(ctx context.Context, conversationID, before int64, limit int) ([]Message, error) {
	var out []Message
	err := l.db.WithContext(ctx).Where("conversation_id = ? AND seq < ?", conversationID, before).
		Order("seq DESC").Limit(limit).Find(&out).Error
	if err != nil {
		return nil, unavailable(err, "read messages")
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// LastSeq returns the highest seq of the conversation: its counter, which never goes back even when
// old messages have moved to the cold tier.
func (l *SQLLog) LastSeq(ctx context.Context, conversationID int64) (int64, error) {
	var seq int64
	err := l.db.WithContext(ctx).Model(&Conversation{}).Where("id = ?", conversationID).Select("last_seq").Scan(&seq).Error
	return seq, unavailable(err, "read last seq")
}

// Insert writes messages that already have their seq (the flush from the hot tier), idempotent on
// (conversation, seq). A row that exists with another client_msg_id is never overwritten; such rows
// are returned as conflicts for the caller to count and alarm on.
func (l *SQLLog) Insert(ctx context.Context, msgs []Message) (conflicts []Message, err error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	var inserted int64
	// One transaction for the rows and the conversations' counters: one commit, so one disk flush,
	// per flush batch instead of one per conversation.
	err = l.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).CreateInBatches(msgs, 500)
		if res.Error != nil {
			return res.Error
		}
		inserted = res.RowsAffected
		last := map[int64]Message{}
		for _, m := range msgs {
			if m.Seq > last[m.ConversationID].Seq {
				last[m.ConversationID] = m
			}
		}
		convs := make([]int64, 0, len(last))
		for conv := range last {
			convs = append(convs, conv)
		}
		slices.Sort(convs) // one lock order for every flusher, so concurrent flushes cannot deadlock
		for chunk := range slices.Chunk(convs, 100) {
			if err := advanceConversations(tx, chunk, last); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, unavailable(err, "insert messages")
	}
	if inserted < int64(len(msgs)) {
		if conflicts, err = l.conflicting(ctx, msgs); err != nil {
			return nil, err
		}
	}
	return conflicts, nil
}

// advanceConversations moves each conversation's last_seq and updated_at up to its last message in
// one statement, never down. updated_at is assigned first: MySQL evaluates later assignments with
// the new values of earlier ones, SQLite with the old; in this order both compare the old last_seq.
func advanceConversations(tx *gorm.DB, ids []int64, last map[int64]Message) error {
	var q strings.Builder
	args := make([]any, 0, 7*len(ids))
	q.WriteString("UPDATE conversations SET updated_at = CASE id")
	for _, id := range ids {
		q.WriteString(" WHEN ? THEN (CASE WHEN last_seq < ? THEN ? ELSE updated_at END)")
		args = append(args, id, last[id].Seq, last[id].CreatedAt)
	}
	q.WriteString(" ELSE updated_at END, last_seq = CASE id")
	for _, id := range ids {
		q.WriteString(" WHEN ? THEN (CASE WHEN last_seq < ? THEN ? ELSE last_seq END)")
		args = append(args, id, last[id].Seq, last[id].Seq)
	}
	q.WriteString(" ELSE last_seq END WHERE id IN ?")
	args = append(args, ids)
	return tx.Exec(q.String(), args...).Error
}

// conflicting finds which of msgs are stored under their key with a different client_msg_id, or
// whose client_msg_id is stored under a different seq.
func (l *SQLLog) conflicting(ctx context.Context, msgs []Message) ([]Message, error) {
	var out []Message
	for _, m := range msgs {
		var got []Message
		err := l.db.WithContext(ctx).Where("conversation_id = ? AND (seq = ? OR client_msg_id = ?)", m.ConversationID, m.Seq, m.ClientMsgID).Find(&got).Error
		if err != nil {
			return nil, unavailable(err, "check flushed messages")
		}
		for _, g := range got {
			if g.Seq != m.Seq || g.ClientMsgID != m.ClientMsgID {
				out = append(out, m)
				break
			}
		}
	}
	return out, nil
}

// DedupeRecords returns every client_msg_id → seq of a conversation, used to re-seed a hot tier that
// lost its dedupe records.
func (l *SQLLog) DedupeRecords(ctx context.Context, conversationID int64) (map[string]int64, error) {
	var rows []struct {
		ClientMsgID string
		Seq         int64
	}
	err := l.db.WithContext(ctx).Model(&Message{}).Select("client_msg_id, seq").Where("conversation_id = ?", conversationID).Scan(&rows).Error
	if err != nil {
		return nil, unavailable(err, "read dedupe records")
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.ClientMsgID] = r.Seq
	}
	return out, nil
}

// unreadRow is one reader's counter in one conversation.
type unreadRow struct {
	Reader         string `gorm:"primaryKey"`
	ConversationID int64  `gorm:"primaryKey;autoIncrement:false"`
	Count          int64
	LastSeq        int64
	ReadSeq        int64
}

func (unreadRow) TableName() string { return "unread_counters" }

type unreadTotal struct {
	Reader string `gorm:"primaryKey"`
	Total  int64
}

func (unreadTotal) TableName() string { return "unread_totals" }

// SQLUnread keeps unread counters in SQL; the per-conversation row and the total change in one
// transaction.
type SQLUnread struct {
	db *gorm.DB

	mu   sync.Mutex
	seen map[unreadKey]struct{}
}

// NewSQLUnread returns unread counters over db.
func NewSQLUnread(db *gorm.DB) *SQLUnread { return &SQLUnread{db: db} }

// Add counts seq as unread for reader unless it was counted already.
func (u *SQLUnread) Add(ctx context.Context, reader string, conversationID, seq int64) (UnreadCount, error) {
	return u.change(ctx, reader, conversationID, func(r *unreadRow) int64 {
		if seq <= r.LastSeq {
			return 0
		}
		r.LastSeq = seq
		if seq <= r.ReadSeq {
			return 0
		}
		r.Count++
		return 1
	})
}

// Read marks everything up to seq as read. Counters do not remember which seqs were counted, so a
// read below the last counted seq keeps at most the seqs above it.
func (u *SQLUnread) Read(ctx context.Context, reader string, conversationID, seq int64) (UnreadCount, error) {
	return u.change(ctx, reader, conversationID, func(r *unreadRow) int64 {
		if seq <= r.ReadSeq {
			return 0
		}
		r.ReadSeq = seq
		keep := r.LastSeq - seq
		if keep < 0 {
			keep = 0
		}
		if r.Count <= keep {
			return 0
		}
		d := keep - r.Count
		r.Count = keep
		return d
	})
}

func (u *SQLUnread) change(ctx context.Context, reader string, conversationID int64, f func(*unreadRow) int64) (UnreadCount, error) {
	var out UnreadCount
	key := unreadKey{reader, conversationID}
	err := u.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Rows are created, with the reader's total, before the first lock on them: locking a row
		// that does not exist would take a gap lock on MySQL, and two such transactions inserting
		// it would deadlock. Once this node has seen the rows they are only read and updated.
		ensure := func() error {
			if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&unreadTotal{Reader: reader}).Error; err != nil {
				return err
			}
			return tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&unreadRow{Reader: reader, ConversationID: conversationID}).Error
		}
		lock := func(row *unreadRow) error {
			return tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("reader = ? AND conversation_id = ?", reader, conversationID).Take(row).Error
		}
		known := u.known(key)
		if !known {
			if err := ensure(); err != nil {
				return err
			}
		}
		var row unreadRow
		err := lock(&row)
		if known && errors.Is(err, gorm.ErrRecordNotFound) { // gone since: create it as the first time
			if err = ensure(); err == nil {
				err = lock(&row)
			}
		}
		if err != nil {
			return err
		}
		before := row
		d := f(&row)
		if row != before {
			if err := tx.Model(&unreadRow{}).Where("reader = ? AND conversation_id = ?", reader, conversationID).
				Updates(map[string]any{"count": row.Count, "last_seq": row.LastSeq, "read_seq": row.ReadSeq}).Error; err != nil {
				return err
			}
		}
		if d != 0 {
			if err := tx.Model(&unreadTotal{}).Where("reader = ?", reader).Update("total", gorm.Expr("total + ?", d)).Error; err != nil {
				return err
			}
		}
		var total int64
		if err := tx.Model(&unreadTotal{}).Where("reader = ?", reader).Select("total").Scan(&total).Error; err != nil {
			return err
		}
		out = UnreadCount{ConversationID: conversationID, Count: row.Count, Total: total, ReadSeq: row.ReadSeq}
		return nil
	})
	if err == nil {
		u.remember(key)
	}
	return out, unavailable(err, "update unread counters")
}

// unreadKey names one reader's counter of one conversation.
type unreadKey struct {
	reader string
	conv   int64
}

// known says whether this node has seen key's counter row (and its reader's total) exist.
func (u *SQLUnread) known(k unreadKey) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.seen[k]
	return ok
}

func (u *SQLUnread) remember(k unreadKey) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.seen == nil || len(u.seen) >= 100000 {
		u.seen = map[unreadKey]struct{}{}
	}
	u.seen[k] = struct{}{}
}

// Get returns reader's non-zero counters and total.
func (u *SQLUnread) Get(ctx context.Context, reader string) (map[int64]int64, int64, error) {
	var rows []unreadRow
	db := u.db.WithContext(ctx)
	if err := db.Where("reader = ? AND count > 0", reader).Find(&rows).Error; err != nil {
		return nil, 0, unavailable(err, "read unread counters")
	}
	var total int64
	if err := db.Model(&unreadTotal{}).Where("reader = ?", reader).Select("total").Scan(&total).Error; err != nil {
		return nil, 0, unavailable(err, "read unread total")
	}
	out := make(map[int64]int64, len(rows))
	for _, r := range rows {
		out[r.ConversationID] = r.Count
	}
	return out, total, nil
}
