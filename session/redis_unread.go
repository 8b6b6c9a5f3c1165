package session

import (
	"context"
	_ "embed" // Lua scripts
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lua/unread_add.lua
	unreadAddLua    string
	unreadAddScript = redis.NewScript(unreadAddLua)

	//go:embed lua/unread_read.lua
	unreadReadLua    string
	unreadReadScript = redis.NewScript(unreadReadLua)
)

// RedisUnread keeps unread counters in Redis with the semantics of SQLUnread: one hash per reader,
// {u:<reader>}, holding per conversation the count (c:<id>), the last counted seq (l:<id>) and the
// read seq (r:<id>), and the reader's total. Each change is one Lua script over that hash, so the
// total always equals the sum of the counts.
type RedisUnread struct {
	rdb     redis.UniversalClient
	scripts *scriptPipe
	prefix  string
}

// NewRedisUnread returns unread counters in rdb under prefix.
func NewRedisUnread(rdb redis.UniversalClient, prefix string) *RedisUnread {
	return &RedisUnread{rdb: rdb, scripts: &scriptPipe{rdb: rdb}, prefix: prefix}
}

func (u *RedisUnread) key(reader string) string { return u.prefix + "{u:" + reader + "}" }

// Add counts seq as unread for reader unless it was counted already.
func (u *RedisUnread) Add(ctx context.Context, reader string, conversationID, seq int64) (UnreadCount, error) {
	return u.run(ctx, unreadAddScript, reader, conversationID, seq)
}

// Read marks everything up to seq as read. Counters do not remember which seqs were counted, so a
// read below the last counted seq keeps at most the seqs above it.
func (u *RedisUnread) Read(ctx context.Context, reader string, conversationID, seq int64) (UnreadCount, error) {
	return u.run(ctx, unreadReadScript, reader, conversationID, seq)
}

func (u *RedisUnread) run(ctx context.Context, s *redis.Script, reader string, conversationID, seq int64) (UnreadCount, error) {
	res, err := u.scripts.run(ctx, s, []string{u.key(reader)}, conversationID, seq).Int64Slice()
	if err != nil {
		return UnreadCount{}, unavailable(err, "update unread counters")
	}
	if len(res) != 3 {
		return UnreadCount{}, Errorf(EINTERNAL, "unread script returned %v", res)
	}
	return UnreadCount{ConversationID: conversationID, Count: res[0], Total: res[1], ReadSeq: res[2]}, nil
}

// Get returns reader's non-zero counters and total. One HGETALL reads them all at one instant, so the
// total matches the counters without a script.
func (u *RedisUnread) Get(ctx context.Context, reader string) (map[int64]int64, int64, error) {
	fields, err := u.rdb.HGetAll(ctx, u.key(reader)).Result()
	if err != nil {
		return nil, 0, unavailable(err, "read unread counters")
	}
	out := map[int64]int64{}
	var total int64
	for f, v := range fields {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, 0, Errorf(EINTERNAL, "unread field %s of %s holds %q", f, reader, v)
		}
		if f == "total" {
			total = n
			continue
		}
		id, ok := strings.CutPrefix(f, "c:")
		if !ok || n <= 0 {
			continue
		}
		conv, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			return nil, 0, Errorf(EINTERNAL, "unread field %s of %s is not a conversation", f, reader)
		}
		out[conv] = n
	}
	return out, total, nil
}
