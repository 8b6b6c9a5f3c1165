package routing

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopdesk/shopdesk/rules"
)

// Queue is the waiting queue of every shop: sessions no eligible agent could take yet, ordered by
// priority (higher first) and, within a priority, by the time they were enqueued (first in, first
// out; equal times by session id). The engine is its only writer; it rebuilds it from the sessions
// table after a loss (Engine.Recover).
type Queue interface {
	// Push queues the session, or moves it to its new place when it is queued already.
	Push(ctx context.Context, shopID, sessionID int64, priority int, enqueuedAt time.Time) error
	// Remove takes the session out of the queue; removed reports whether it was there, so that of
	// two nodes draining the same queue only one takes a session.
	Remove(ctx context.Context, shopID, sessionID int64) (removed bool, err error)
	// Position returns the session's 1-based place and the queue's length; position 0 when it is not
	// queued.
	Position(ctx context.Context, shopID, sessionID int64) (position, total int, err error)
	// Ordered returns up to limit entries from the head of the queue, in order.
	Ordered(ctx context.Context, shopID int64, limit int) ([]QueueEntry, error)
	// Len returns how many sessions of the shop wait.
	Len(ctx context.Context, shopID int64) (int, error)
}

// QueueEntry is one waiting session.
type QueueEntry struct {
	SessionID  int64     `json:"session_id"`
	Priority   int       `json:"priority"`
	EnqueuedAt time.Time `json:"enqueued_at"`
}

// queueEpoch and queueBand define the Redis score: (MaxPriority-priority)*queueBand + milliseconds
// since queueEpoch. Every score stays below 2^53, where float64 holds integers exactly: 2001 bands
// of 4e12 ms (about 126 years from 2020).
var queueEpoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

const queueBand = 4e12

func clampPriority(p int) int { return max(-rules.MaxPriority, min(rules.MaxPriority, p)) }

func queueScore(priority int, at time.Time) float64 {
	ms := at.Sub(queueEpoch).Milliseconds()
	ms = max(0, min(ms, int64(queueBand)-1))
	return float64(rules.MaxPriority-clampPriority(priority))*queueBand + float64(ms)
}

func fromScore(score float64) (int, time.Time) {
	band := math.Floor(score / queueBand)
	ms := int64(score - band*queueBand)
	return rules.MaxPriority - int(band), queueEpoch.Add(time.Duration(ms) * time.Millisecond)
}

// MemoryQueue keeps the queues in process.
type MemoryQueue struct {
	mu    sync.Mutex
	shops map[int64][]QueueEntry // sorted
}

// NewMemoryQueue returns empty in-process queues.
func NewMemoryQueue() *MemoryQueue { return &MemoryQueue{shops: map[int64][]QueueEntry{}} }

// before orders entries as the Redis score does: priority, then time at millisecond precision, then id.
func before(a, b QueueEntry) bool {
	sa, sb := queueScore(a.Priority, a.EnqueuedAt), queueScore(b.Priority, b.EnqueuedAt)
	if sa != sb {
		return sa < sb
	}
	return a.SessionID < b.SessionID
}

func (q *MemoryQueue) remove(shopID, sessionID int64) bool {
	es := q.shops[shopID]
	for i, e := range es {
		if e.SessionID == sessionID {
			q.shops[shopID] = append(es[:i], es[i+1:]...)
			return true
		}
	}
	return false
}

// Push queues the session in its place.
func (q *MemoryQueue) Push(_ context.Context, shopID, sessionID int64, priority int, enqueuedAt time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.remove(shopID, sessionID)
	e := QueueEntry{SessionID: sessionID, Priority: clampPriority(priority), EnqueuedAt: enqueuedAt.UTC().Truncate(time.Millisecond)}
	es := q.shops[shopID]
	i := sort.Search(len(es), func(i int) bool { return before(e, es[i]) })
	es = append(es, QueueEntry{})
	copy(es[i+1:], es[i:])
	es[i] = e
	q.shops[shopID] = es
	return nil
}

// Remove takes the session out of the queue.
func (q *MemoryQueue) Remove(_ context.Context, shopID, sessionID int64) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.remove(shopID, sessionID), nil
}

// Position returns the session's place and the queue's length.
func (q *MemoryQueue) Position(_ context.Context, shopID, sessionID int64) (int, int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	es := q.shops[shopID]
	for i, e := range es {
		if e.SessionID == sessionID {
			return i + 1, len(es), nil
		}
	}
	return 0, len(es), nil
}

// Ordered returns the head of the queue.
func (q *MemoryQueue) Ordered(_ context.Context, shopID int64, limit int) ([]QueueEntry, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	es := q.shops[shopID]
	if limit > 0 && len(es) > limit {
		es = es[:limit]
	}
	return append([]QueueEntry(nil), es...), nil
}

// Len returns the queue's length.
func (q *MemoryQueue) Len(_ context.Context, shopID int64) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.shops[shopID]), nil
}

// RedisQueue keeps each shop's queue in the sorted set <prefix>{r:<shop>}:queue, scored so that
// ascending order is priority descending then enqueue time (milliseconds); members are session ids
// zero-padded to 20 digits so that equal scores fall back to id order.
type RedisQueue struct {
	rdb    redis.UniversalClient
	cmds   redisCmds
	prefix string
	keys   sync.Map // shop id → queue key
}

// NewRedisQueue returns the queues in rdb under prefix.
func NewRedisQueue(rdb redis.UniversalClient, prefix string) *RedisQueue {
	return &RedisQueue{rdb: rdb, cmds: pipelined(rdb), prefix: prefix}
}

func (q *RedisQueue) key(shopID int64) string {
	if k, ok := q.keys.Load(shopID); ok {
		return k.(string)
	}
	k := shopKey(q.prefix, shopID, "queue")
	q.keys.Store(shopID, k)
	return k
}

func member(sessionID int64) string { return fmt.Sprintf("%020d", sessionID) }

// Push queues the session in its place (ZADD).
func (q *RedisQueue) Push(ctx context.Context, shopID, sessionID int64, priority int, enqueuedAt time.Time) error {
	err := q.cmds.ZAdd(ctx, q.key(shopID), redis.Z{Score: queueScore(priority, enqueuedAt), Member: member(sessionID)}).Err()
	return unavailable(err, "queue session")
}

// Remove takes the session out of the queue (ZREM).
func (q *RedisQueue) Remove(ctx context.Context, shopID, sessionID int64) (bool, error) {
	n, err := q.cmds.ZRem(ctx, q.key(shopID), member(sessionID)).Result()
	if err != nil {
		return false, unavailable(err, "dequeue session")
	}
	return n == 1, nil
}

// Position returns the session's place and the queue's length, read together (MULTI).
func (q *RedisQueue) Position(ctx context.Context, shopID, sessionID int64) (int, int, error) {
	var rank *redis.IntCmd
	var card *redis.IntCmd
	_, err := q.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		rank = p.ZRank(ctx, q.key(shopID), member(sessionID))
		card = p.ZCard(ctx, q.key(shopID))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, unavailable(err, "read queue position")
	}
	total := int(card.Val())
	if errors.Is(rank.Err(), redis.Nil) {
		return 0, total, nil
	}
	return int(rank.Val()) + 1, total, nil
}

// Ordered returns the head of the queue (ZRANGE WITHSCORES).
func (q *RedisQueue) Ordered(ctx context.Context, shopID int64, limit int) ([]QueueEntry, error) {
	stop := int64(-1)
	if limit > 0 {
		stop = int64(limit - 1)
	}
	zs, err := q.cmds.ZRangeWithScores(ctx, q.key(shopID), 0, stop).Result()
	if err != nil {
		return nil, unavailable(err, "read queue")
	}
	out := make([]QueueEntry, 0, len(zs))
	for _, z := range zs {
		m, _ := z.Member.(string)
		id, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			continue
		}
		p, at := fromScore(z.Score)
		out = append(out, QueueEntry{SessionID: id, Priority: p, EnqueuedAt: at})
	}
	return out, nil
}

// Len returns the queue's length (ZCARD).
func (q *RedisQueue) Len(ctx context.Context, shopID int64) (int, error) {
	n, err := q.cmds.ZCard(ctx, q.key(shopID)).Result()
	return int(n), unavailable(err, "read queue length")
}
