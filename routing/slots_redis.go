package routing

import (
	"context"
	_ "embed" // Lua scripts
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/shopdesk/shopdesk/session"
)

var (
	//go:embed lua/claim.lua
	claimLua    string
	claimScript = redis.NewScript(claimLua)

	//go:embed lua/release.lua
	releaseLua    string
	releaseScript = redis.NewScript(releaseLua)
)

// RedisSlots keeps slots in Redis for many nodes. Each write is one Lua script (lua/claim.lua for
// claims and forced claims, lua/release.lua for releases) over the shop's keys, which share the hash
// tag {r:<shop>} so that a script sees them in one Cluster slot: <prefix>{r:<shop>}:load (agent →
// units), <prefix>{r:<shop>}:held (session → agent:units:op) and the claim log, the stream
// <prefix>{r:<shop>}:claims. Two nodes can never both take an agent's last slot: Redis runs one script
// at a time. Reads (Load, Held) are single commands. No key expires.
type RedisSlots struct {
	// LogMax bounds each shop's claim log, approximately (DefaultClaimLogMax when 0; unbounded when
	// negative).
	LogMax int

	rdb    redis.UniversalClient
	cmds   redisCmds
	prefix string
	keyset sync.Map // shop id → its three keys, built once
}

// NewRedisSlots returns the slots in rdb under prefix.
func NewRedisSlots(rdb redis.UniversalClient, prefix string) *RedisSlots {
	return &RedisSlots{rdb: rdb, cmds: pipelined(rdb), prefix: prefix}
}

// redisCmds is the part of a Redis client the hot path uses; both *redis.Client and its
// *redis.AutoPipeliner have it.
type redisCmds interface {
	redis.Scripter
	HMGet(ctx context.Context, key string, fields ...string) *redis.SliceCmd
	HGet(ctx context.Context, key, field string) *redis.StringCmd
	HGetAll(ctx context.Context, key string) *redis.MapStringStringCmd
	ZAdd(ctx context.Context, key string, members ...redis.Z) *redis.IntCmd
	ZRem(ctx context.Context, key string, members ...interface{}) *redis.IntCmd
	ZRangeWithScores(ctx context.Context, key string, start, stop int64) *redis.ZSliceCmd
	ZCard(ctx context.Context, key string) *redis.IntCmd
}

// pipelined returns rdb's autopipeliner when it has one, so that concurrent commands of many
// goroutines share round trips (one write and one read for many) instead of each taking a pooled
// connection and two system calls; each call still waits for its own reply.
func pipelined(rdb redis.UniversalClient) redisCmds {
	if c, ok := rdb.(interface {
		AutoPipeline() (*redis.AutoPipeliner, error)
	}); ok {
		if ap, err := c.AutoPipeline(); err == nil {
			return ap
		}
	}
	return rdb
}

// shopKey names one of a shop's routing keys: <prefix>{r:<shop>}:<name>.
func shopKey(prefix string, shopID int64, name string) string {
	return prefix + "{r:" + strconv.FormatInt(shopID, 10) + "}:" + name
}

func (r *RedisSlots) keys(shopID int64) []string {
	if k, ok := r.keyset.Load(shopID); ok {
		return k.([]string)
	}
	k := []string{shopKey(r.prefix, shopID, "load"), shopKey(r.prefix, shopID, "held"), shopKey(r.prefix, shopID, "claims")}
	r.keyset.Store(shopID, k)
	return k
}

func (r *RedisSlots) logMax() string {
	switch {
	case r.LogMax == 0:
		return strconv.Itoa(DefaultClaimLogMax)
	case r.LogMax < 0:
		return "0"
	}
	return strconv.Itoa(r.LogMax)
}

func (r *RedisSlots) claim(ctx context.Context, shopID, agentID, sessionID int64, units, capacity int, force bool) (bool, int, error) {
	if agentID <= 0 || sessionID <= 0 || units <= 0 {
		return false, 0, errorf(session.EINVALID, "claim needs an agent, a session and units > 0")
	}
	f := "0"
	if force {
		f = "1"
	}
	res, err := claimScript.Run(ctx, r.cmds, r.keys(shopID), agentID, sessionID, units, capacity, f, r.logMax()).Int64Slice()
	if err != nil {
		return false, 0, unavailable(err, "claim slot")
	}
	if len(res) != 2 {
		return false, 0, errorf(session.EINTERNAL, "claim script returned %v", res)
	}
	return res[0] == 1, int(res[1]), nil
}

// Claim takes units of the agent's capacity for the session if they fit, in one script.
func (r *RedisSlots) Claim(ctx context.Context, shopID, agentID, sessionID int64, units, capacity int) (bool, error) {
	ok, _, err := r.claim(ctx, shopID, agentID, sessionID, units, capacity, false)
	return ok, err
}

// ForceClaim takes the units whatever the load and reports whether the agent is above capacity.
func (r *RedisSlots) ForceClaim(ctx context.Context, shopID, agentID, sessionID int64, units, capacity int) (bool, error) {
	_, load, err := r.claim(ctx, shopID, agentID, sessionID, units, capacity, true)
	return load > capacity, err
}

// Release gives back the session's units, in one script.
func (r *RedisSlots) Release(ctx context.Context, shopID, agentID, sessionID int64) (Holding, bool, error) {
	res, err := releaseScript.Run(ctx, r.cmds, r.keys(shopID), agentID, sessionID, r.logMax()).Int64Slice()
	if err != nil {
		return Holding{}, false, unavailable(err, "release slot")
	}
	if len(res) != 3 {
		return Holding{}, false, nil
	}
	return Holding{AgentID: res[0], Units: int(res[1]), Forced: res[2] == 1}, true, nil
}

// Load returns the units each agent holds, with one HMGET (HGETALL for every agent).
func (r *RedisSlots) Load(ctx context.Context, shopID int64, agentIDs []int64) (map[int64]int, error) {
	if agentIDs == nil {
		all, err := r.cmds.HGetAll(ctx, r.keys(shopID)[0]).Result()
		if err != nil {
			return nil, unavailable(err, "read loads")
		}
		out := make(map[int64]int, len(all))
		for k, v := range all {
			id, err1 := strconv.ParseInt(k, 10, 64)
			n, err2 := strconv.Atoi(v)
			if err1 == nil && err2 == nil && n > 0 {
				out[id] = n
			}
		}
		return out, nil
	}
	out := make(map[int64]int, len(agentIDs))
	if len(agentIDs) == 0 {
		return out, nil
	}
	fields := make([]string, len(agentIDs))
	for i, id := range agentIDs {
		fields[i] = strconv.FormatInt(id, 10)
	}
	vals, err := r.cmds.HMGet(ctx, r.keys(shopID)[0], fields...).Result()
	if err != nil {
		return nil, unavailable(err, "read loads")
	}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			out[agentIDs[i]] = n
		}
	}
	return out, nil
}

// Held reports the session's slot.
func (r *RedisSlots) Held(ctx context.Context, shopID, sessionID int64) (Holding, bool, error) {
	v, err := r.cmds.HGet(ctx, r.keys(shopID)[1], strconv.FormatInt(sessionID, 10)).Result()
	if errors.Is(err, redis.Nil) {
		return Holding{}, false, nil
	}
	if err != nil {
		return Holding{}, false, unavailable(err, "read slot")
	}
	h, err := parseHolding(v)
	if err != nil {
		return Holding{}, false, errorf(session.EINTERNAL, "slot of session %d: %v", sessionID, err)
	}
	return h, true, nil
}

// parseHolding reads a held-hash value, "agent:units:op".
func parseHolding(v string) (Holding, error) {
	parts := strings.Split(v, ":")
	if len(parts) != 3 {
		return Holding{}, fmt.Errorf("malformed slot %q", v)
	}
	agentID, err1 := strconv.ParseInt(parts[0], 10, 64)
	units, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return Holding{}, fmt.Errorf("malformed slot %q", v)
	}
	return Holding{AgentID: agentID, Units: units, Forced: parts[2] == OpForce}, nil
}

// Holdings reads the shop's held hash (HGETALL).
func (r *RedisSlots) Holdings(ctx context.Context, shopID int64) (map[int64]Holding, error) {
	all, err := r.rdb.HGetAll(ctx, r.keys(shopID)[1]).Result()
	if err != nil {
		return nil, unavailable(err, "read slots")
	}
	out := make(map[int64]Holding, len(all))
	for k, v := range all {
		id, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			continue
		}
		h, err := parseHolding(v)
		if err != nil {
			return nil, errorf(session.EINTERNAL, "slot of session %d: %v", id, err)
		}
		out[id] = h
	}
	return out, nil
}

// ClaimLog reads the shop's claim stream, oldest first, in pages.
func (r *RedisSlots) ClaimLog(ctx context.Context, shopID int64) ([]ClaimEvent, error) {
	key := shopKey(r.prefix, shopID, "claims")
	var out []ClaimEvent
	start := "-"
	for {
		msgs, err := r.rdb.XRangeN(ctx, key, start, "+", 10_000).Result()
		if err != nil {
			return nil, unavailable(err, "read claim log")
		}
		for _, m := range msgs {
			out = append(out, claimEvent(m))
		}
		if len(msgs) < 10_000 {
			return out, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

func claimEvent(m redis.XMessage) ClaimEvent {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	num := func(k string) int64 { n, _ := strconv.ParseInt(str(k), 10, 64); return n }
	return ClaimEvent{ID: m.ID, Op: str("op"), AgentID: num("agent"), SessionID: num("session"),
		Units: int(num("units")), Capacity: int(num("cap")), Load: int(num("load"))}
}
