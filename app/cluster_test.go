package app_test

import (
	"database/sql"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/app"
	"github.com/shopdesk/shopdesk/migrations/testdb"
	"github.com/shopdesk/shopdesk/session"
)

// gatewayAnswer is the answer of GET /api/gateway.
type gatewayAnswer struct {
	URL     string `json:"url"`
	HTTPURL string `json:"http_url"`
	Node    string `json:"node"`
	Nodes   int    `json:"nodes"`
}

func askGateway(t *testing.T, base string) gatewayAnswer {
	t.Helper()
	var g gatewayAnswer
	if st := api(t, "GET", base+"/api/gateway", authz{}, nil, &g); st != http.StatusOK {
		t.Fatalf("GET /api/gateway: %d", st)
	}
	return g
}

// waitGateway polls a node's gateway until it points at node (connection counts are refreshed by
// the nodes' heartbeats, every few seconds).
func waitGateway(t *testing.T, base, node string) gatewayAnswer {
	t.Helper()
	var g gatewayAnswer
	eventually(t, 15*time.Second, "gateway pointing at "+node, func() bool {
		g = askGateway(t, base)
		return g.Node == node
	})
	return g
}

// TestThreeNodes: three production nodes share MariaDB and Redis. The gateway points clients at the
// least-loaded live node; messages and session events cross nodes; a node crash loses nothing: its
// devices find a live node, sync after their cursor and get live pushes again.
func TestThreeNodes(t *testing.T) {
	t.Parallel()
	env := productionEnv(t)
	sfx := testdb.Name("-")
	id1, id2, id3 := "n1"+sfx, "n2"+sfx, "n3"+sfx
	n1 := startNode(t, env, "", "--node-id="+id1)
	n2 := startNode(t, env, "", "--node-id="+id2)
	n3 := startNode(t, env, "", "--node-id="+id3)

	shop := newShop(t, n1.URL(), 1)
	ag := shop.agents[0]
	buyer := shop.buyer(t, "dora")
	conv := startConversation(t, n1.URL(), buyer, map[string]any{"product_id": "lamp"})
	b := dial(t, n1.URL(), buyer)
	a := dial(t, n2.URL(), ag.auth)

	// Spread: n1 has 3 devices, n2 1, n3 none → n3, which the tie-break by id would never pick.
	dial(t, n1.URL(), shop.buyer(t, "idle1"))
	dial(t, n1.URL(), shop.buyer(t, "idle2"))
	if g := waitGateway(t, n2.URL(), id3); g.Nodes != 3 || g.HTTPURL != n3.URL() || g.URL != wsURL(n3.URL()) {
		t.Fatalf("gateway: %+v (n3 is %s)", g, n3.URL())
	}
	// n3 gets 2 → n2, with 1, is the least loaded.
	dial(t, n3.URL(), shop.buyer(t, "idle3"))
	dial(t, n3.URL(), shop.buyer(t, "idle4"))
	waitGateway(t, n1.URL(), id2)

	// Both ways across nodes: buyer on n1, agent on n2.
	if ack := b.sendText(conv, "d1", "does the lamp dim?"); ack.Type != "ack" || ack.Seq != 1 {
		t.Fatalf("buyer ack: %+v", ack)
	}
	assign(t, n1.URL(), shop.manager, liveSession(t, n1.URL(), shop.manager, conv).ID, ag)
	a.expect("session", func(f frame) bool { return f.Session.AgentID == ag.id && f.Session.State == session.StateOpen })
	a.expect("message", func(f frame) bool { return f.Seq == 2 })
	if ack := a.sendText(conv, "a1", "yes, it dims"); ack.Type != "ack" || ack.Seq != 3 {
		t.Fatalf("agent ack: %+v", ack)
	}
	if m := b.expect("message", func(f frame) bool { return f.Seq == 3 }).msg(t); m.Body.Text != "yes, it dims" {
		t.Fatalf("buyer got %+v", m)
	}
	b.sendText(conv, "d2", "great")
	a.expect("message", func(f frame) bool { return f.Seq == 4 })
	cursor := int64(4)

	// n2 crashes. Its agent is disconnected while the buyer writes on.
	n2.Kill()
	killed := time.Now()
	a.waitClosed()
	for i := int64(0); i < 5; i++ {
		if ack := b.sendText(conv, "k"+string(rune('a'+i)), "while the agent is away"); ack.Type != "ack" || ack.Seq != cursor+1+i {
			t.Fatalf("send %d while n2 is down: %+v", i, ack)
		}
	}

	// Meanwhile a manager on n3 assigns a session whose buyer is on n1: the buyer hears of it.
	buyer2 := shop.buyer(t, "erin")
	conv2 := startConversation(t, n1.URL(), buyer2, map[string]any{"order_id": "o-77"})
	b2 := dial(t, n1.URL(), buyer2)
	b2.sendText(conv2, "e1", "where is my parcel?")
	s2 := liveSession(t, n3.URL(), shop.manager, conv2)
	assign(t, n3.URL(), shop.manager, s2.ID, ag)
	if f := b2.expect("session", func(f frame) bool { return f.Session.ID == s2.ID && f.Session.State == session.StateOpen }); f.Session.AgentID != ag.id {
		t.Fatalf("buyer's session event: %+v", f.Session)
	}
	b2.expect("message", func(f frame) bool { return f.Seq == 2 && f.msg(t).Body.Event == "assigned" })

	// The agent asks n1's gateway for a node until it stops offering the dead one.
	var g gatewayAnswer
	eventually(t, 15*time.Second, "gateway offering a live node after n2's crash", func() bool {
		g = askGateway(t, n1.URL())
		return g.Node != id2
	})
	t.Logf("the gateway offered the crashed node for %s after the crash", time.Since(killed).Round(100*time.Millisecond))
	if g.Node != id3 || g.Nodes != 2 {
		t.Fatalf("gateway after the crash: %+v, want %s of 2 live nodes", g, id3)
	}

	a3 := dial(t, g.HTTPURL, ag.auth)
	msgs, more := syncSeqs(t, a3, conv, cursor, 0)
	wantSeqs(t, "agent's sync on n3", msgs, cursor+1, cursor+5)
	if more {
		t.Fatal("more=true on the only page")
	}
	for i, m := range msgs {
		if m.ClientMsgID != "k"+string(rune('a'+i)) {
			t.Fatalf("message %d: %+v", m.Seq, m)
		}
	}

	// Live pushes n1 → n3 and back.
	b.sendText(conv, "d3", "thanks for waiting")
	a3.expect("message", func(f frame) bool { return f.Seq == 10 })
	if ack := a3.sendText(conv, "a2", "sorry for the delay"); ack.Seq != 11 {
		t.Fatalf("agent ack on n3: %+v", ack)
	}
	b.expect("message", func(f frame) bool { return f.Seq == 11 })

	// The session assigned while the agent was away is in its list on n3.
	var mine struct{ Sessions []session.Session }
	api(t, "GET", n3.URL()+"/api/sessions?state=open", ag.auth, nil, &mine)
	found := false
	for _, s := range mine.Sessions {
		found = found || (s.ID == s2.ID && s.AgentID == ag.id)
	}
	if !found {
		t.Fatalf("agent's open sessions on n3 lack session %d: %+v", s2.ID, mine.Sessions)
	}
}

// TestDrainingNodeLeavesGateway documents a bug: Shutdown deregisters the node and then waits for
// in-flight requests with its heartbeat loop still running, so the next heartbeat (every 2 s)
// registers it again, and with zero connections, since it has just closed them all: the gateway then
// sends every client it told to reconnect elsewhere straight back to the draining node, whose
// listener is closed. Stopping the heartbeat before deregistering fixes it.
func TestDrainingNodeLeavesGateway(t *testing.T) {
	t.Parallel()
	env := productionEnv(t)
	sfx := testdb.Name("-")
	idA, idB := "a"+sfx, "b"+sfx
	na := startNode(t, env, "", "--node-id="+idA)
	nb := startNode(t, env, "", "--node-id="+idB)
	shop := quickShop(t, nb.URL())
	buyer := shop.buyer(t, "gina")
	dial(t, nb.URL(), buyer) // b has a device, a none: the gateway prefers a
	waitGateway(t, nb.URL(), idA)

	finish := holdRequest(t, na.URL(), buyer)
	waitShutdown := shutdownInBackground(t, na)
	waitGateway(t, nb.URL(), idB) // a deregistered itself

	// Over more than two heartbeat periods of a's drain, the gateway must never offer a again.
	until := time.Now().Add(5 * time.Second)
	for time.Now().Before(until) {
		if g := askGateway(t, nb.URL()); g.Node == idA {
			t.Errorf("the gateway offers the draining node %s again (%s); a device following it gets: %v", idA, g.URL, dialError(g.HTTPURL, buyer))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := finish(); st != http.StatusOK {
		t.Fatalf("the in-flight request: %d", st)
	}
	waitShutdown()
}

// dialError is the error a device gets connecting to base.
func dialError(base string, a authz) error {
	c, _, err := dialRaw(base, a)
	if err == nil {
		c.ws.Close()
	}
	return err
}

// TestWriterCrashLosesNothing: the node that acknowledged messages crashes before flushing them; the
// buyer reconnects to another node and finds them all, and that node flushes them to the warm store.
func TestWriterCrashLosesNothing(t *testing.T) {
	t.Parallel()
	env := productionEnv(t)
	writer := startNode(t, env, "", "--flush-schedule=@every 1h")
	other := startNode(t, env, "", "--flush-schedule=@every 1h")
	buyer := quickShop(t, writer.URL()).buyer(t, "ivan")
	conv := startConversation(t, writer.URL(), buyer, nil)
	b := dial(t, writer.URL(), buyer)
	for i := int64(1); i <= 3; i++ {
		if ack := b.sendText(conv, fmt.Sprintf("i%d", i), "acked by the writer"); ack.Seq != i {
			t.Fatalf("ack %d: %+v", i, ack)
		}
	}
	writer.Kill()
	b.waitClosed()

	b2 := dial(t, other.URL(), buyer)
	msgs, _ := syncSeqs(t, b2, conv, 0, 0)
	wantSeqs(t, "sync on the surviving node", msgs, 1, 3)
	if ack := b2.sendText(conv, "i4", "after the crash"); ack.Seq != 4 {
		t.Fatalf("send after the crash: %+v", ack)
	}

	startNode(t, env, "") // a node whose flush job runs every second; the dirty set is shared
	db, err := sql.Open("mysql", env.mysqlDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	eventually(t, 15*time.Second, "the crashed node's messages flushed by another node", func() bool {
		return warmMaxSeq(t, db, conv) == 4
	})
}

// TestCloseAfterReassignElsewhere: a node answers a close from its own copy of the live session only
// when the row still matches it. After another node gave the session to another agent, the first
// agent can no longer close it through the node that still holds the old copy; the new agent can.
func TestCloseAfterReassignElsewhere(t *testing.T) {
	t.Parallel()
	n1, n2 := twoNodes(t, "c")
	shop := newShop(t, n1.URL(), 2)
	a1, a2 := shop.agents[0], shop.agents[1]
	dial(t, n1.URL(), a1.auth)
	setStatus(t, n1.URL(), a1.auth, "online")
	_, conv := openSession(t, n1.URL(), shop, "eve", map[string]any{"product_id": "p"})
	s := awaitAgent(t, n1.URL(), shop.manager, conv, a1.id) // n1 routed it and holds the copy
	dial(t, n2.URL(), a2.auth)
	setStatus(t, n2.URL(), a2.auth, "online")
	if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/assign", n2.URL(), s.ID), shop.manager, map[string]any{"agent_id": a2.id}, nil); st != http.StatusOK {
		t.Fatalf("assign on n2: %d", st)
	}
	var e apiError
	if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/close", n1.URL(), s.ID), a1.auth, map[string]any{"outcome": "x"}, &e); st != http.StatusForbidden {
		t.Fatalf("the former agent closing on n1: %d %+v", st, e)
	}
	var out struct{ Session session.Session }
	if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/close", n1.URL(), s.ID), a2.auth, map[string]any{"outcome": "done"}, &out); st != http.StatusOK ||
		out.Session.State != session.StateClosed || out.Session.AgentID != a2.id || out.Session.Outcome != "done" {
		t.Fatalf("the new agent closing on n1: %d %+v", st, out)
	}
	var again struct{ Session session.Session }
	if st := api(t, "GET", fmt.Sprintf("%s/api/sessions/%d", n2.URL(), s.ID), shop.manager, nil, &again); st != http.StatusOK || again.Session.State != session.StateClosed || again.Session.AgentID != a2.id {
		t.Fatalf("the session after the close: %d %+v", st, again)
	}
}

// TestContextChangedElsewhere: a node opens sessions from its own copy of the conversation; when the
// buyer's entry context changed through another node since, the session still gets the new one.
func TestContextChangedElsewhere(t *testing.T) {
	t.Parallel()
	n1, n2 := twoNodes(t, "x")
	shop := newShop(t, n1.URL(), 0)
	buyer := shop.buyer(t, "finn")
	conv := startConversation(t, n1.URL(), buyer, map[string]any{"product_id": "kettle"}) // n1 keeps this copy
	if again := startConversation(t, n2.URL(), buyer, map[string]any{"order_id": "E77"}); again != conv {
		t.Fatalf("another conversation: %d, was %d", again, conv)
	}
	b := dial(t, n1.URL(), buyer)
	b.sendText(conv, "f1", "where is my order?")
	b.ws.Close()
	var page struct{ Sessions []session.Session }
	eventually(t, 10*time.Second, "the session opened", func() bool {
		return api(t, "GET", fmt.Sprintf("%s/api/sessions?conversation_id=%d", n1.URL(), conv), shop.manager, nil, &page) == http.StatusOK && len(page.Sessions) == 1
	})
	if s := page.Sessions[0]; s.Kind != session.KindAfterSale || s.Context.OrderID != "E77" || s.Context.ProductID != "" {
		t.Fatalf("session opened with %s %+v", s.Kind, s.Context)
	}
}

// twoNodes starts two production nodes on one MariaDB and Redis; their ids start with prefix.
func twoNodes(t *testing.T, prefix string) (*app.App, *app.App) {
	t.Helper()
	env := productionEnv(t)
	sfx := testdb.Name("-")
	return startNode(t, env, "", "--node-id="+prefix+"1"+sfx), startNode(t, env, "", "--node-id="+prefix+"2"+sfx)
}
