package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/session"
)

// TestConversationFlow walks a buyer and an agent through a whole session over the real protocol.
func TestConversationFlow(t *testing.T) {
	allModes(t, func(t *testing.T, env backendEnv) {
		node := startNode(t, env, "")
		base := node.URL()
		shop := newShop(t, base, 1)
		ag := shop.agents[0]
		buyer := shop.buyer(t, "alice")

		conv := startConversation(t, base, buyer, map[string]any{"product_id": "sku-1", "product_name": "Teapot"})
		b := dial(t, base, buyer)
		b2 := dial(t, base, buyer)  // the buyer's second device
		a := dial(t, base, ag.auth) // connected, but not yet online: routing gives it nothing

		ack := b.sendText(conv, "c1", "is the teapot in stock?")
		if ack.Type != "ack" || ack.Seq != 1 || ack.Dup {
			t.Fatalf("first ack: %+v", ack)
		}
		// The sending device gets no echo of its message, but does see the session it opened, and,
		// with no agent online, its place in the queue.
		if f := b.expect("session", nil); f.Session.State != session.StateQueued {
			t.Fatalf("sending device: session frame %+v", f.Session)
		}
		if f := b.expect("queue", nil); f.Queue == nil || f.Queue.Position != 1 || f.Queue.Total != 1 || f.ConversationID != conv {
			t.Fatalf("queue frame: %+v", f.Queue)
		}
		b.none("message", func(f frame) bool { return f.Seq == 1 }, 100*time.Millisecond)
		if m := b2.expect("message", nil).msg(t); m.Seq != 1 || m.Body.Text != "is the teapot in stock?" {
			t.Fatalf("other device got %+v", m)
		}
		again := b.sendText(conv, "c1", "is the teapot in stock?")
		if again.Type != "ack" || again.Seq != 1 || !again.Dup {
			t.Fatalf("resend must return the same seq: %+v", again)
		}

		// The first message opened a pre-sale session, waiting for an agent.
		s := liveSession(t, base, shop.manager, conv)
		if s.Kind != session.KindPreSale || s.State != session.StateQueued || s.FirstSeq != 1 {
			t.Fatalf("session: %+v", s)
		}
		// Before assignment the agent may not write into the conversation.
		if f := a.sendText(conv, "a0", "hello?"); f.Type != "error" || f.Code != "EFORBIDDEN" {
			t.Fatalf("unassigned agent send: %+v", f)
		}
		var place struct{ Queue session.QueuePlace }
		if st := api(t, "GET", fmt.Sprintf("%s/api/sessions/%d/queue", base, s.ID), buyer, nil, &place); st != http.StatusOK || place.Queue.Position != 1 {
			t.Fatalf("buyer's queue place: %d %+v", st, place)
		}
		// The agent comes online: the engine serves the queue at once, by the default rules.
		if st := a.request(map[string]any{"type": "status", "status": "online"}); st.Type != "ok" {
			t.Fatalf("status: %+v", st)
		}
		if f := a.expect("session", nil); f.Session.AgentID != ag.id || f.Session.State != session.StateOpen || f.Session.AssignedBy != "routing:queue" {
			t.Fatalf("agent session frame: %+v", f.Session)
		}
		b.expect("session", func(f frame) bool { return f.Session.State == session.StateOpen })
		notice := b.expect("message", func(f frame) bool { return f.msg(t).Body.Type == session.TypeSystem }).msg(t)
		if notice.Body.Event != "assigned" || notice.Seq != 2 {
			t.Fatalf("assignment notice: %+v", notice)
		}
		if f := a.expect("message", func(f frame) bool { return f.Seq == 2 }); f.Unread == nil || f.Unread.Count != 2 {
			t.Fatalf("agent's copy of the notice must carry its unread count: %+v", f.Unread)
		}

		reply := a.sendText(conv, "a1", "yes, 3 left")
		if reply.Type != "ack" || reply.Seq != 3 {
			t.Fatalf("agent ack: %+v", reply)
		}
		got := b.expect("message", func(f frame) bool { return f.Seq == 3 })
		if m := got.msg(t); m.Body.Text != "yes, 3 left" || m.SenderKind != session.PartyStaff {
			t.Fatalf("buyer got %+v", m)
		}
		if got.Unread == nil || got.Unread.Count != 2 || got.Unread.Total != 2 { // the assignment notice and the reply
			t.Fatalf("buyer unread: %+v", got.Unread)
		}
		// The sending device has its ack; only the sender's other devices get the message.
		a.none("message", func(f frame) bool { return f.Seq == 3 }, 200*time.Millisecond)

		// Read receipts clear the reader's counter and reach the other side.
		if f := b.request(map[string]any{"type": "read", "conversation_id": conv, "seq": 3}); f.Type != "ok" || f.Unread.Count != 0 || f.Unread.Total != 0 {
			t.Fatalf("read: %+v", f)
		}
		if f := a.expect("read", nil); f.Seq != 3 || f.From.Kind != session.PartyBuyer {
			t.Fatalf("read receipt: %+v", f)
		}
		var unread struct{ Total int64 }
		api(t, "GET", base+"/api/unread", ag.auth, nil, &unread)
		if unread.Total != 2 { // the buyer's question and the assignment notice
			t.Fatalf("agent unread total %d", unread.Total)
		}

		// Typing is relayed, not stored.
		b.send(map[string]any{"type": "typing", "conversation_id": conv})
		a.expect("typing", func(f frame) bool { return f.From.Kind == session.PartyBuyer })

		// Recall: the original stays stored; buyers and agents see it hidden, managers marked.
		ack = b.sendText(conv, "c2", "oops, wrong text")
		rc := b.request(map[string]any{"type": "send", "client_msg_id": "c3", "conversation_id": conv, "body": map[string]any{"type": "recall", "recall_seq": ack.Seq}})
		if rc.Type != "ack" || rc.Seq != ack.Seq+1 {
			t.Fatalf("recall ack: %+v", rc)
		}
		if f := a.request(map[string]any{"type": "send", "client_msg_id": "a2", "conversation_id": conv, "body": map[string]any{"type": "recall", "recall_seq": ack.Seq}}); f.Code != "EFORBIDDEN" {
			t.Fatalf("recalling another's message: %+v", f)
		}
		var hist struct{ Messages []session.Message }
		api(t, "GET", fmt.Sprintf("%s/api/conversations/%d/messages?after=%d", base, conv, ack.Seq-1), ag.auth, nil, &hist)
		if len(hist.Messages) != 2 || !hist.Messages[0].Recalled || hist.Messages[0].Body.Text != "" {
			t.Fatalf("agent view of recalled message: %+v", hist.Messages)
		}
		api(t, "GET", fmt.Sprintf("%s/api/conversations/%d/messages?after=%d", base, conv, ack.Seq-1), shop.manager, nil, &hist)
		if !hist.Messages[0].Recalled || hist.Messages[0].Body.Text != "oops, wrong text" {
			t.Fatalf("manager view of recalled message: %+v", hist.Messages)
		}

		// Sync: everything after a cursor, in pages.
		f := b.request(map[string]any{"type": "sync", "conversation_id": conv, "after": 0, "limit": 2})
		if len(f.Messages) != 2 || f.Messages[0].Seq != 1 || f.Messages[1].Seq != 2 || !f.More {
			t.Fatalf("sync page 1: %+v", f)
		}
		f = b.request(map[string]any{"type": "sync", "conversation_id": conv, "after": 2, "limit": 50})
		if len(f.Messages) != 3 || f.Messages[2].Seq != 5 || f.More {
			t.Fatalf("sync page 2: %+v", f.Messages)
		}

		// The recent-conversation list carries the last seq, so a device notices a lost last message.
		var list struct {
			Conversations []struct {
				ID      int64 `json:"id"`
				LastSeq int64 `json:"last_seq"`
			}
		}
		api(t, "GET", base+"/api/conversations", buyer, nil, &list)
		if len(list.Conversations) != 1 || list.Conversations[0].LastSeq != 5 {
			t.Fatalf("conversation list: %+v", list)
		}

		// Closing by the agent ends the session; the buyer's next message opens a new one.
		if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/close", base, s.ID), ag.auth, map[string]any{"outcome": "answered"}, nil); st != http.StatusOK {
			t.Fatalf("close: %d", st)
		}
		b.expect("session", func(f frame) bool { return f.Session.State == session.StateClosed })
		// The buyer's next message opens a new session, which the rules give straight to the online
		// agent (their last agent, with room), and the trace says why.
		b.sendText(conv, "c4", "one more question")
		s2 := liveSession(t, base, shop.manager, conv)
		if s2.ID == s.ID || s2.State != session.StateOpen || s2.AgentID != ag.id || s2.AssignedBy != "routing" {
			t.Fatalf("second session: %+v", s2)
		}
		var traces struct {
			Traces []struct {
				Cause, RuleName, Outcome string `json:"-"`
				Rule                     int
				AgentID                  int64 `json:"agent_id"`
				Eligible                 int
				Top                      []struct {
					AgentID int64 `json:"agent_id"`
				}
			}
		}
		if st := api(t, "GET", fmt.Sprintf("%s/api/sessions/%d/traces", base, s2.ID), ag.auth, nil, &traces); st != http.StatusOK {
			t.Fatalf("traces: %d", st)
		}
		if len(traces.Traces) != 1 || traces.Traces[0].AgentID != ag.id || traces.Traces[0].Rule != 0 || traces.Traces[0].Eligible != 1 ||
			len(traces.Traces[0].Top) != 1 {
			t.Fatalf("trace of the second session: %+v", traces.Traces)
		}
	})
}

// TestBadInput sends every kind of bad input and checks each gets a clear error, changes nothing and
// leaves the connection usable.
func TestBadInput(t *testing.T) {
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		node := startNode(t, env, "", "--frame-rate=20")
		base := node.URL()
		shop := newShop(t, base, 1)
		other := newShop(t, base, 0)
		buyer := shop.buyer(t, "bob")
		conv := startConversation(t, base, buyer, map[string]any{"order_id": "o-1"})
		otherConv := startConversation(t, base, other.buyer(t, "eve"), nil)
		b := dial(t, base, buyer)

		cases := []struct {
			name, raw, code string
		}{
			{"malformed JSON", `{"type":"send",`, "EBADFRAME"},
			{"not an object", `[1,2,3]`, "EBADFRAME"},
			{"unknown type", `{"type":"launch-missiles"}`, "EUNKNOWNTYPE"},
			{"no type", `{}`, "EINVALID"},
			{"send without body", `{"type":"send","client_msg_id":"x","conversation_id":1}`, "EINVALID"},
			{"send without client_msg_id", fmt.Sprintf(`{"type":"send","conversation_id":%d,"body":{"type":"text","text":"hi"}}`, conv), "EINVALID"},
			{"unknown body type", fmt.Sprintf(`{"type":"send","client_msg_id":"x","conversation_id":%d,"body":{"type":"hologram"}}`, conv), "EINVALID"},
			{"empty text", fmt.Sprintf(`{"type":"send","client_msg_id":"x","conversation_id":%d,"body":{"type":"text","text":""}}`, conv), "EINVALID"},
			{"oversize text", fmt.Sprintf(`{"type":"send","client_msg_id":"x","conversation_id":%d,"body":{"type":"text","text":"%s"}}`, conv, strings.Repeat("a", 5000)), "ETOOLARGE"},
			{"system notice from a client", fmt.Sprintf(`{"type":"send","client_msg_id":"x","conversation_id":%d,"body":{"type":"system","text":"you won"}}`, conv), "EFORBIDDEN"},
			{"unknown conversation", `{"type":"send","client_msg_id":"x","conversation_id":999999,"body":{"type":"text","text":"hi"}}`, "ENOTFOUND"},
			{"another shop's conversation", fmt.Sprintf(`{"type":"send","client_msg_id":"x","conversation_id":%d,"body":{"type":"text","text":"hi"}}`, otherConv), "ENOTFOUND"},
			{"sync another shop's conversation", fmt.Sprintf(`{"type":"sync","conversation_id":%d}`, otherConv), "ENOTFOUND"},
			{"read beyond the last seq", fmt.Sprintf(`{"type":"read","conversation_id":%d,"seq":99}`, conv), "EINVALID"},
			{"buyer sets a status", `{"type":"status","status":"online"}`, "EFORBIDDEN"},
			{"recall of nothing", fmt.Sprintf(`{"type":"send","client_msg_id":"x","conversation_id":%d,"body":{"type":"recall","recall_seq":42}}`, conv), "ENOTFOUND"},
			{"oversize frame", `{"type":"ping","pad":"` + strings.Repeat("x", 70<<10) + `"}`, "ETOOLARGE"},
		}
		for _, tc := range cases {
			b.sendRaw(tc.raw)
			f := b.expect("error", nil)
			if f.Code != tc.code {
				t.Errorf("%s: got %s (%s), want %s", tc.name, f.Code, f.errText(), tc.code)
			}
			if f.errText() == "" {
				t.Errorf("%s: error without a message", tc.name)
			}
			// The connection is still usable (and the rate limit is not what answered).
			time.Sleep(60 * time.Millisecond)
		}
		if p := b.request(map[string]any{"type": "ping"}); p.Type != "pong" {
			t.Fatalf("connection unusable after bad input: %+v", p)
		}
		// Nothing was stored by any of it.
		var hist struct{ Messages []session.Message }
		api(t, "GET", fmt.Sprintf("%s/api/conversations/%d/messages", base, otherConv), other.manager, nil, &hist)
		if len(hist.Messages) != 0 {
			t.Fatalf("another shop's conversation changed: %+v", hist.Messages)
		}
		api(t, "GET", fmt.Sprintf("%s/api/conversations/%d/messages", base, conv), shop.manager, nil, &hist)
		if len(hist.Messages) != 0 {
			t.Fatalf("bad frames stored messages: %+v", hist.Messages)
		}

		// Too many frames: ERATE, and the connection survives.
		for i := 0; i < 60; i++ {
			b.send(map[string]any{"type": "ping", "ref": fmt.Sprintf("flood%d", i)})
		}
		b.expect("error", func(f frame) bool { return f.Code == "ERATE" })
		time.Sleep(1100 * time.Millisecond)
		if p := b.request(map[string]any{"type": "ping"}); p.Type != "pong" {
			t.Fatalf("connection unusable after rate limiting: %+v", p)
		}

		// Tokens and origins at the door.
		expired, _ := session.SignBuyerToken([]byte(shop.secret), session.BuyerClaims{Subject: "late", Expires: time.Now().Add(-time.Minute)}, time.Now().Add(-time.Hour))
		tooLong, _ := session.SignBuyerToken([]byte(shop.secret), session.BuyerClaims{Subject: "greedy", Expires: time.Now().Add(72 * time.Hour)}, time.Now())
		forged, _ := session.SignBuyerToken([]byte("not-the-secret"), session.BuyerClaims{Subject: "mallory"}, time.Now())
		doors := []struct {
			name   string
			a      authz
			status int
		}{
			{"expired buyer token", authz{token: expired, shop: shop.id}, http.StatusUnauthorized},
			{"exp more than 24h ahead", authz{token: tooLong, shop: shop.id}, http.StatusUnauthorized},
			{"badly signed token", authz{token: forged, shop: shop.id}, http.StatusUnauthorized},
			{"another shop's token", authz{token: buyer.token, shop: other.id}, http.StatusUnauthorized},
			{"garbage token", authz{token: "abc.def.ghi", shop: shop.id}, http.StatusUnauthorized},
			{"forged staff token", authz{token: "st1.1.1.9999999999.AAAA"}, http.StatusUnauthorized},
			{"no credentials", authz{}, http.StatusUnauthorized},
			{"disallowed origin", authz{token: buyer.token, shop: shop.id, origin: "https://evil.example"}, http.StatusForbidden},
		}
		for _, d := range doors {
			if _, resp, err := dialRaw(base, d.a); err == nil || resp == nil || resp.StatusCode != d.status {
				got := 0
				if resp != nil {
					got = resp.StatusCode
				}
				t.Errorf("ws %s: status %d, want %d", d.name, got, d.status)
			}
			var e apiError
			if st := api(t, "GET", base+"/api/conversations", d.a, nil, &e); st != d.status || e.Error.Code == "" {
				t.Errorf("rest %s: status %d code %q, want %d", d.name, st, e.Error.Code, d.status)
			}
		}
		// An allowed origin passes.
		ok := buyer
		ok.origin = "https://shop.example"
		dial(t, base, ok)

		// REST bad input.
		var e apiError
		if st := api(t, "POST", base+"/api/conversations", buyer, strings.Repeat("x", 70<<10), &e); st != http.StatusRequestEntityTooLarge {
			t.Errorf("oversize body: %d %+v", st, e)
		}
		if st := api(t, "GET", base+"/api/conversations/abc/messages", buyer, nil, &e); st != http.StatusBadRequest || e.Error.Code != "EINVALID" {
			t.Errorf("bad id: %d %+v", st, e)
		}
		if st := api(t, "GET", fmt.Sprintf("%s/api/conversations/%d", base, otherConv), buyer, nil, &e); st != http.StatusNotFound {
			t.Errorf("other shop's conversation over REST: %d", st)
		}
		if st := api(t, "POST", base+"/api/staff", shop.agents[0].auth, map[string]any{"username": "sneaky", "password": "pw-sneaky"}, &e); st != http.StatusForbidden {
			t.Errorf("agent creating staff: %d", st)
		}
		if st := api(t, "POST", base+"/api/operator/shops", shop.manager, map[string]any{"slug": "x"}, &e); st != http.StatusUnauthorized {
			t.Errorf("manager using the operator API: %d", st)
		}
		if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/assign", base, 424242), shop.manager, map[string]any{"agent_id": shop.agents[0].id}, &e); st != http.StatusNotFound {
			t.Errorf("assign unknown session: %d", st)
		}
	})
}

// TestIdleSessionsClose checks the idle sweeper with a shop's own timeout, shorter than the node's.
func TestIdleSessionsClose(t *testing.T) {
	// The node's timeout is longer than the shop's, and short enough that the sweeper (every sixth of
	// it) comes round well within the test's wait.
	node := startNode(t, embeddedEnv(), "", "--session-idle=5s")
	base := node.URL()
	shop := newShop(t, base, 0)
	if st := api(t, "PATCH", base+"/api/shop", shop.manager, map[string]any{"settings": map[string]any{"idle_timeout_seconds": 1}}, nil); st != http.StatusOK {
		t.Fatalf("patch shop: %d", st)
	}
	buyer := shop.buyer(t, "idle")
	conv := startConversation(t, base, buyer, nil)
	b := dial(t, base, buyer)
	b.sendText(conv, "i1", "anyone?")
	f := b.expect("session", func(f frame) bool { return f.Session.State == session.StateClosed })
	if f.Session.ClosedBy != "idle" {
		t.Fatalf("closed by %q", f.Session.ClosedBy)
	}
}
