package app_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/shopdesk/shopdesk/session"
)

// TestRating: after the close, the session's buyer rates it once, 1 to 5 with a comment; the agent
// hears of it and staff read it on the session; nobody else may rate it.
func TestRating(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		node := startNode(t, env, "")
		base := node.URL()
		shop := newShop(t, base, 1)
		ag := shop.agents[0]
		setStatus(t, base, ag.auth, "online")
		a := dial(t, base, ag.auth)
		b, conv := openSession(t, base, shop, "rosa", map[string]any{"product_id": "p"})
		s := awaitAgent(t, base, shop.manager, conv, ag.id)
		buyer := shop.buyer(t, "rosa")
		rate := func(who authz, body map[string]any) (int, session.Session) {
			t.Helper()
			var out struct{ Session session.Session }
			st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/rating", base, s.ID), who, body, &out)
			return st, out.Session
		}
		if st, _ := rate(buyer, map[string]any{"rating": 5}); st != http.StatusConflict {
			t.Fatalf("rating a live session: %d", st)
		}
		if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/close", base, s.ID), ag.auth, map[string]any{"outcome": "answered"}, nil); st != http.StatusOK {
			t.Fatalf("close: %d", st)
		}
		for _, bad := range []map[string]any{{"rating": 0}, {"rating": 6}, {"rating": 3, "comment": string(make([]byte, 501))}} {
			if st, _ := rate(buyer, bad); st != http.StatusBadRequest {
				t.Fatalf("rating %v: %d", bad["rating"], st)
			}
		}
		if st, _ := rate(ag.auth, map[string]any{"rating": 5}); st != http.StatusForbidden {
			t.Fatalf("staff rating: %d", st)
		}
		if st, _ := rate(shop.buyer(t, "someone-else"), map[string]any{"rating": 1}); st != http.StatusNotFound {
			t.Fatalf("another buyer rating: %d", st)
		}
		st, rated := rate(buyer, map[string]any{"rating": 4, "comment": "快，谢谢"})
		if st != http.StatusOK || rated.Rating != 4 || rated.RatingComment != "快，谢谢" || rated.RatedAt == nil {
			t.Fatalf("rating: %d %+v", st, rated)
		}
		if st, _ := rate(buyer, map[string]any{"rating": 1}); st != http.StatusConflict {
			t.Fatalf("rating twice: %d", st)
		}
		a.expect("session", func(f frame) bool { return f.Session.ID == s.ID && f.Session.Rating == 4 })
		b.expect("session", func(f frame) bool { return f.Session.ID == s.ID && f.Session.Rating == 4 })
		var got struct{ Session session.Session }
		if api(t, "GET", fmt.Sprintf("%s/api/sessions/%d", base, s.ID), shop.manager, nil, &got); got.Session.Rating != 4 {
			t.Fatalf("the manager's view: %+v", got.Session)
		}
	})
}
