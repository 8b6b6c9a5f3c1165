package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopdesk/shopdesk/migrations"
	"github.com/shopdesk/shopdesk/session"
)

// searchAnswer is the part of GET /api/search the tests read.
type searchAnswer struct {
	Total int64
	Hits  []struct {
		ConversationID int64 `json:"conversation_id"`
		Seq            int64
		Text           string
		Recalled       bool
		Highlights     []string
	}
}

// TestSearch: every message reaches the shop's search index by itself (the index job), and staff find
// it by words, Chinese text, order numbers whole or in part; recalled messages are marked; nothing
// crosses shops and buyers may not search.
func TestSearch(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		node := startNode(t, env, "", "--index-schedule=* * * * * *")
		base := node.URL()
		shop := newShop(t, base, 0)
		other := newShop(t, base, 0)
		buyer := shop.buyer(t, "ivy")
		conv := startConversation(t, base, buyer, map[string]any{"order_id": "E2026112200012"})
		b := dial(t, base, buyer)
		b.sendText(conv, "s1", "订单E2026112200012 还没有发货")
		b.sendText(conv, "s2", "where is my blue teapot?")
		oops := b.sendText(conv, "s3", "my phone is 13812345678")
		if f := b.request(map[string]any{"type": "send", "client_msg_id": "s4", "conversation_id": conv,
			"body": map[string]any{"type": "recall", "recall_seq": oops.Seq}}); f.Type != "ack" {
			t.Fatalf("recall: %+v", f)
		}

		find := func(who authz, q string) (int, searchAnswer) {
			t.Helper()
			var out searchAnswer
			st := api(t, "GET", base+"/api/search?q="+url.QueryEscape(q), who, nil, &out)
			return st, out
		}
		eventually(t, 20*time.Second, "messages indexed", func() bool {
			_, out := find(shop.manager, "teapot")
			return out.Total == 1
		})
		_, out := find(shop.manager, "teapot")
		if h := out.Hits[0]; h.ConversationID != conv || h.Seq != 2 || len(h.Highlights) == 0 || !strings.Contains(h.Highlights[0], "<mark>") {
			t.Fatalf("teapot: %+v", out.Hits)
		}
		for _, q := range []string{"E2026112200012", "2026112200", "发货"} {
			if _, out := find(shop.manager, q); out.Total != 1 || out.Hits[0].Seq != 1 {
				t.Fatalf("search %q: %+v", q, out)
			}
		}
		eventually(t, 20*time.Second, "the recalled message marked", func() bool {
			_, out := find(shop.manager, "13812345678")
			return out.Total == 1 && out.Hits[0].Recalled
		})
		if _, out := find(other.manager, "teapot"); out.Total != 0 {
			t.Fatalf("another shop found %+v", out)
		}
		if st, _ := find(buyer, "teapot"); st != http.StatusForbidden {
			t.Fatalf("a buyer searching: %d", st)
		}
		var e apiError
		if st := api(t, "GET", fmt.Sprintf("%s/api/search?q=x&since=yesterday", base), shop.manager, nil, &e); st != http.StatusBadRequest {
			t.Fatalf("bad since: %d %+v", st, e)
		}
	})
}

// TestIndexWaitsForLateFlush: the index job follows the warm store in created_at order, and the flush
// job moves conversations in its own order (two shards at once), so a newer message of one
// conversation can be warm while an older one of another is still hot. The index must wait for the
// older one instead of moving its cursor past it and never seeing it.
func TestIndexWaitsForLateFlush(t *testing.T) {
	t.Parallel()
	env := productionEnv(t)
	ctx := context.Background()
	data := t.TempDir()
	node := startNode(t, env, data, "--flush-schedule=@every 1h", "--index-schedule=* * * * * *")
	base := node.URL()
	shop := newShop(t, base, 0)
	ann, bob := shop.buyer(t, "ann"), shop.buyer(t, "bob")
	annConv, bobConv := startConversation(t, base, ann, nil), startConversation(t, base, bob, nil)
	if annConv%2 == bobConv%2 { // one shard each: start another conversation for bob
		bob = shop.buyer(t, "bob2")
		bobConv = startConversation(t, base, bob, nil)
	}
	a, b := dial(t, base, ann), dial(t, base, bob)
	a.sendText(annConv, "a1", "early tortoise")
	b.sendText(bobConv, "b1", "late hare")
	a.ws.Close()
	b.ws.Close()

	// Bob's conversation goes warm alone, as the flush job's loop of its shard would move it.
	db, err := migrations.OpenMySQL(ctx, env.mysqlDSN)
	if err != nil {
		t.Fatal(err)
	}
	if sqlDB, err := db.DB(); err == nil {
		t.Cleanup(func() { sqlDB.Close() })
	}
	rdb := redis.NewClient(&redis.Options{Addr: env.redis})
	t.Cleanup(func() { rdb.Close() })
	hot := session.NewRedisLog(rdb, env.prefix, session.NewSQLLog(db))
	if st, err := hot.FlushShard(ctx, 100, int(bobConv%2), 2); err != nil || st.Messages == 0 {
		t.Fatalf("flush bob's shard: %+v %v", st, err)
	}
	var found searchAnswer
	time.Sleep(1500 * time.Millisecond) // the index job runs every second
	if st := api(t, "GET", base+"/api/search?q=hare", shop.manager, nil, &found); st != http.StatusOK || found.Total != 0 {
		t.Fatalf("indexed before the flush job drained the hot tier: %d %+v", st, found)
	}
	// A flush run marks warm what was appended before it started, less the grace for appends in
	// flight: past the grace, this run marks both messages.
	time.Sleep(session.AppendGrace)
	if r := runArchive(t, env, data, "flush"); r.code != 0 || r.errCount != 0 {
		t.Fatalf("flush: %+v", r)
	}
	for _, q := range []string{"tortoise", "hare"} {
		eventually(t, 20*time.Second, q+" indexed", func() bool {
			var out searchAnswer
			return api(t, "GET", base+"/api/search?q="+q, shop.manager, nil, &out) == http.StatusOK && out.Total == 1
		})
	}
}
