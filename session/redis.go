package session

import (
	"bytes"
	"context"
	_ "embed" // Lua scripts
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopdesk/shopdesk/session/crashpoint"
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
	scripts   *scriptPipe
	prefix    string
	warm      *SQLLog
	conflicts atomic.Int64
}

// NewRedisLog returns the hot log in rdb under prefix, backed by the warm store warm.
func NewRedisLog(rdb redis.UniversalClient, prefix string, warm *SQLLog) *RedisLog {
	return &RedisLog{rdb: rdb, scripts: &scriptPipe{rdb: rdb}, prefix: prefix, warm: warm}
}

// scriptPipe runs the Lua scripts of the send path for many goroutines at once. A call made while
// none is in flight goes to Redis at once, alone; calls made meanwhile queue, and when the call in
// flight is done the first of them sends every queued one in one pipeline and hands on to the next
// queue. So a lone sender pays one plain round trip, and a busy node one round trip (one write and
// one read, in Redis and here) for many sends instead of one each, which under load cost more in
// syscalls than the scripts cost in Redis. Every call still waits for its own reply; calls of one
// goroutine are never reordered, and the send path issues a conversation's appends one at a time.
type scriptPipe struct {
	rdb   redis.UniversalClient
	mu    sync.Mutex
	busy  bool // a call or a pipeline is in flight
	queue []*pipeCall
}

type pipeCall struct {
	cmd *redis.Cmd
	// wake says the call is done (nil) or hands its goroutine the batch to send, itself first.
	wake chan []*pipeCall
}

// run runs script like Script.Run: EVALSHA, and EVAL when Redis does not know the script yet.
func (p *scriptPipe) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, "evalsha", script.Hash(), len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmd := redis.NewCmd(ctx, append(cmdArgs, args...)...)
	p.mu.Lock()
	if !p.busy {
		p.busy = true
		p.mu.Unlock()
		p.send(ctx, []*pipeCall{{cmd: cmd}})
	} else {
		c := &pipeCall{cmd: cmd, wake: make(chan []*pipeCall, 1)}
		p.queue = append(p.queue, c)
		p.mu.Unlock()
		if batch := <-c.wake; batch != nil {
			p.send(ctx, batch)
		}
	}
	if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		return script.Run(ctx, p.rdb, keys, args...)
	}
	return cmd
}

// send sends batch, whose first call is the caller's, wakes the others and hands the queue on.
func (p *scriptPipe) send(ctx context.Context, batch []*pipeCall) {
	if len(batch) == 1 {
		_ = p.rdb.Process(ctx, batch[0].cmd)
	} else {
		pipe := p.rdb.Pipeline()
		for _, c := range batch {
			_ = pipe.Process(ctx, c.cmd)
		}
		// The batch carries other callers' commands: this caller giving up must not fail them.
		_, _ = pipe.Exec(context.WithoutCancel(ctx))
	}
	for _, c := range batch[1:] {
		c.wake <- nil
	}
	p.mu.Lock()
	next := p.queue
	p.queue = nil
	if len(next) == 0 {
		p.busy = false
	}
	p.mu.Unlock()
	if len(next) > 0 {
		next[0].wake <- next
	}
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

// warmBeforeKey holds WarmBefore, in Unix nanoseconds.
func (l *RedisLog) warmBeforeKey() string { return l.prefix + "hot:warm_before" }

// raiseScript sets KEYS[1] to ARGV[1] unless it already holds a larger number: a run that started
// earlier and ended later must not move the mark back.
var raiseScript = redis.NewScript(`local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 0`)

// MarkWarmBefore records that every message appended before t is in the warm store: the flush job
// calls it with the start of a run that drained the hot tier.
func (l *RedisLog) MarkWarmBefore(ctx context.Context, t time.Time) error {
	err := raiseScript.Run(ctx, l.rdb, []string{l.warmBeforeKey()}, t.UnixNano()).Err()
	return unavailable(err, "mark the warm watermark")
}

// WarmBefore returns a time before which every message of the log is in the warm store: AppendGrace
// before the start of the last flush run that drained the hot tier, or the zero time before the
// first. Readers that follow the warm store in created_at order (the index job) go no further, so a
// conversation flushed late never lands behind them.
func (l *RedisLog) WarmBefore(ctx context.Context) (time.Time, error) {
	ns, err := l.rdb.Get(ctx, l.warmBeforeKey()).Int64()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, unavailable(err, "read the warm watermark")
	}
	return time.Unix(0, ns).Add(-AppendGrace), nil
}

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
		res, err := l.scripts.run(ctx, appendScript, keys, m.ClientMsgID, head, tail, m.ConversationID).Slice()
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
	// Hot is read before warm: a trim between the two reads only removes messages already warm.
	hot, hotMin, inHot, err := l.hotPage(ctx, conversationID, redis.ZRangeArgs{
		Start: "(" + strconv.FormatInt(after, 10), Stop: "+inf", ByScore: true, Count: int64(limit)})
	if err != nil {
		return nil, err
	}
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

// hotPage reads, in one round trip, a page of the hot log selected by args (Key is filled in) and the
// lowest seq the hot log still holds (inHot false when it holds none).
func (l *RedisLog) hotPage(ctx context.Context, conversationID int64, args redis.ZRangeArgs) (page []Message, hotMin int64, inHot bool, err error) {
	args.Key = l.key(conversationID, "log")
	var lowest *redis.ZSliceCmd
	var raw *redis.StringSliceCmd
	_, err = l.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		lowest = p.ZRangeWithScores(ctx, args.Key, 0, 0)
		raw = p.ZRangeArgs(ctx, args)
		return nil
	})
	if err != nil {
		return nil, 0, false, unavailable(err, "read hot messages")
	}
	if page, err = decodeMessages(raw.Val()); err != nil {
		return nil, 0, false, err
	}
	hotMin, inHot = lowestSeq(lowest.Val())
	return page, hotMin, inHot, nil
}

// Before returns up to limit messages with seq < before (the newest of them), in seq order, from the
// hot log and, below what it holds, from the warm store.
func (l *RedisLog) Before(ctx context.Context, conversationID, before int64, limit int) ([]Message, error) {
	if limit == 0 {
		return nil, nil
	}
	hot, hotMin, inHot, err := l.hotPage(ctx, conversationID, redis.ZRangeArgs{
		Start: "(" + strconv.FormatInt(before, 10), Stop: "-inf", ByScore: true, Rev: true, Count: int64(limit)})
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
	if inHot && hotMin < bound {
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
//
// Dirty conversations are flushed together, up to 100 at a time: one pipelined round trip reads
// their markers, one their messages, one insert writes them all and one round trip advances the
// markers, instead of three round trips and an insert per conversation.
func (l *RedisLog) Flush(ctx context.Context, maxMessages int) (FlushStats, error) {
	return l.FlushShard(ctx, maxMessages, 0, 1)
}

// FlushShard is Flush for the conversations whose id is shard modulo shards: flushes of different
// shards of one hot tier never touch the same conversation, so they may run at once, each waiting on
// its own round trips to Redis and the warm store.
func (l *RedisLog) FlushShard(ctx context.Context, maxMessages, shard, shards int) (FlushStats, error) {
	if shards < 1 || shard < 0 || shard >= shards {
		return FlushStats{}, Errorf(EINVALID, "flush shard %d of %d", shard, shards)
	}
	var stats FlushStats
	budget := maxMessages
	if budget <= 0 {
		budget = defaultFlushMax
	}
	var cursor uint64
	for {
		members, next, err := l.rdb.SScan(ctx, l.dirtyKey(), cursor, "", 100).Result()
		if err != nil {
			return stats, unavailable(err, "scan dirty conversations")
		}
		ids := make([]int64, 0, len(members))
		for _, s := range members {
			id, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return stats, Errorf(EINTERNAL, "dirty set holds %q, not a conversation id", s)
			}
			if id%int64(shards) == int64(shard) && !slices.Contains(ids, id) { // SSCAN may return a member twice
				ids = append(ids, id)
			}
		}
		if err := l.flushConversations(ctx, ids, &budget, &stats); err != nil || budget <= 0 || next == 0 {
			return stats, err
		}
		cursor = next
	}
}

// flushing is one conversation's part of a flush round.
type flushing struct {
	id      int64
	flushed int64 // the marker: highest seq known to be warm
	msgs    []Message
	moved   int
}

// flushConversations copies the conversations' unflushed messages to the warm store, round by round,
// until none is left or the budget is spent.
func (l *RedisLog) flushConversations(ctx context.Context, ids []int64, budget *int, stats *FlushStats) error {
	convs := make([]*flushing, len(ids))
	for i, id := range ids {
		convs[i] = &flushing{id: id}
	}
	for len(convs) > 0 && *budget > 0 {
		// Pages of a fair share of the budget: a backlog is read about a budget at a time, and a
		// conversation whose page came back full goes round again.
		n := min(flushBatch, max(1, (*budget+len(convs)-1)/len(convs)))
		if err := l.readUnflushed(ctx, convs, n); err != nil {
			return err
		}
		// Within the budget, in order; what does not fit waits for the next flush.
		var msgs []Message
		room := *budget
		for _, c := range convs {
			if len(c.msgs) > room {
				c.msgs = c.msgs[:room]
			}
			room -= len(c.msgs)
			msgs = append(msgs, c.msgs...)
		}
		if len(msgs) > 0 {
			bad, err := l.warm.Insert(ctx, msgs)
			if err != nil {
				return err
			}
			crashpoint.Hit("flush.after_insert") // warm, but the markers have not moved
			// A conflict is counted once and the marker still advances past it: retrying cannot
			// resolve it, and re-counting it on every flush would make the alarm meaningless.
			stats.Conflicts += len(bad)
			l.conflicts.Add(int64(len(bad)))
			stats.Messages += len(msgs)
			*budget -= len(msgs)
		}
		for _, c := range convs {
			if len(c.msgs) > 0 {
				if c.moved == 0 {
					stats.Conversations++
				}
				c.moved += len(c.msgs)
				c.flushed = c.msgs[len(c.msgs)-1].Seq
			}
		}
		clean, err := l.markFlushed(ctx, convs)
		if err != nil {
			return err
		}
		// A conversation goes round again only when this round read a full page: more was waiting.
		// What came in meanwhile keeps it dirty for the next flush, which then moves it in bulk.
		more := convs[:0]
		for i, c := range convs {
			if !clean[i] && len(c.msgs) == n {
				more = append(more, c)
			}
		}
		convs = more
	}
	return nil
}

// readUnflushed reads each conversation's marker and up to n messages above it, in two pipelined
// round trips.
func (l *RedisLog) readUnflushed(ctx context.Context, convs []*flushing, n int) error {
	markers := make([]*redis.StringCmd, len(convs))
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range convs {
			markers[i] = p.Get(ctx, l.key(c.id, "flushed"))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return unavailable(err, "read flushed seq")
	}
	pages := make([]*redis.StringSliceCmd, len(convs))
	_, err = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range convs {
			flushed, err := markers[i].Int64()
			if err != nil && !errors.Is(err, redis.Nil) {
				return unavailable(err, "read flushed seq")
			}
			c.flushed = flushed
			pages[i] = p.ZRangeArgs(ctx, redis.ZRangeArgs{Key: l.key(c.id, "log"), Start: "(" + strconv.FormatInt(flushed, 10), Stop: "+inf", ByScore: true, Count: int64(n)})
		}
		return nil
	})
	if err != nil {
		return unavailable(err, "read hot messages to flush")
	}
	for i, c := range convs {
		if c.msgs, err = decodeMessages(pages[i].Val()); err != nil {
			return err
		}
	}
	return nil
}

// markFlushed advances every conversation's marker in one pipelined round trip and says which of them
// have nothing newer left and left the dirty set.
func (l *RedisLog) markFlushed(ctx context.Context, convs []*flushing) ([]bool, error) {
	cmds := make([]*redis.Cmd, len(convs))
	_, _ = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range convs {
			cmds[i] = flushedScript.EvalSha(ctx, p, l.flushedKeys(c.id), c.flushed, c.id)
			// Warm messages may now be trimmed from the hot log (see Trim). A lost SADD only delays
			// that until the conversation's next flush.
			p.SAdd(ctx, l.trimKey(), c.id)
		}
		return nil
	})
	clean := make([]bool, len(convs))
	for i, c := range convs {
		cmd := cmds[i]
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			cmd = flushedScript.Run(ctx, l.rdb, l.flushedKeys(c.id), c.flushed, c.id)
		}
		n, err := cmd.Int()
		if err != nil {
			return nil, unavailable(err, "advance flushed seq")
		}
		clean[i] = n == 1
	}
	return clean, nil
}

func (l *RedisLog) flushedKeys(conversationID int64) []string {
	return []string{l.key(conversationID, "flushed"), l.key(conversationID, "log"), l.dirtyKey()}
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
