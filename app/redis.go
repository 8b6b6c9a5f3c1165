package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisBus is the cross-node event bus over Redis pub/sub: at-most-once, which is enough because
// devices never depend on a push arriving (they sync by seq).
type redisBus struct {
	rdb     redis.UniversalClient
	channel string
}

func (b *redisBus) Publish(ctx context.Context, m busMessage) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return b.rdb.Publish(ctx, b.channel, data).Err()
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
				var m busMessage
				if json.Unmarshal([]byte(msg.Payload), &m) == nil {
					deliver(m)
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
		d.Mode, d.Promise = "none", "a Redis crash loses every acknowledged message not yet flushed to MySQL (flush-interval); a Shopdesk node crash loses nothing"
	}
	if strings.TrimSpace(d.Mode) == "" {
		d.Mode = "none"
	}
	return d, nil
}
