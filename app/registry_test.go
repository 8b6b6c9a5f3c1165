package app

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopdesk/shopdesk/migrations/testdb"
)

// TestRegistryPrunesCrashedNodes: a node that crashed never deregisters; once it has been silent for
// staleAfter heartbeats its entry is removed by the live nodes' heartbeats.
func TestRegistryPrunesCrashedNodes(t *testing.T) {
	rdb, prefix := testdb.Redis(t)
	ctx := context.Background()
	reg := &redisRegistry{rdb: rdb, prefix: prefix, ttl: time.Second}
	if err := reg.register(ctx, nodeInfo{ID: "crashed", URL: "http://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	// The crashed node's last heartbeat, moved back: silent for longer than staleAfter TTLs.
	old := float64(time.Now().Add(-(staleAfter + 1) * time.Second).UnixMilli())
	rdb.ZAdd(ctx, prefix+"nodes", redis.Z{Score: old, Member: "crashed"})
	if err := reg.register(ctx, nodeInfo{ID: "quiet", URL: "http://127.0.0.1:2"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.ZCard(ctx, prefix+"nodes").Result(); n != 1 {
		t.Fatalf("nodes left: %d", n)
	}
	if ok, _ := rdb.HExists(ctx, prefix+"nodes:info", "crashed").Result(); ok {
		t.Fatal("the crashed node's info is still there")
	}
	live, err := reg.live(ctx)
	if err != nil || len(live) != 1 || live[0].ID != "quiet" {
		t.Fatalf("live: %+v %v", live, err)
	}
}
