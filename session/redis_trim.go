package session

import (
	"context"
	_ "embed" // Lua scripts
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lua/trim.lua
	trimLua    string
	trimScript = redis.NewScript(trimLua)
)

const (
	// trimRead bounds the messages of one conversation read and trimmed per visit: a long backlog
	// is trimmed over several runs instead of in one long script.
	trimRead = 1000
	// trimScan is the SSCAN page over the set of conversations to trim.
	trimScan = 100
)

// TrimPolicy says which messages a conversation's hot log keeps. A message stays hot when it is
// among the conversation's newest KeepMessages OR younger than KeepAge; a message outside both is
// removed from Redis once it is in the warm store (its seq at or below the flushed marker). Seq
// counters and dedupe records are never trimmed.
type TrimPolicy struct {
	// KeepMessages is how many of a conversation's newest messages always stay hot; 0 keeps none by
	// count.
	KeepMessages int
	// KeepAge keeps messages younger than this hot; 0 keeps none by age.
	KeepAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// TrimStats says what one Trim did.
type TrimStats struct {
	// Conversations visited.
	Conversations int `json:"conversations"`
	// Messages removed from the hot log (all of them already warm).
	Messages int `json:"messages"`
	// Pending is how many conversations the trim set still holds: those with more hot messages than
	// KeepMessages.
	Pending int64 `json:"pending"`
	// Stopped is set when the run stopped early because held reported the lease lost.
	Stopped bool `json:"stopped,omitempty"`
}

// trimKey is the set of conversations whose hot log may hold trimmable messages: a flush adds the
// conversations it moved, a trim removes those left with no more than KeepMessages. Like the dirty
// set it lives outside the conversations' slots; only plain commands touch it, never a script with
// {c:<id>} keys, so it needs no change under Redis Cluster.
func (l *RedisLog) trimKey() string { return l.prefix + "hot:trim" }

// trimCursorKey holds the SSCAN cursor where the next Trim resumes, so that runs bounded to a number
// of conversations still visit every one in turn, whichever node runs them.
func (l *RedisLog) trimCursorKey() string { return l.prefix + "hot:trim:cursor" }

// Trim visits about maxConversations conversations of the trim set (whole SSCAN pages: Redis returns
// a small set, up to 512 ids, in one page), resuming where the last Trim stopped, and removes from each hot log the oldest messages that p lets go and that are already
// warm. held is asked before each removal (the caller's lease); when it says no, Trim stops with
// Stopped set. Safe on many nodes at once and after a crash at any point: the removal itself is one
// script that re-reads the flushed marker and the newest messages, and removes a prefix of the log.
func (l *RedisLog) Trim(ctx context.Context, p TrimPolicy, maxConversations int, held func(context.Context) bool) (TrimStats, error) {
	var st TrimStats
	if p.KeepMessages < 0 || p.KeepAge < 0 {
		return st, Errorf(EINVALID, "trim: keep %d messages, %s: want non-negative values", p.KeepMessages, p.KeepAge)
	}
	if maxConversations <= 0 {
		return st, Errorf(EINVALID, "trim: %d conversations per run: want a positive number", maxConversations)
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	if err := l.refillTrim(ctx, p.KeepMessages); err != nil {
		return st, err
	}
	cursor, err := l.rdb.Get(ctx, l.trimCursorKey()).Uint64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return st, unavailable(err, "read trim cursor")
	}
	for st.Conversations < maxConversations {
		members, next, err := l.rdb.SScan(ctx, l.trimKey(), cursor, "", trimScan).Result()
		if err != nil {
			return st, unavailable(err, "scan conversations to trim")
		}
		ids := make([]int64, 0, len(members))
		for _, s := range members {
			id, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return st, Errorf(EINTERNAL, "trim set holds %q, not a conversation id", s)
			}
			ids = append(ids, id)
		}
		if err := l.trimConversations(ctx, ids, p, now().Add(-p.KeepAge), held, &st); err != nil || st.Stopped {
			return st, err
		}
		st.Conversations += len(ids)
		cursor = next
		// Saved after each page: a crashed run costs at most one page visited twice.
		if err := l.rdb.Set(ctx, l.trimCursorKey(), strconv.FormatUint(cursor, 10), 0).Err(); err != nil {
			return st, unavailable(err, "save trim cursor")
		}
		if cursor == 0 {
			break
		}
	}
	pending, err := l.rdb.SCard(ctx, l.trimKey()).Result()
	st.Pending = pending
	return st, unavailable(err, "count conversations to trim")
}

// trimKeepKey holds the KeepMessages the trim set was last kept for.
func (l *RedisLog) trimKeepKey() string { return l.prefix + "hot:trim:keep" }

// refillTrim puts every conversation with a hot log back into the trim set when keep is lower than
// the KeepMessages the set was kept for, or when none was recorded (a hot tier filled before the trim
// job existed): a conversation leaves the set holding no more than the keep of its last visit, and
// with a lower keep it may hold more. One SCAN of the keyspace, once per such change.
func (l *RedisLog) refillTrim(ctx context.Context, keep int) error {
	was, err := l.rdb.Get(ctx, l.trimKeepKey()).Int()
	switch {
	case err == nil && keep == was:
		return nil
	case err == nil && keep > was: // every conversation that left the set still holds no more than keep
		return unavailable(l.rdb.Set(ctx, l.trimKeepKey(), keep, 0).Err(), "save trim keep")
	case err != nil && !errors.Is(err, redis.Nil):
		return unavailable(err, "read trim keep")
	}
	head, tail := l.prefix+"{c:", "}:log"
	var cursor uint64
	for {
		keys, next, err := l.rdb.Scan(ctx, cursor, globEscape(head)+"*"+globEscape(tail), 1000).Result()
		if err != nil {
			return unavailable(err, "scan hot logs")
		}
		ids := make([]any, 0, len(keys))
		for _, k := range keys {
			if id, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(k, head), tail), 10, 64); err == nil {
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 {
			if err := l.rdb.SAdd(ctx, l.trimKey(), ids...).Err(); err != nil {
				return unavailable(err, "refill trim set")
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	return unavailable(l.rdb.Set(ctx, l.trimKeepKey(), keep, 0).Err(), "save trim keep")
}

// globEscape quotes the characters SCAN's MATCH pattern gives a meaning to.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// trimConversations trims one page of conversations: one round trip reads their sizes and markers,
// one the candidates, one runs the scripts, and one or two drop from the set those left small.
func (l *RedisLog) trimConversations(ctx context.Context, ids []int64, p TrimPolicy, cutoff time.Time, held func(context.Context) bool, st *TrimStats) error {
	if len(ids) == 0 {
		return nil
	}
	cards := make([]*redis.IntCmd, len(ids))
	markers := make([]*redis.StringCmd, len(ids))
	if _, err := l.rdb.Pipelined(ctx, func(pp redis.Pipeliner) error {
		for i, id := range ids {
			cards[i] = pp.ZCard(ctx, l.key(id, "log"))
			markers[i] = pp.Get(ctx, l.key(id, "flushed"))
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return unavailable(err, "read hot logs to trim")
	}
	candidates := make([]*redis.StringSliceCmd, len(ids))
	if _, err := l.rdb.Pipelined(ctx, func(pp redis.Pipeliner) error {
		for i, id := range ids {
			flushed, err := markers[i].Int64()
			if errors.Is(err, redis.Nil) {
				continue // nothing warm yet
			}
			if err != nil {
				return unavailable(err, "read flushed seq")
			}
			n := cards[i].Val() - int64(p.KeepMessages)
			if n <= 0 {
				continue
			}
			candidates[i] = pp.ZRangeArgs(ctx, redis.ZRangeArgs{Key: l.key(id, "log"), Start: "-inf",
				Stop: strconv.FormatInt(flushed, 10), ByScore: true, Count: min(n, trimRead)})
		}
		return nil
	}); err != nil {
		return unavailable(err, "read messages to trim")
	}
	upTo := make([]int64, len(ids))
	for i, cmd := range candidates {
		if cmd == nil {
			continue
		}
		seq, err := trimmablePrefix(cmd.Val(), p.KeepAge > 0, cutoff)
		if err != nil {
			return err
		}
		upTo[i] = seq
	}
	left := make([]int64, len(ids))
	for i := range ids {
		left[i] = cards[i].Val()
	}
	scripts := make([]*redis.Cmd, len(ids))
	if slicesAny(upTo) {
		if !held(ctx) {
			st.Stopped = true
			return nil
		}
		_, _ = l.rdb.Pipelined(ctx, func(pp redis.Pipeliner) error {
			for i, id := range ids {
				if upTo[i] > 0 {
					scripts[i] = trimScript.EvalSha(ctx, pp, l.trimKeys(id), upTo[i], p.KeepMessages)
				}
			}
			return nil
		})
		for i, cmd := range scripts {
			if cmd == nil {
				continue
			}
			if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
				cmd = trimScript.Run(ctx, l.rdb, l.trimKeys(ids[i]), upTo[i], p.KeepMessages)
			}
			res, err := cmd.Int64Slice()
			if err != nil || len(res) != 2 {
				return unavailable(errors.Join(err, fmt.Errorf("trim script returned %v", res)), "trim hot log")
			}
			st.Messages += int(res[0])
			left[i] = res[1]
		}
	}
	return l.dropSmall(ctx, ids, left, p.KeepMessages)
}

func (l *RedisLog) trimKeys(conversationID int64) []string {
	return []string{l.key(conversationID, "log"), l.key(conversationID, "flushed")}
}

// dropSmall removes from the trim set the conversations left with no more than keep hot messages:
// nothing of theirs can become trimmable until new messages come, and their flush adds them back.
// A flush may add one back between the removal and here; the second look puts it back then.
func (l *RedisLog) dropSmall(ctx context.Context, ids, left []int64, keep int) error {
	var small []int64
	for i, id := range ids {
		if left[i] <= int64(keep) {
			small = append(small, id)
		}
	}
	if len(small) == 0 {
		return nil
	}
	cards := make([]*redis.IntCmd, len(small))
	if _, err := l.rdb.Pipelined(ctx, func(pp redis.Pipeliner) error {
		for i, id := range small {
			pp.SRem(ctx, l.trimKey(), id)
			cards[i] = pp.ZCard(ctx, l.key(id, "log"))
		}
		return nil
	}); err != nil {
		return unavailable(err, "update the trim set")
	}
	var back []any
	for i, id := range small {
		if cards[i].Val() > int64(keep) {
			back = append(back, id)
		}
	}
	if len(back) > 0 {
		return unavailable(l.rdb.SAdd(ctx, l.trimKey(), back...).Err(), "update the trim set")
	}
	return nil
}

func slicesAny(seqs []int64) bool {
	for _, s := range seqs {
		if s > 0 {
			return true
		}
	}
	return false
}

// trimmablePrefix returns the highest seq up to which every member may go: all of them when byAge is
// false, else those up to the first one not older than cutoff. Stopping there keeps the hot log a
// consecutive tail even when server times are not quite in seq order.
func trimmablePrefix(members []string, byAge bool, cutoff time.Time) (int64, error) {
	var upTo int64
	for _, s := range members {
		var m struct {
			Seq       int64     `json:"seq"`
			CreatedAt time.Time `json:"server_time"`
		}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			return 0, &Error{Code: EINTERNAL, Message: "decode hot message", Err: fmt.Errorf("%.60s: %w", s, err)}
		}
		if byAge && m.CreatedAt.After(cutoff) {
			break
		}
		upTo = m.Seq
	}
	return upTo, nil
}

// HotStats is the size and lag of the hot tier, for `shopdesk archive status` and the flush lag
// metrics.
type HotStats struct {
	// DirtyConversations have messages not yet flushed to the warm store.
	DirtyConversations int64 `json:"dirty_conversations"`
	// UnflushedMessages counts the messages not yet flushed, in the dirty conversations looked at.
	UnflushedMessages int64 `json:"unflushed_messages"`
	// OldestUnflushed is the server time of the oldest message not yet flushed (zero: none).
	OldestUnflushed time.Time `json:"oldest_unflushed,omitzero"`
	// Complete is false when there were more dirty conversations than were looked at.
	Complete bool `json:"complete"`
	// TrimConversations is the size of the trim set: conversations holding more hot messages than
	// the trim policy keeps, or flushed since the last trim.
	TrimConversations int64 `json:"trim_conversations"`
	// UsedMemoryBytes is Redis's used_memory: the hot tier with everything else this Redis holds.
	UsedMemoryBytes int64 `json:"redis_used_memory_bytes"`
}

// HotStats measures the hot tier, looking at up to maxConversations dirty conversations.
func (l *RedisLog) HotStats(ctx context.Context, maxConversations int) (HotStats, error) {
	var st HotStats
	var dirty, trim *redis.IntCmd
	var info *redis.StringCmd
	if _, err := l.rdb.Pipelined(ctx, func(pp redis.Pipeliner) error {
		dirty = pp.SCard(ctx, l.dirtyKey())
		trim = pp.SCard(ctx, l.trimKey())
		info = pp.Info(ctx, "memory")
		return nil
	}); err != nil {
		return st, unavailable(err, "measure the hot tier")
	}
	st.DirtyConversations, st.TrimConversations = dirty.Val(), trim.Val()
	for _, line := range strings.Split(info.Val(), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			st.UsedMemoryBytes, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	var ids []int64
	seen := map[int64]bool{}
	var cursor uint64
	for len(ids) < maxConversations {
		members, next, err := l.rdb.SScan(ctx, l.dirtyKey(), cursor, "", 100).Result()
		if err != nil {
			return st, unavailable(err, "scan dirty conversations")
		}
		for _, s := range members {
			if id, err := strconv.ParseInt(s, 10, 64); err == nil && !seen[id] && len(ids) < maxConversations {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	st.Complete = int64(len(ids)) >= st.DirtyConversations
	markers := make([]*redis.StringCmd, len(ids))
	if _, err := l.rdb.Pipelined(ctx, func(pp redis.Pipeliner) error {
		for i, id := range ids {
			markers[i] = pp.Get(ctx, l.key(id, "flushed"))
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return st, unavailable(err, "read flushed seq")
	}
	counts := make([]*redis.IntCmd, len(ids))
	firsts := make([]*redis.StringSliceCmd, len(ids))
	if _, err := l.rdb.Pipelined(ctx, func(pp redis.Pipeliner) error {
		for i, id := range ids {
			flushed, _ := markers[i].Int64() // none: nothing flushed yet
			above := "(" + strconv.FormatInt(flushed, 10)
			counts[i] = pp.ZCount(ctx, l.key(id, "log"), above, "+inf")
			firsts[i] = pp.ZRangeArgs(ctx, redis.ZRangeArgs{Key: l.key(id, "log"), Start: above, Stop: "+inf", ByScore: true, Count: 1})
		}
		return nil
	}); err != nil {
		return st, unavailable(err, "read unflushed messages")
	}
	for i := range ids {
		st.UnflushedMessages += counts[i].Val()
		if page, err := decodeMessages(firsts[i].Val()); err == nil && len(page) == 1 {
			if t := page[0].CreatedAt; st.OldestUnflushed.IsZero() || t.Before(st.OldestUnflushed) {
				st.OldestUnflushed = t
			}
		}
	}
	return st, nil
}
