package agent

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisPresence keeps heartbeats in Redis for many nodes: a sorted set per shop,
// presence:{s:<shop>}, of staff ids scored by the last beat in unix milliseconds, and the set
// presence:shops of every shop that ever had a beat, so that Overdue can visit them all. Times have
// millisecond resolution. Keys do not expire: expiry events are lost when no node listens, so the
// sweeper asks Overdue instead.
type RedisPresence struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedisPresence returns the presence table in rdb under prefix.
func NewRedisPresence(rdb redis.UniversalClient, prefix string) *RedisPresence {
	return &RedisPresence{rdb: rdb, prefix: prefix}
}

func (p *RedisPresence) shopKey(shopID int64) string {
	return p.prefix + "presence:{s:" + strconv.FormatInt(shopID, 10) + "}"
}

// shopsKey lists shops with a sorted set. Shops are never removed from it: removing one when its set
// empties would race with a concurrent Beat (the two keys live in different Cluster slots, so no
// script can change both), and the list is bounded by the number of shops.
func (p *RedisPresence) shopsKey() string { return p.prefix + "presence:shops" }

// Beat records a heartbeat. The shop is listed in the same round trip; if only that part fails, the
// error makes the caller beat again, which repairs it.
func (p *RedisPresence) Beat(ctx context.Context, shopID, staffID int64, at time.Time) error {
	_, err := p.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		pl.SAdd(ctx, p.shopsKey(), shopID)
		pl.ZAdd(ctx, p.shopKey(shopID), redis.Z{Score: float64(at.UnixMilli()), Member: staffID})
		return nil
	})
	return unavailable(err, "record heartbeat")
}

// Overdue returns the beats older than before across all shops, oldest first, at most limit of them
// (all when limit <= 0).
func (p *RedisPresence) Overdue(ctx context.Context, before time.Time, limit int) ([]Beat, error) {
	bound := "(" + strconv.FormatInt(ceilMilli(before), 10)
	var out []Beat
	var cursor uint64
	for {
		shops, next, err := p.rdb.SScan(ctx, p.shopsKey(), cursor, "", 200).Result()
		if err != nil {
			return nil, unavailable(err, "list shops with presence")
		}
		ids := make([]int64, len(shops))
		for i, s := range shops {
			if ids[i], err = strconv.ParseInt(s, 10, 64); err != nil {
				return nil, Errorf(EINTERNAL, "presence shop list holds %q", s)
			}
		}
		// The oldest limit beats of each shop are enough to find the oldest limit overall.
		page := redis.ZRangeArgs{Start: "-inf", Stop: bound, ByScore: true}
		if limit > 0 {
			page.Count = int64(limit)
		}
		cmds := make([]*redis.ZSliceCmd, len(shops))
		_, err = p.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for i, id := range ids {
				page.Key = p.shopKey(id)
				cmds[i] = pl.ZRangeArgsWithScores(ctx, page)
			}
			return nil
		})
		if err != nil {
			return nil, unavailable(err, "read heartbeats")
		}
		for i, cmd := range cmds {
			for _, z := range cmd.Val() {
				member, _ := z.Member.(string)
				staffID, err := strconv.ParseInt(member, 10, 64)
				if err != nil {
					return nil, Errorf(EINTERNAL, "presence of shop %d holds %q", ids[i], z.Member)
				}
				out = append(out, Beat{ShopID: ids[i], StaffID: staffID, At: time.UnixMilli(int64(z.Score)).UTC()})
			}
		}
		if limit > 0 && len(out) > limit {
			sortBeats(out)
			out = out[:limit]
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	sortBeats(out)
	return out, nil
}

func sortBeats(b []Beat) {
	sort.Slice(b, func(i, j int) bool {
		if !b[i].At.Equal(b[j].At) {
			return b[i].At.Before(b[j].At)
		}
		if b[i].ShopID != b[j].ShopID {
			return b[i].ShopID < b[j].ShopID
		}
		return b[i].StaffID < b[j].StaffID
	})
}

// Forget removes a heartbeat.
func (p *RedisPresence) Forget(ctx context.Context, shopID, staffID int64) error {
	return unavailable(p.rdb.ZRem(ctx, p.shopKey(shopID), staffID).Err(), "forget heartbeat")
}

// Online returns the staff of shop whose last beat is at or after since, by id.
func (p *RedisPresence) Online(ctx context.Context, shopID int64, since time.Time) ([]int64, error) {
	members, err := p.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: p.shopKey(shopID), Start: strconv.FormatInt(ceilMilli(since), 10), Stop: "+inf", ByScore: true}).Result()
	if err != nil {
		return nil, unavailable(err, "read heartbeats")
	}
	out := make([]int64, 0, len(members))
	for _, m := range members {
		id, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			return nil, Errorf(EINTERNAL, "presence of shop %d holds %q", shopID, m)
		}
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// ceilMilli is t in unix milliseconds rounded up, so that comparing millisecond scores with it agrees
// with comparing the times: a beat stored as ms m is before t exactly when m < ceilMilli(t).
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.After(time.UnixMilli(ms)) {
		ms++
	}
	return ms
}
