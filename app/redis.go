package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisBus is the cross-node event bus over Redis pub/sub: at-most-once, which is enough because
// devices never depend on a push arriving (they sync by seq).
//
// Publish only queues: one publisher goroutine at a time sends what has queued as one PUBLISH of a
// batch, so that a busy node spends one Redis round trip on many events instead of one each, off the
// sender's path. Events leave in the order they were queued, and the session service queues a
// conversation's events in seq order, so other nodes see them in that order too.
type redisBus struct {
	rdb     redis.UniversalClient
	channel string

	mu         sync.Mutex
	queue      []busMessage
	spare      []busMessage // the last batch's slice, for the next queue
	buf        []byte       // the publisher's encoding buffer; only the one publisher touches it
	publishing bool
	selfHead   string // how this node's batches start: they are skipped when they come back
	lost       error  // why a background publish failed, reported by the next Publish
}

const (
	// busQueueMax bounds the events waiting for Redis; past it events are dropped (at-most-once).
	busQueueMax = 1 << 16
	// busBatchBytes bounds one PUBLISH payload.
	busBatchBytes = 256 << 10
	// busLinger is how long a small batch waits for more events; busLingerBelow is how many events
	// make a batch big enough to go at once.
	busLinger      = time.Millisecond
	busLingerBelow = 64
	// busPublishTimeout bounds one background PUBLISH.
	busPublishTimeout = 3 * time.Second
)

func (b *redisBus) Publish(_ context.Context, m busMessage) error {
	b.mu.Lock()
	if len(b.queue) >= busQueueMax {
		b.mu.Unlock()
		return errors.New("bus queue full: Redis is not keeping up")
	}
	if b.selfHead == "" {
		b.selfHead = `{"n":` + strconv.Quote(m.Node) + `,`
	}
	b.queue = append(b.queue, m)
	start := !b.publishing
	b.publishing = true
	lost := b.lost
	b.lost = nil
	b.mu.Unlock()
	if start {
		go b.publishQueued()
	}
	return lost
}

// publishQueued sends queued events in batches until the queue is empty.
func (b *redisBus) publishQueued() {
	linger := time.NewTimer(busLinger)
	defer linger.Stop()
	for {
		// A batch waits busLinger for more events unless it is big already: each PUBLISH costs this
		// node and Redis a round trip, and comes back to this node too, so at a moderate rate one per
		// event would cost more than the event. Devices on other nodes get events busLinger later.
		b.mu.Lock()
		small := len(b.queue) < busLingerBelow
		b.mu.Unlock()
		if small {
			linger.Reset(busLinger)
			<-linger.C
		}
		b.mu.Lock()
		batch := b.queue
		b.queue, b.spare = b.spare[:0], nil
		if len(batch) == 0 {
			b.publishing = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.publish(batch)
		clear(batch)
		b.mu.Lock()
		if cap(batch) <= busQueueMax/16 {
			b.spare = batch[:0]
		}
		b.mu.Unlock()
	}
}

// publish sends batch in PUBLISHes of at most busBatchBytes.
func (b *redisBus) publish(batch []busMessage) {
	for len(batch) > 0 {
		var n int
		b.buf, n = appendBusBatch(b.buf[:0], batch)
		buf := b.buf
		if cap(b.buf) > 4*busBatchBytes {
			b.buf = nil
		}
		batch = batch[n:]
		ctx, cancel := context.WithTimeout(context.Background(), busPublishTimeout)
		err := b.rdb.Publish(ctx, b.channel, buf).Err()
		cancel()
		if err != nil {
			b.mu.Lock()
			b.lost = fmt.Errorf("publish %d events: %w", n, err)
			b.mu.Unlock()
		}
	}
}

// appendBusBatch encodes events of one node, as many as fit in busBatchBytes (at least one), as
// {"n":node,"m":[{"to":[...],"ev":...},...]} and says how many it took.
func appendBusBatch(buf []byte, ms []busMessage) ([]byte, int) {
	buf = append(buf, `{"n":`...)
	buf = strconv.AppendQuote(buf, ms[0].Node)
	buf = append(buf, `,"m":[`...)
	n := 0
	for _, m := range ms {
		if m.Node != ms[0].Node || (n > 0 && len(buf)+len(m.Data) > busBatchBytes) {
			break
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"to":[`...)
		for i, k := range m.To {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = strconv.AppendQuote(buf, k)
		}
		buf = append(buf, `],"ev":`...)
		buf = append(buf, m.Data...)
		buf = append(buf, '}')
		n++
	}
	return append(buf, "]}"...), n
}

// busPayload is one PUBLISH: a batch of one node's events.
type busPayload struct {
	Node string `json:"n"`
	Msgs []struct {
		To   []string        `json:"to"`
		Data json.RawMessage `json:"ev"`
	} `json:"m"`
}

func (b *redisBus) Run(ctx context.Context, deliver func(busMessage)) error {
	for ctx.Err() == nil {
		sub := b.rdb.Subscribe(ctx, b.channel)
		ch := sub.Channel(redis.WithChannelSize(4096))
	receive:
		for {
			select {
			case <-ctx.Done():
				break receive
			case msg, ok := <-ch:
				if !ok {
					break receive
				}
				if b.ours(msg.Payload) {
					continue // this node's own batch: its devices had the events already
				}
				var p busPayload
				if json.Unmarshal([]byte(msg.Payload), &p) != nil {
					continue
				}
				if p.Msgs == nil { // one event, as nodes before batching published them
					var m busMessage
					if json.Unmarshal([]byte(msg.Payload), &m) == nil && m.Data != nil {
						deliver(m)
					}
					continue
				}
				for _, m := range p.Msgs {
					deliver(busMessage{Node: p.Node, To: m.To, Data: m.Data})
				}
			}
		}
		sub.Close()
		if ctx.Err() == nil {
			t := time.NewTimer(500 * time.Millisecond)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
	}
	return nil
}

// ours reports whether payload is a batch this bus published, without decoding it.
func (b *redisBus) ours(payload string) bool {
	b.mu.Lock()
	head := b.selfHead
	b.mu.Unlock()
	return head != "" && strings.HasPrefix(payload, head)
}

// nodeInfo is what a node tells the cluster about itself.
type nodeInfo struct {
	ID    string `json:"id"`
	URL   string `json:"url"`
	Conns int    `json:"conns"`
}

// nodeRegistry is the access schedule service's data: live nodes with their connection counts.
type nodeRegistry interface {
	register(ctx context.Context, n nodeInfo) error
	deregister(ctx context.Context, id string) error
	live(ctx context.Context) ([]nodeInfo, error)
}

// soloRegistry is the registry of a node without Redis: only itself.
type soloRegistry struct{ self func() nodeInfo }

func (s soloRegistry) register(context.Context, nodeInfo) error { return nil }
func (s soloRegistry) deregister(context.Context, string) error { return nil }
func (s soloRegistry) live(context.Context) ([]nodeInfo, error) { return []nodeInfo{s.self()}, nil }

// redisRegistry keeps heartbeats in a sorted set and details in a hash. A node whose heartbeat is
// older than ttl is not offered to clients, even if its key lingers.
type redisRegistry struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

func (r *redisRegistry) register(ctx context.Context, n nodeInfo) error {
	data, _ := json.Marshal(n)
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, r.prefix+"nodes", redis.Z{Score: float64(time.Now().UnixMilli()), Member: n.ID})
		p.HSet(ctx, r.prefix+"nodes:info", n.ID, data)
		return nil
	})
	if err != nil {
		return err
	}
	return r.prune(ctx)
}

// staleAfter is how many heartbeat TTLs a node may be silent before its entry is removed: a crashed
// node never deregisters, and its entry would otherwise stay forever (live ignores it after one TTL).
const staleAfter = 10

// prune removes the entries of nodes silent for staleAfter TTLs. A node that comes back registers
// again with its next heartbeat.
func (r *redisRegistry) prune(ctx context.Context) error {
	max := "(" + strconv.FormatInt(time.Now().Add(-staleAfter*r.ttl).UnixMilli(), 10)
	stale, err := r.rdb.ZRangeByScore(ctx, r.prefix+"nodes", &redis.ZRangeBy{Min: "-inf", Max: max}).Result()
	if err != nil || len(stale) == 0 {
		return err
	}
	members := make([]any, len(stale))
	for i, id := range stale {
		members[i] = id
	}
	_, err = r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, r.prefix+"nodes", members...)
		p.HDel(ctx, r.prefix+"nodes:info", stale...)
		return nil
	})
	return err
}

func (r *redisRegistry) deregister(ctx context.Context, id string) error {
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, r.prefix+"nodes", id)
		p.HDel(ctx, r.prefix+"nodes:info", id)
		return nil
	})
	return err
}

func (r *redisRegistry) live(ctx context.Context) ([]nodeInfo, error) {
	min := strconv.FormatInt(time.Now().Add(-r.ttl).UnixMilli(), 10)
	ids, err := r.rdb.ZRangeByScore(ctx, r.prefix+"nodes", &redis.ZRangeBy{Min: min, Max: "+inf"}).Result()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	vals, err := r.rdb.HMGet(ctx, r.prefix+"nodes:info", ids...).Result()
	if err != nil {
		return nil, err
	}
	var out []nodeInfo
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		var n nodeInfo
		if json.Unmarshal([]byte(s), &n) == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// leastLoaded orders nodes by connections, fewest first; ties by id so every node answers alike.
func leastLoaded(nodes []nodeInfo) []nodeInfo {
	sort.Slice(nodes, func(i, j int) bool {
		if nodes[i].Conns != nodes[j].Conns {
			return nodes[i].Conns < nodes[j].Conns
		}
		return nodes[i].ID < nodes[j].ID
	})
	return nodes
}

// lease is a lock held by one node at a time for a bounded time, so that a dead holder never blocks
// the others: SET NX PX with a random token, released by compare-and-delete.
type lease interface {
	acquire(ctx context.Context, name string, ttl time.Duration) (release func(), ok bool)
}

type localLease struct{}

type redisLease struct {
	rdb    redis.UniversalClient
	prefix string
	token  string
}

var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

func (l *redisLease) acquire(ctx context.Context, name string, ttl time.Duration) (func(), bool) {
	key := l.prefix + "lease:" + name
	ok, err := l.rdb.SetNX(ctx, key, l.token, ttl).Result()
	if err != nil || !ok {
		return nil, false
	}
	return func() { releaseScript.Run(context.Background(), l.rdb, []string{key}, l.token) }, true
}

func (l *localLease) acquire(context.Context, string, time.Duration) (func(), bool) {
	return func() {}, true
}

// durability is what Redis's persistence settings promise about acknowledged messages.
type durability struct {
	AppendOnly      string `json:"appendonly"`
	AppendFsync     string `json:"appendfsync"`
	MaxmemoryPolicy string `json:"maxmemory_policy"`
	Mode            string `json:"mode"`
	Promise         string `json:"promise"`
}

// readDurability reads the settings at start. An evicting maxmemory-policy is refused: Redis could
// silently drop seq counters and dedupe records, and with them the no-duplicate promise.
func readDurability(ctx context.Context, rdb redis.UniversalClient) (durability, error) {
	var d durability
	get := func(name string) (string, error) {
		v, err := rdb.ConfigGet(ctx, name).Result()
		if err != nil {
			return "", err
		}
		return v[name], nil
	}
	var err error
	if d.AppendOnly, err = get("appendonly"); err != nil {
		return d, fmt.Errorf("read redis config: %w", err)
	}
	if d.AppendFsync, err = get("appendfsync"); err != nil {
		return d, err
	}
	if d.MaxmemoryPolicy, err = get("maxmemory-policy"); err != nil {
		return d, err
	}
	if d.MaxmemoryPolicy != "noeviction" {
		return d, errors.New("redis maxmemory-policy is " + d.MaxmemoryPolicy + ": Shopdesk needs noeviction, or Redis may evict seq counters and dedupe records (CONFIG SET maxmemory-policy noeviction)")
	}
	switch {
	case d.AppendOnly == "yes" && d.AppendFsync == "always":
		d.Mode, d.Promise = "always", "an acknowledged message survives a Redis crash"
	case d.AppendOnly == "yes" && d.AppendFsync == "everysec":
		d.Mode, d.Promise = "everysec", "a Redis crash may lose up to about one second of acknowledged messages not yet flushed to MySQL"
	case d.AppendOnly == "yes":
		d.Mode, d.Promise = "os", "a Redis crash may lose acknowledged messages the OS had not yet written; a Shopdesk node crash loses nothing"
	default:
		d.Mode, d.Promise = "none", "a Redis crash loses every acknowledged message not yet flushed to MySQL (the flush job runs every --flush-schedule, a second by default); a Shopdesk node crash loses nothing"
	}
	if strings.TrimSpace(d.Mode) == "" {
		d.Mode = "none"
	}
	return d, nil
}
