package app_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestSearchOwnSessionsOnly: with the shop setting search_own_sessions_only, an agent finds only the
// messages of sessions assigned to them and may not ask for another agent's; managers still see the
// whole shop, and without the setting agents do too.
func TestSearchOwnSessionsOnly(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		node := startNode(t, env, "", "--index-schedule=* * * * * *")
		base := node.URL()
		shop := newShop(t, base, 2)
		a1, a2 := shop.agents[0], shop.agents[1]
		convs := make([]int64, 2)
		for i, ag := range []staffLogin{a1, a2} {
			buyer := shop.buyer(t, fmt.Sprintf("buyer%d", i))
			convs[i] = startConversation(t, base, buyer, map[string]any{"product_id": "p1"})
			b := dial(t, base, buyer)
			b.sendText(convs[i], "hello", "hello")
			assign(t, base, shop.manager, liveSession(t, base, shop.manager, convs[i]).ID, ag)
			b.sendText(convs[i], "teapot", "is the blue teapot in stock?")
		}
		find := func(who authz, query string) (int, searchAnswer) {
			t.Helper()
			var out searchAnswer
			st := api(t, "GET", base+"/api/search?q=teapot"+query, who, nil, &out)
			return st, out
		}
		// Each teapot message is indexed under the session's agent, assigned before it was sent.
		eventually(t, 20*time.Second, "messages indexed", func() bool {
			_, all := find(shop.manager, "")
			_, mine := find(shop.manager, fmt.Sprintf("&agent_id=%d", a2.id))
			return all.Total == 2 && mine.Total == 1
		})
		if _, out := find(a1.auth, ""); out.Total != 2 {
			t.Fatalf("without the setting an agent searches the whole shop: %+v", out)
		}

		var patched struct {
			Shop struct{ Settings map[string]any }
		}
		if st := api(t, "PATCH", base+"/api/shop", shop.manager, map[string]any{"settings": map[string]any{"search_own_sessions_only": true}}, &patched); st != http.StatusOK || patched.Shop.Settings["search_own_sessions_only"] != true {
			t.Fatalf("patch shop: %d %+v", st, patched)
		}
		for i, ag := range []staffLogin{a1, a2} {
			for _, query := range []string{"", fmt.Sprintf("&agent_id=%d", ag.id)} {
				if st, out := find(ag.auth, query); st != http.StatusOK || out.Total != 1 || out.Hits[0].ConversationID != convs[i] {
					t.Fatalf("agent %d, query %q: %d %+v", i+1, query, st, out)
				}
			}
		}
		var e apiError
		if st := api(t, "GET", fmt.Sprintf("%s/api/search?q=teapot&agent_id=%d", base, a2.id), a1.auth, nil, &e); st != http.StatusForbidden || e.Error.Code != "EFORBIDDEN" {
			t.Fatalf("an agent asking for another's sessions: %d %+v", st, e)
		}
		if _, out := find(shop.manager, ""); out.Total != 2 {
			t.Fatalf("a manager searches the whole shop: %+v", out)
		}
		// Turned off again, agents see the whole shop.
		if st := api(t, "PATCH", base+"/api/shop", shop.manager, map[string]any{"settings": map[string]any{}}, nil); st != http.StatusOK {
			t.Fatalf("patch shop: %d", st)
		}
		if _, out := find(a1.auth, ""); out.Total != 2 {
			t.Fatalf("with the setting off: %+v", out)
		}
	})
}
