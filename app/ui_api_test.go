package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/session"
)

type readsAnswer struct {
	Reads session.Reads `json:"reads"`
}

func reads(t *testing.T, base string, who authz, conv int64) session.Reads {
	t.Helper()
	var out readsAnswer
	if st := api(t, "GET", fmt.Sprintf("%s/api/conversations/%d/reads", base, conv), who, nil, &out); st != http.StatusOK {
		t.Fatalf("reads of %d: %d", conv, st)
	}
	return out.Reads
}

func markReadREST(t *testing.T, base string, who authz, conv, seq int64) {
	t.Helper()
	if st := api(t, "POST", fmt.Sprintf("%s/api/conversations/%d/read", base, conv), who, map[string]any{"seq": seq}, nil); st != http.StatusOK {
		t.Fatalf("read %d up to %d: %d", conv, seq, st)
	}
}

// TestReadsAndTakeOver: both sides' read positions are served to either side (read receipts after a
// reload) and to no other shop; a manager takes a session over from its agent as a recorded transfer
// (forced claim, trace with cause transfer and the manager's note, a system notice, pushes to both
// agents and the buyer), and nobody else may.
func TestReadsAndTakeOver(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		node := startNode(t, env, "")
		base := node.URL()
		shop := newShop(t, base, 1)
		other := newShop(t, base, 0)
		a1, mgr := shop.agents[0], shop.manager
		buyer := shop.buyer(t, "rita")
		available := func(who authz) bool {
			var out struct{ Available bool }
			if st := api(t, "GET", base+"/api/availability", who, nil, &out); st != http.StatusOK {
				t.Fatalf("availability: %d", st)
			}
			return out.Available
		}
		if available(buyer) {
			t.Fatal("available before anyone is online")
		}
		ad := dial(t, base, a1.auth)
		setStatus(t, base, a1.auth, "online")
		if !available(buyer) || available(other.buyer(t, "rita")) {
			t.Fatal("availability after an agent came online: wrong for this shop or the other")
		}
		bd, conv := openSession(t, base, shop, "rita", map[string]any{"product_id": "p1"})
		s := awaitAgent(t, base, mgr, conv, a1.id)

		if r := reads(t, base, buyer, conv); r.Buyer != 0 || r.Staff != 0 || r.ConversationID != conv {
			t.Fatalf("reads before anyone read: %+v", r)
		}
		if ack := ad.sendText(conv, "a-1", "hello, how can I help?"); ack.Type != "ack" {
			t.Fatalf("agent send: %+v", ack)
		}
		var c struct {
			Conversation struct {
				LastSeq int64 `json:"last_seq"`
			}
		}
		api(t, "GET", fmt.Sprintf("%s/api/conversations/%d", base, conv), mgr, nil, &c)
		last := c.Conversation.LastSeq
		markReadREST(t, base, a1.auth, conv, 1)
		markReadREST(t, base, buyer, conv, last)
		for _, who := range []authz{buyer, a1.auth, mgr} {
			if r := reads(t, base, who, conv); r.Buyer != last || r.Staff != 1 {
				t.Fatalf("reads (last %d): %+v", last, r)
			}
		}
		for _, who := range []authz{other.manager, other.buyer(t, "rita")} {
			if st := api(t, "GET", fmt.Sprintf("%s/api/conversations/%d/reads", base, conv), who, nil, nil); st != http.StatusNotFound {
				t.Fatalf("another shop reads the reads: %d", st)
			}
		}
		if st := api(t, "GET", base+"/api/conversations/x/reads", mgr, nil, nil); st != http.StatusBadRequest {
			t.Fatalf("bad id: %d", st)
		}

		// Any staff member sees the shop's colleagues (to transfer to); buyers do not.
		var col struct {
			Colleagues []struct {
				ID          int64
				DisplayName string `json:"display_name"`
				Groups      []string
			}
		}
		if st := api(t, "GET", base+"/api/colleagues", a1.auth, nil, &col); st != http.StatusOK || len(col.Colleagues) != 2 {
			t.Fatalf("colleagues: %d %+v", st, col)
		}
		if st := api(t, "GET", base+"/api/colleagues", buyer, nil, nil); st != http.StatusForbidden {
			t.Fatalf("a buyer lists colleagues: %d", st)
		}

		// Only a manager of the shop takes over, with a note of bounded length.
		url := fmt.Sprintf("%s/api/sessions/%d/takeover", base, s.ID)
		if st := api(t, "POST", url, a1.auth, map[string]any{}, nil); st != http.StatusForbidden {
			t.Fatalf("an agent takes over: %d", st)
		}
		if st := api(t, "POST", url, other.manager, map[string]any{}, nil); st != http.StatusNotFound && st != http.StatusForbidden {
			t.Fatalf("another shop's manager takes over: %d", st)
		}
		if st := api(t, "POST", url, mgr, map[string]any{"note": strings.Repeat("x", 5000)}, nil); st != http.StatusBadRequest {
			t.Fatalf("a long note: %d", st)
		}
		if got := liveSession(t, base, mgr, conv); got.AgentID != a1.id {
			t.Fatalf("refused take-overs moved the session: %+v", got)
		}

		var me struct{ Staff struct{ ID int64 } }
		api(t, "GET", base+"/api/me", mgr, nil, &me)
		var took struct {
			Session session.Session
			Trace   routeTrace
		}
		if st := api(t, "POST", url, mgr, map[string]any{"note": "quality check"}, &took); st != http.StatusOK ||
			took.Session.AgentID != me.Staff.ID || took.Session.AssignedBy != "transfer" || took.Trace.Cause != "transfer" ||
			!strings.Contains(took.Trace.Note, "taken over by manager") || !strings.Contains(took.Trace.Note, "quality check") {
			t.Fatalf("take over: %d %+v", st, took)
		}
		ad.expect("session", func(f frame) bool { return f.Session.ID == s.ID && f.Session.AgentID == me.Staff.ID })
		bd.expect("session", func(f frame) bool { return f.Session.ID == s.ID && f.Session.AgentID == me.Staff.ID })
		notice := bd.expect("message", func(f frame) bool {
			m := f.msg(t)
			return m.Body.Type == session.TypeSystem && m.Body.Event == "assigned"
		}).msg(t)
		if notice.Body.Text == "" {
			t.Fatalf("take-over notice: %+v", notice)
		}
		var traces struct{ Traces []routeTrace }
		api(t, "GET", fmt.Sprintf("%s/api/sessions/%d/traces", base, s.ID), mgr, nil, &traces)
		found := false
		for _, tr := range traces.Traces {
			found = found || tr.Cause == "transfer" && tr.RuleName == "takeover" && tr.AgentID == me.Staff.ID
		}
		if !found {
			t.Fatalf("no take-over among the traces: %+v", traces.Traces)
		}
		if r := claims(t, base, mgr).Replay; r.Mismatches != 0 || r.Forced != 1 {
			t.Fatalf("claims after the take-over: %+v", r)
		}
		if st := api(t, "POST", url, mgr, map[string]any{}, nil); st != http.StatusBadRequest {
			t.Fatalf("taking over one's own session: %d", st)
		}
		// The manager now reads; the buyer sees the highest read of the conversation's agents.
		markReadREST(t, base, mgr, conv, last)
		if r := reads(t, base, buyer, conv); r.Staff < last {
			t.Fatalf("reads after the manager read: %+v", r)
		}
		if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/close", base, s.ID), mgr, map[string]any{"outcome": "done"}, nil); st != http.StatusOK {
			t.Fatalf("close: %d", st)
		}
		if st := api(t, "POST", url, mgr, map[string]any{}, nil); st != http.StatusConflict {
			t.Fatalf("taking over a closed session: %d", st)
		}
	})
}

// TestStaffWebSocketFromAnotherNode: the workspace loaded from one node of a cluster connects its
// WebSocket to whichever node the gateway picks; that node accepts a staff connection whose Origin is
// a live node's public URL, and still refuses any other origin.
func TestStaffWebSocketFromAnotherNode(t *testing.T) {
	t.Parallel()
	n1, n2 := twoNodes(t, "a")
	shop := newShop(t, n1.URL(), 1)
	ag := shop.agents[0]
	from := ag.auth
	eventually(t, 10*time.Second, "both nodes registered", func() bool {
		var g struct{ Nodes int }
		api(t, "GET", n2.URL()+"/api/gateway", authz{}, nil, &g)
		return g.Nodes == 2
	})
	from.origin = n1.URL()
	if c := dial(t, n2.URL(), from); c == nil {
		t.Fatal("no connection")
	}
	from.origin = "http://127.0.0.1:1"
	if _, resp, err := dialRaw(n2.URL(), from); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("staff from a foreign origin: %v %v", err, resp)
	}
}
