package session

import (
	"bytes"
	"context"
	_ "embed" // Lua scripts
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lua/append.lua
	appendLua    string
	appendScript = redis.NewScript(appendLua)

	//go:embed lua/reseed.lua
	reseedLua    string
	reseedScript = redis.NewScript(reseedLua)

	//go:embed lua/flushed.lua
	flushedLua    string
	flushedScript = redis.NewScript(flushedLua)
)

const (
	// reseedChunk bounds the dedupe records sent to Redis per script call, so that re-seeding a long
	// conversation never blocks Redis for long.
	reseedChunk = 500
	// flushBatch is the most messages read from Redis and inserted into the warm store at once.
	flushBatch = 500
	// defaultFlushMax is the flush budget when the caller gives none.
	defaultFlushMax = 1000
)

// RedisLog is the production message log: a Redis hot tier in front of the SQL warm store. Appends
// and reads go to Redis; Flush copies hot messages to the warm store; reads fall back to the warm
// store for whatever the hot copy no longer holds.
//
// Keys, all under the conversation's hash tag so that a script sees them in one Cluster slot:
// {c:<id>}:seq (counter), {c:<id>}:dedupe (client_msg_id → seq), {c:<id>}:log (score seq, member the
// message JSON), {c:<id>}:flushed (highest seq known to be warm). None of them expires.
type RedisLog struct {
	rdb       redis.UniversalClient
	prefix    string
	warm      *SQLLog
	conflicts atomic.Int64
}

// NewRedisLog returns the hot log in rdb under prefix, backed by the warm store warm.
func NewRedisLog(rdb redis.UniversalClient, prefix string, warm *SQLLog) *RedisLog {
	return &RedisLog{rdb: rdb, prefix: prefix, warm: warm}
}

// FlushStats says what one Flush moved to the warm store.
type FlushStats struct {
	Conversations int `json:"conversations"`
	Messages      int `json:"messages"`
	Conflicts     int `json:"conflicts"`
}

func (l *RedisLog) key(conversationID int64, name string) string {
	return l.prefix + "{c:" + strconv.FormatInt(conversationID, 10) + "}:" + name
}

// dirtyKey is the set of conversations with messages not yet flushed. Under Redis Cluster it lives
// outside every conversation's slot, so the append and flushed scripts, which touch it together with
// the {c:<id>} keys, would fail with CROSSSLOT: it must become one set per slot (or per hash tag
// bucket) before a cluster run. Designed for, untested.
func (l *RedisLog) dirtyKey() string { return l.prefix + "hot:dirty" }

// Append dedupes on client_msg_id, assigns the next seq and stores the message in one Lua script.
// A missing counter is re-seeded from the warm store first, so that a Redis loss never hands out a
// seq twice.
func (l *RedisLog) Append(ctx context.Context, m Message) (Message, bool, error) {
	m.Seq = 0
	head, tail, err := splitAtSeq(m)
	if err != nil {
		return Message{}, false, err
	}
	keys := []string{l.key(m.ConversationID, "seq"), l.key(m.ConversationID, "dedupe"), l.key(m.ConversationID, "log"), l.dirtyKey()}
	// One retry is enough: the counter exists after a re-seed unless the keys are wiped again meanwhile.
	for attempt := 0; attempt < 2; attempt++ {
		res, err := appendScript.Run(ctx, l.rdb, keys, m.ClientMsgID, head, tail, m.ConversationID).Slice()
		if err != nil {
			return Message{}, false, unavailable(err, "append message to hot log")
		}
		var kind string
		if len(res) > 0 {
			kind, _ = res[0].(string)
		}
		switch {
		case kind == "reseed":
			if _, err := l.reseed(ctx, m.ConversationID); err != nil {
				return Message{}, false, err
			}
			continue
		case kind == "new" && len(res) == 2:
			if seq, ok := res[1].(int64); ok {
				m.Seq = seq
				return m, false, nil
			}
		case kind == "dup" && len(res) == 3:
			seq, ok := res[1].(int64)
			member, ok2 := res[2].(string)
			if ok && ok2 {
				stored, err := l.storedMessage(ctx, m, seq, member)
				return stored, true, err
			}
		}
		return Message{}, false, Errorf(EINTERNAL, "append script returned %v", res)
	}
	return Message{}, false, Errorf(EUNAVAILABLE, "seq counter of conversation %d vanished while re-seeding", m.ConversationID)
}

// splitAtSeq encodes m (whose Seq is 0) as JSON cut around the seq value, so that the append script
// can build the stored member with the seq it assigns without decoding and re-encoding JSON in Lua
// (cjson loses int64 precision).
func splitAtSeq(m Message) (head, tail string, err error) {
	b, err := json.Marshal(m)
	if err != nil {
		return "", "", Errorf(EINVALID, "encode message: %v", err)
	}
	head = `{"conversation_id":` + strconv.FormatInt(m.ConversationID, 10) + `,"seq":`
	if !bytes.HasPrefix(b, []byte(head+"0,")) {
		return "", "", Errorf(EINTERNAL, "message JSON no longer starts with conversation_id and seq: %.60s", b)
	}
	return head, string(b[len(head)+1:]), nil
}

// storedMessage returns the message a resend duplicates: the hot copy when it is still there, else
// the warm row. When neither has it (the warm copy moved on to the cold tier), the resend itself
// with the stored seq is the best answer: the sender only needs its seq.
func (l *RedisLog) storedMessage(ctx context.Context, m Message, seq int64, member string) (Message, error) {
	if member != "" {
		var out Message
		if err := json.Unmarshal([]byte(member), &out); err != nil {
			return Message{}, Errorf(EINTERNAL, "decode hot message %d/%d: %v", m.ConversationID, seq, err)
		}
		return out, nil
	}
	rows, err := l.warm.After(ctx, m.ConversationID, seq-1, 1)
	if err != nil {
		return Message{}, err
	}
	if len(rows) == 1 && rows[0].Seq == seq {
		return rows[0], nil
	}
	m.Seq = seq
	return m, nil
}

// reseed restores a missing counter and dedupe hash from the warm store and returns the counter.
// The dedupe records go first, in chunks, and the counter last: appends wait for the counter, so
// they never run against a half-filled dedupe hash.
func (l *RedisLog) reseed(ctx context.Context, conversationID int64) (int64, error) {
	last, err := l.warm.LastSeq(ctx, conversationID)
	if err != nil {
		return 0, err
	}
	records, err := l.warm.DedupeRecords(ctx, conversationID)
	if err != nil {
		return 0, err
	}
	for _, seq := range records {
		last = max(last, seq) // last_seq should already cover them; a lagging column must not win
	}
	keys := []string{l.key(conversationID, "seq"), l.key(conversationID, "dedupe"), l.key(conversationID, "log"), l.key(conversationID, "flushed")}
	// args[0] is the warm last seq, args[1] the final-chunk flag, then client_msg_id, seq pairs.
	args := make([]any, 2, 2+2*min(len(records), reseedChunk))
	run := func(final bool) (int64, error) {
		args[0], args[1] = last, "0"
		if final {
			args[1] = "1"
		}
		n, err := reseedScript.Run(ctx, l.rdb, keys, args...).Int64()
		args = args[:2]
		return n, unavailable(err, "re-seed hot log")
	}
	for cid, seq := range records {
		args = append(args, cid, seq)
		if len(args)-2 < 2*reseedChunk {
			continue
		}
		n, err := run(false)
		if err != nil || n >= 0 {
			return n, err // n >= 0: another node finished the re-seed first
		}
	}
	return run(true)
}

// After returns up to limit messages with seq > after, from the hot log and, for what it no longer
// holds, from the warm store.
func (l *RedisLog) After(ctx context.Context, conversationID, after int64, limit int) ([]Message, error) {
	if limit == 0 {
		return nil, nil
	}
	logKey := l.key(conversationID, "log")
	var lowest *redis.ZSliceCmd
	var page *redis.StringSliceCmd
	// Hot is read before warm: a trim between the two reads only removes messages already warm.
	_, err := l.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		lowest = p.ZRangeWithScores(ctx, logKey, 0, 0)
		page = p.ZRangeArgs(ctx, redis.ZRangeArgs{Key: logKey, Start: "(" + strconv.FormatInt(after, 10), Stop: "+inf", ByScore: true, Count: int64(limit)})
		return nil
	})
	if err != nil {
		return nil, unavailable(err, "read hot messages")
	}
	hot, err := decodeMessages(page.Val())
	if err != nil {
		return nil, err
	}
	hotMin, inHot := lowestSeq(lowest.Val())
	if inHot && hotMin <= after+1 {
		return hot, nil
	}
	// The hot copy starts above after+1 (trimmed or lost): the gap comes from the warm store.
	wantWarm := limit
	if inHot && (limit < 0 || hotMin-after-1 < int64(limit)) {
		wantWarm = int(hotMin - after - 1)
	}
	warm, err := l.warm.After(ctx, conversationID, after, wantWarm)
	if err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(warm)+len(hot))
	for _, m := range warm {
		if !inHot || m.Seq < hotMin {
			out = append(out, m)
		}
	}
	out = append(out, hot...)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Before returns up to limit messages with seq < before (the newest of them), in seq order, from the
// hot log and, below what it holds, from the warm store.
func (l *RedisLog) Before(ctx context.Context, conversationID, before int64, limit int) ([]Message, error) {
	if limit == 0 {
		return nil, nil
	}
	logKey := l.key(conversationID, "log")
	var lowest *redis.ZSliceCmd
	var page *redis.StringSliceCmd
	_, err := l.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		lowest = p.ZRangeWithScores(ctx, logKey, 0, 0)
		page = p.ZRangeArgs(ctx, redis.ZRangeArgs{Key: logKey, Start: "(" + strconv.FormatInt(before, 10), Stop: "-inf", ByScore: true, Rev: true, Count: int64(limit)})
		return nil
	})
	if err != nil {
		return nil, unavailable(err, "read hot messages")
	}
	hot, err := decodeMessages(page.Val())
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(hot)-1; i < j; i, j = i+1, j-1 {
		hot[i], hot[j] = hot[j], hot[i]
	}
	if limit > 0 && len(hot) >= limit {
		return hot, nil
	}
	bound := before
	if hotMin, ok := lowestSeq(lowest.Val()); ok && hotMin < bound {
		bound = hotMin
	}
	if bound <= 1 {
		return hot, nil
	}
	wantWarm := limit
	if limit > 0 {
		wantWarm = limit - len(hot)
	}
	warm, err := l.warm.Before(ctx, conversationID, bound, wantWarm)
	if err != nil {
		return nil, err
	}
	return append(warm, hot...), nil
}

// LastSeq returns the conversation's counter, re-seeding it from the warm store when Redis lost it.
func (l *RedisLog) LastSeq(ctx context.Context, conversationID int64) (int64, error) {
	seq, err := l.rdb.Get(ctx, l.key(conversationID, "seq")).Int64()
	if errors.Is(err, redis.Nil) {
		return l.reseed(ctx, conversationID)
	}
	return seq, unavailable(err, "read last seq")
}

// Flush copies up to maxMessages hot messages not yet in the warm store there (a default budget when
// maxMessages <= 0). It is idempotent and safe on many nodes at once; it never deletes from Redis.
// A warm row with the same seq and another client_msg_id is never overwritten: it is counted in the
// stats and in Conflicts. When the warm store fails, Flush returns EUNAVAILABLE and leaves the
// failed batch's Redis state as it was, so a later Flush retries it.
func (l *RedisLog) Flush(ctx context.Context, maxMessages int) (FlushStats, error) {
	var stats FlushStats
	budget := maxMessages
	if budget <= 0 {
		budget = defaultFlushMax
	}
	var cursor uint64
	for {
		ids, next, err := l.rdb.SScan(ctx, l.dirtyKey(), cursor, "", 100).Result()
		if err != nil {
			return stats, unavailable(err, "scan dirty conversations")
		}
		for _, s := range ids {
			if budget <= 0 {
				return stats, nil
			}
			id, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return stats, Errorf(EINTERNAL, "dirty set holds %q, not a conversation id", s)
			}
			moved, conflicts, err := l.flushConversation(ctx, id, budget)
			stats.Messages += moved
			stats.Conflicts += conflicts
			if moved > 0 {
				stats.Conversations++
			}
			budget -= moved
			if err != nil {
				return stats, err
			}
		}
		if next == 0 || budget <= 0 {
			return stats, nil
		}
		cursor = next
	}
}

// flushConversation copies one conversation's unflushed messages to the warm store, batch by batch,
// until none is left or the budget is spent.
func (l *RedisLog) flushConversation(ctx context.Context, conversationID int64, budget int) (moved, conflicts int, err error) {
	flushedKey, logKey := l.key(conversationID, "flushed"), l.key(conversationID, "log")
	done := []string{flushedKey, logKey, l.dirtyKey()}
	for budget > 0 {
		flushed, err := l.rdb.Get(ctx, flushedKey).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return moved, conflicts, unavailable(err, "read flushed seq")
		}
		n := min(budget, flushBatch)
		members, err := l.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: logKey, Start: "(" + strconv.FormatInt(flushed, 10), Stop: "+inf", ByScore: true, Count: int64(n)}).Result()
		if err != nil {
			return moved, conflicts, unavailable(err, "read hot messages to flush")
		}
		msgs, err := decodeMessages(members)
		if err != nil {
			return moved, conflicts, err
		}
		if len(msgs) > 0 {
			bad, err := l.warm.Insert(ctx, msgs)
			if err != nil {
				return moved, conflicts, err
			}
			// A conflict is counted once and the marker still advances past it: retrying cannot
			// resolve it, and re-counting it on every flush would make the alarm meaningless.
			conflicts += len(bad)
			l.conflicts.Add(int64(len(bad)))
			moved += len(msgs)
			budget -= len(msgs)
			flushed = msgs[len(msgs)-1].Seq
		}
		clean, err := flushedScript.Run(ctx, l.rdb, done, flushed, conversationID).Int()
		if err != nil {
			return moved, conflicts, unavailable(err, "advance flushed seq")
		}
		if clean == 1 || len(msgs) == 0 {
			break
		}
	}
	return moved, conflicts, nil
}

// Conflicts returns how many hot messages found a different warm row under their seq since start.
// Any non-zero value means two writers handed out the same seq: the app alarms and fails /readyz.
func (l *RedisLog) Conflicts() int64 { return l.conflicts.Load() }

// Lag returns how many conversations have messages not yet flushed to the warm store.
func (l *RedisLog) Lag(ctx context.Context) (int64, error) {
	n, err := l.rdb.SCard(ctx, l.dirtyKey()).Result()
	return n, unavailable(err, "count dirty conversations")
}

func decodeMessages(members []string) ([]Message, error) {
	out := make([]Message, len(members))
	for i, s := range members {
		if err := json.Unmarshal([]byte(s), &out[i]); err != nil {
			return nil, &Error{Code: EINTERNAL, Message: "decode hot message", Err: fmt.Errorf("%.60s: %w", s, err)}
		}
	}
	return out, nil
}

// lowestSeq returns the lowest seq in the hot log, and false when the hot log is empty.
func lowestSeq(z []redis.Z) (int64, bool) {
	if len(z) == 0 {
		return 0, false
	}
	return int64(z[0].Score), true
}
