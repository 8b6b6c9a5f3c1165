package app_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/migrations/testdb"
	"github.com/shopdesk/shopdesk/session"
)

// routeTrace is the part of a routing trace the tests read.
type routeTrace struct {
	Cause    string `json:"cause"`
	Version  int    `json:"version"`
	Rule     int    `json:"rule"`
	RuleName string `json:"rule_name"`
	Outcome  string `json:"outcome"`
	AgentID  int64  `json:"agent_id"`
	Eligible int    `json:"eligible"`
	Note     string `json:"note"`
	Over     bool   `json:"over"`
	Agents   []struct {
		AgentID int64  `json:"agent_id"`
		Removed string `json:"removed"`
		Rank    int    `json:"rank"`
	} `json:"agents"`
}

type replayAnswer struct {
	Replay struct {
		Claims       int `json:"claims"`
		Forced       int `json:"forced"`
		OverCapacity int `json:"over_capacity"`
		ForcedOver   int `json:"forced_over"`
		Mismatches   int `json:"mismatches"`
	} `json:"replay"`
}

// openSession has a new buyer of the shop ask a question with the given context and returns the
// buyer's device and the conversation.
func openSession(t *testing.T, base string, shop shopFixture, buyer string, ctx map[string]any) (*wsClient, int64) {
	t.Helper()
	b := shop.buyer(t, buyer)
	conv := startConversation(t, base, b, ctx)
	dev := dial(t, base, b)
	if ack := dev.sendText(conv, buyer+"-1", "hello"); ack.Type != "ack" {
		t.Fatalf("%s: %+v", buyer, ack)
	}
	return dev, conv
}

// awaitAgent waits until the conversation's live session is open with agentID and returns it.
func awaitAgent(t *testing.T, base string, mgr authz, conv, agentID int64) session.Session {
	t.Helper()
	var s session.Session
	eventually(t, 10*time.Second, fmt.Sprintf("conversation %d assigned to agent %d", conv, agentID), func() bool {
		s = liveSession(t, base, mgr, conv)
		return s.State == session.StateOpen && s.AgentID == agentID
	})
	return s
}

func patchStaff(t *testing.T, base string, mgr authz, id int64, in map[string]any) {
	t.Helper()
	if st := api(t, "PATCH", fmt.Sprintf("%s/api/staff/%d", base, id), mgr, in, nil); st != http.StatusOK {
		t.Fatalf("patch staff %d: %d", id, st)
	}
}

func claims(t *testing.T, base string, mgr authz) replayAnswer {
	t.Helper()
	var out replayAnswer
	if st := api(t, "GET", base+"/api/routing/claims", mgr, nil, &out); st != http.StatusOK {
		t.Fatalf("claims: %d", st)
	}
	return out
}

// TestRuleSetLifecycle: a manager's rule with a typo is refused with its position; a valid one is
// simulated, published and followed by the next buyer; a rollback restores the old outcome; drafts,
// diffs, the audit log, schedules and the environment are served; agents may not touch any of it.
func TestRuleSetLifecycle(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		node := startNode(t, env, "")
		base := node.URL()
		shop := newShop(t, base, 2)
		a1, a2 := shop.agents[0], shop.agents[1]
		mgr := shop.manager
		setStatus(t, base, a1.auth, "online")
		setStatus(t, base, a2.auth, "online")

		// Agents may not read or change rules.
		if st := api(t, "GET", base+"/api/routing/versions", a1.auth, nil, nil); st != http.StatusForbidden {
			t.Fatalf("agent reading rules: %d", st)
		}

		typo := map[string]any{"rules": []map[string]any{{"name": "vip", "when": `session.kind == "presale"`, "target": `agent.id == `}},
			"default": map[string]any{"name": "anyone", "target": `agent.status == "online"`}}
		var check struct {
			Valid  bool
			Errors []struct {
				Rule         int
				Field        string
				Line, Column int
				Message      string
			}
		}
		if st := api(t, "POST", base+"/api/routing/validate", mgr, map[string]any{"rule_set": typo}, &check); st != http.StatusOK || check.Valid ||
			len(check.Errors) != 1 || check.Errors[0].Field != "target" || check.Errors[0].Rule != 0 || check.Errors[0].Column == 0 {
			t.Fatalf("validate a typo: %d %+v", st, check)
		}
		var refused struct {
			Error struct {
				Code   string
				Errors []struct{ Field string }
			}
		}
		if st := api(t, "POST", base+"/api/routing/versions", mgr, map[string]any{"rule_set": typo, "publish": true}, &refused); st != http.StatusBadRequest ||
			refused.Error.Code != "EINVALID" || len(refused.Error.Errors) != 1 || refused.Error.Errors[0].Field != "target" {
			t.Fatalf("saving a typo: %d %+v", st, refused)
		}
		var versions struct {
			Versions []struct{ Number int }
			Active   int
		}
		api(t, "GET", base+"/api/routing/versions", mgr, nil, &versions)
		if len(versions.Versions) != 0 || versions.Active != 0 {
			t.Fatalf("a refused rule set must store nothing: %+v", versions)
		}

		// The fixed rule: pre-sale questions go to agent 2 only.
		fixed := map[string]any{"rules": []map[string]any{{"name": "to a2", "when": `session.kind == "presale"`,
			"target": fmt.Sprintf(`agent.id == %d`, a2.id), "prefer": []string{"least_load_ratio"}}},
			"default": map[string]any{"name": "anyone", "target": `agent.status == "online"`}}
		var saved struct{ Version struct{ Number int } }
		if st := api(t, "POST", base+"/api/routing/versions", mgr, map[string]any{"rule_set": fixed, "comment": "a2 takes pre-sale"}, &saved); st != http.StatusCreated || saved.Version.Number != 1 {
			t.Fatalf("save: %d %+v", st, saved)
		}
		var sim struct{ Trace routeTrace }
		if st := api(t, "POST", base+"/api/routing/simulate", mgr, map[string]any{"version": 1, "session": map[string]any{"kind": "presale"}}, &sim); st != http.StatusOK ||
			sim.Trace.AgentID != a2.id || sim.Trace.RuleName != "to a2" || len(sim.Trace.Agents) != 3 { // the manager is staff too
			t.Fatalf("simulate version 1: %d %+v", st, sim.Trace)
		}
		for _, ag := range sim.Trace.Agents {
			if ag.AgentID == a1.id && (ag.Rank != 0 || ag.Removed == "") || ag.AgentID == a2.id && ag.Rank != 1 {
				t.Fatalf("the trace must say why agent 1 was not eligible: %+v", sim.Trace.Agents)
			}
		}
		// Simulating changed nothing: the built-in default is still in force.
		b0, conv0 := openSession(t, base, shop, "before", map[string]any{"product_id": "p0"})
		s0 := awaitAgent(t, base, mgr, conv0, a1.id) // least load, ties by id
		_ = b0

		if st := api(t, "POST", base+"/api/routing/publish", mgr, map[string]any{"version": 1, "note": "go"}, nil); st != http.StatusOK {
			t.Fatalf("publish: %d", st)
		}
		_, conv1 := openSession(t, base, shop, "after", map[string]any{"product_id": "p1"})
		s1 := awaitAgent(t, base, mgr, conv1, a2.id)
		var traces struct{ Traces []routeTrace }
		api(t, "GET", fmt.Sprintf("%s/api/sessions/%d/traces", base, s1.ID), mgr, nil, &traces)
		if len(traces.Traces) != 1 || traces.Traces[0].Version != 1 || traces.Traces[0].RuleName != "to a2" || traces.Traces[0].Outcome != "assigned" {
			t.Fatalf("trace after publish: %+v", traces.Traces)
		}
		// Agent 1 may read its own session's trace, not agent 2's.
		if st := api(t, "GET", fmt.Sprintf("%s/api/sessions/%d/traces", base, s0.ID), a1.auth, nil, nil); st != http.StatusOK {
			t.Fatalf("own trace: %d", st)
		}
		if st := api(t, "GET", fmt.Sprintf("%s/api/sessions/%d/traces", base, s1.ID), a1.auth, nil, nil); st != http.StatusForbidden {
			t.Fatalf("another agent's trace: %d", st)
		}

		var diff struct{ Changes []string }
		if st := api(t, "GET", base+"/api/routing/versions/1/diff", mgr, nil, &diff); st != http.StatusOK || len(diff.Changes) == 0 {
			t.Fatalf("diff against the default: %d %+v", st, diff)
		}
		if st := api(t, "POST", base+"/api/routing/rollback", mgr, map[string]any{"version": 0, "note": "back"}, nil); st != http.StatusOK {
			t.Fatalf("rollback: %d", st)
		}
		// Back on the default rules: least load → agent 1 (1 session) ties with agent 2 (1 session): by id.
		_, conv2 := openSession(t, base, shop, "rolled", map[string]any{"product_id": "p2"})
		awaitAgent(t, base, mgr, conv2, a1.id)
		var audit struct {
			Audit []struct {
				Action  string
				Version int
			}
		}
		api(t, "GET", base+"/api/routing/audit", mgr, nil, &audit)
		if len(audit.Audit) != 2 || audit.Audit[0].Action != "rollback" || audit.Audit[1].Action != "publish" {
			t.Fatalf("audit: %+v", audit)
		}

		// A draft may be invalid while edited, never in shadow.
		var draft struct {
			Errors []struct{ Field string }
		}
		if st := api(t, "PUT", base+"/api/routing/draft", mgr, map[string]any{"rule_set": typo}, &draft); st != http.StatusOK || len(draft.Errors) != 1 {
			t.Fatalf("invalid draft: %d %+v", st, draft)
		}
		if st := api(t, "PUT", base+"/api/routing/draft", mgr, map[string]any{"rule_set": typo, "shadow": true}, nil); st != http.StatusBadRequest {
			t.Fatalf("invalid draft in shadow: %d", st)
		}
		if st := api(t, "PUT", base+"/api/routing/draft", mgr, map[string]any{"rule_set": fixed, "shadow": true}, nil); st != http.StatusOK {
			t.Fatalf("shadow draft: %d", st)
		}
		_, conv3 := openSession(t, base, shop, "shadowed", map[string]any{"product_id": "p3"})
		s3 := awaitAgent(t, base, mgr, conv3, a2.id) // least load: a1 has 2, a2 has 1
		_ = s3
		_, conv4 := openSession(t, base, shop, "shadowed2", map[string]any{"product_id": "p4"})
		awaitAgent(t, base, mgr, conv4, a1.id) // 2 each: by id; the draft would have chosen a2
		var shadow struct {
			Total, Differ int
		}
		eventually(t, 5*time.Second, "shadow results", func() bool {
			api(t, "GET", base+"/api/routing/shadow", mgr, nil, &shadow)
			return shadow.Total == 2 && shadow.Differ == 1
		})

		// Schedules: overlapping windows are refused with the reason; a valid one is kept.
		overlap := []map[string]any{
			{"version": 1, "time_zone": "Asia/Shanghai", "start": "2027-11-10T20:00", "end": "2027-11-12T02:00"},
			{"version": 1, "time_zone": "Asia/Shanghai", "start": "2027-11-11T00:00", "end": "2027-11-11T06:00"}}
		var bad struct {
			Error struct {
				Errors []struct{ Schedule, Other int }
			}
		}
		if st := api(t, "PUT", base+"/api/routing/schedules", mgr, map[string]any{"schedules": overlap}, &bad); st != http.StatusBadRequest || len(bad.Error.Errors) == 0 {
			t.Fatalf("overlapping schedules: %d %+v", st, bad)
		}
		if st := api(t, "PUT", base+"/api/routing/schedules", mgr, map[string]any{"schedules": overlap[:1]}, nil); st != http.StatusOK {
			t.Fatalf("schedule: %d", st)
		}
		var overview struct {
			Active, InForce int `json:"-"`
			Schedules       []map[string]any
			Draft           map[string]any
		}
		api(t, "GET", base+"/api/routing", mgr, nil, &overview)
		if len(overview.Schedules) != 1 || overview.Draft == nil {
			t.Fatalf("overview: %+v", overview)
		}
		var envOut struct {
			Environment struct {
				Session, Agent []struct{ Path string }
			}
		}
		if st := api(t, "GET", base+"/api/routing/environment", mgr, nil, &envOut); st != http.StatusOK || len(envOut.Environment.Session) == 0 || len(envOut.Environment.Agent) == 0 {
			t.Fatalf("environment: %d %+v", st, envOut)
		}
		if r := claims(t, base, mgr).Replay; r.OverCapacity != 0 || r.Mismatches != 0 || r.Claims != 5 {
			t.Fatalf("claims: %+v", r)
		}
	})
}

// TestQueueTransferAndAssign: with every agent full, buyers wait in order and are told their place;
// a close serves the first of them; an agent transfers a session to a group with a note; a manager
// assigns by hand beyond capacity, which the claim log records as forced; other shops' ids are not found.
func TestQueueTransferAndAssign(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		node := startNode(t, env, "")
		base := node.URL()
		shop := newShop(t, base, 2)
		other := newShop(t, base, 0)
		a1, a2 := shop.agents[0], shop.agents[1]
		mgr := shop.manager
		patchStaff(t, base, mgr, a1.id, map[string]any{"capacity": 1})
		patchStaff(t, base, mgr, a2.id, map[string]any{"capacity": 1})
		ad1 := dial(t, base, a1.auth)
		setStatus(t, base, a1.auth, "online")

		_, convA := openSession(t, base, shop, "anna", map[string]any{"product_id": "p"})
		sA := awaitAgent(t, base, mgr, convA, a1.id)
		bB, convB := openSession(t, base, shop, "ben", map[string]any{"product_id": "p"})
		if f := bB.expect("queue", nil); f.Queue.Position != 1 || f.Queue.Total != 1 {
			t.Fatalf("ben's place: %+v", f.Queue)
		}
		bC, convC := openSession(t, base, shop, "cleo", map[string]any{"product_id": "q"})
		if f := bC.expect("queue", nil); f.Queue.Position != 2 || f.Queue.Total != 2 {
			t.Fatalf("cleo's place: %+v", f.Queue)
		}
		var q struct {
			Length  int
			Entries []struct {
				SessionID int64 `json:"session_id"`
				Position  int
			}
		}
		api(t, "GET", base+"/api/routing/queue", mgr, nil, &q)
		if q.Length != 2 || len(q.Entries) != 2 || q.Entries[0].Position != 1 {
			t.Fatalf("queue: %+v", q)
		}

		// Closing anna's session frees agent 1: ben is served first, cleo moves up.
		if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/close", base, sA.ID), a1.auth, map[string]any{"outcome": "answered"}, nil); st != http.StatusOK {
			t.Fatalf("close: %d", st)
		}
		sB := awaitAgent(t, base, mgr, convB, a1.id)
		if sB.AssignedBy != "routing:queue" {
			t.Fatalf("ben's session: %+v", sB)
		}
		if f := bC.expect("queue", func(f frame) bool { return f.Queue.Position == 1 }); f.Queue.Total != 1 {
			t.Fatalf("cleo moves up: %+v", f.Queue)
		}

		// Transfer to a group where no one has room: refused, with the trace; nothing changes.
		var refused struct {
			Error struct{ Code string }
			Trace *routeTrace
		}
		if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/transfer", base, sB.ID), a1.auth, map[string]any{"group": "presale", "note": "VIP"}, &refused); st != http.StatusConflict ||
			refused.Error.Code != "ECONFLICT" || refused.Trace == nil {
			t.Fatalf("transfer with no room: %d %+v", st, refused)
		}
		// Agent 2 comes online and takes cleo from the queue; then has no room either.
		ad2 := dial(t, base, a2.auth)
		setStatus(t, base, a2.auth, "online")
		sC := awaitAgent(t, base, mgr, convC, a2.id)
		patchStaff(t, base, mgr, a2.id, map[string]any{"capacity": 2})
		var moved struct {
			Session session.Session
			Trace   routeTrace
		}
		if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/transfer", base, sB.ID), a1.auth, map[string]any{"group": "presale", "note": "VIP, knows the order"}, &moved); st != http.StatusOK ||
			moved.Session.AgentID != a2.id || moved.Session.AssignedBy != "transfer" || moved.Trace.Note != "VIP, knows the order" {
			t.Fatalf("transfer: %d %+v", st, moved)
		}
		ad2.expect("session", func(f frame) bool { return f.Session.ID == sB.ID && f.Session.AgentID == a2.id })
		ad1.expect("session", func(f frame) bool { return f.Session.ID == sB.ID && f.Session.AgentID == a2.id })
		// Agents may only transfer their own sessions.
		if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/transfer", base, sC.ID), a1.auth, map[string]any{"agent_id": a1.id}, nil); st != http.StatusForbidden {
			t.Fatalf("transferring another agent's session: %d", st)
		}

		// The manager gives cleo's session to agent 1 as well, beyond nothing (a1 is free) and then
		// ben's back beyond capacity: forced, and recorded.
		var forced struct {
			Session session.Session
			Trace   routeTrace
		}
		if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/assign", base, sC.ID), mgr, map[string]any{"agent_id": a1.id}, &forced); st != http.StatusOK || forced.Trace.Over {
			t.Fatalf("manual assignment: %d %+v", st, forced)
		}
		if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/assign", base, sB.ID), mgr, map[string]any{"agent_id": a1.id}, &forced); st != http.StatusOK ||
			!forced.Trace.Over || forced.Session.AssignedBy != "manual" {
			t.Fatalf("manual assignment beyond capacity: %d %+v", st, forced)
		}
		if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/assign", base, sB.ID), a2.auth, map[string]any{"agent_id": a2.id}, nil); st != http.StatusForbidden {
			t.Fatalf("an agent assigning by hand: %d", st)
		}
		r := claims(t, base, mgr).Replay
		if r.OverCapacity != 0 || r.ForcedOver != 1 || r.Mismatches != 0 {
			t.Fatalf("claims: %+v", r)
		}
		var loads struct {
			Agents []struct {
				ID        int64
				Load      int
				Heartbeat bool
			}
		}
		api(t, "GET", base+"/api/routing/agents", mgr, nil, &loads)
		for _, ag := range loads.Agents {
			if ag.ID == a1.id && (ag.Load != 2 || !ag.Heartbeat) || ag.ID == a2.id && ag.Load != 0 {
				t.Fatalf("loads: %+v", loads.Agents)
			}
		}

		// Another shop's manager finds none of it.
		for _, path := range []string{"/transfer", "/assign"} {
			var e apiError
			if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d%s", base, sB.ID, path), other.manager, map[string]any{"agent_id": a1.id}, &e); st != http.StatusNotFound && st != http.StatusForbidden {
				t.Fatalf("another shop's %s: %d %+v", path, st, e)
			}
		}
		for _, path := range []string{"/traces", "/queue"} {
			if st := api(t, "GET", fmt.Sprintf("%s/api/sessions/%d%s", base, sB.ID, path), other.manager, nil, nil); st != http.StatusNotFound {
				t.Fatalf("another shop's %s: %d", path, st)
			}
		}
		// Bad input changes nothing.
		for _, body := range []map[string]any{{}, {"agent_id": a2.id, "group": "presale"}, {"group": "bad\"name"}, {"agent_id": 999999}} {
			if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/transfer", base, sB.ID), mgr, body, nil); st < 400 || st >= 500 {
				t.Fatalf("transfer %v: %d", body, st)
			}
		}
		if s := liveSession(t, base, mgr, convB); s.AgentID != a1.id {
			t.Fatalf("bad transfers moved the session: %+v", s)
		}
	})
}

// TestRerouteOnPresenceTimeout: an agent whose heartbeat stops is marked offline by the sweeper and,
// after the grace period, their session goes to another agent by the rules, with a notice to the buyer.
func TestRerouteOnPresenceTimeout(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		node := startNode(t, env, "", "--presence-timeout=1s", "--reroute-grace=1s")
		base := node.URL()
		shop := newShop(t, base, 2)
		a1, a2 := shop.agents[0], shop.agents[1]
		setStatus(t, base, a1.auth, "online")
		b, conv := openSession(t, base, shop, "gina", map[string]any{"product_id": "p"})
		s := awaitAgent(t, base, shop.manager, conv, a1.id)
		setStatus(t, base, a2.auth, "online")
		// Agent 1 falls silent; agent 2 keeps beating.
		eventually(t, 15*time.Second, "re-route to agent 2", func() bool {
			setStatus(t, base, a2.auth, "online")
			cur := liveSession(t, base, shop.manager, conv)
			return cur.AgentID == a2.id
		})
		cur := liveSession(t, base, shop.manager, conv)
		if cur.ID != s.ID || cur.AssignedBy != "routing:reroute" {
			t.Fatalf("re-routed session: %+v", cur)
		}
		b.expect("session", func(f frame) bool { return f.Session.ID == s.ID && f.Session.AgentID == a2.id })
		b.expect("message", func(f frame) bool { return f.msg(t).Body.Event == "assigned" && f.Seq > 2 })
	})
}

// TestThreeNodesRaceForLastSlot: three nodes on one Redis each open a session at the same moment for
// a shop whose only agent has one slot left: exactly one gets it, the others wait, and the claim log
// shows no claim above capacity; closing it serves the next one.
func TestThreeNodesRaceForLastSlot(t *testing.T) {
	t.Parallel()
	env := productionEnv(t)
	sfx := testdb.Name("-")
	nodes := []string{startNode(t, env, "", "--node-id=r1"+sfx).URL(), startNode(t, env, "", "--node-id=r2"+sfx).URL(),
		startNode(t, env, "", "--node-id=r3"+sfx).URL()}
	shop := newShop(t, nodes[0], 1)
	ag := shop.agents[0]
	mgr := shop.manager
	patchStaff(t, nodes[0], mgr, ag.id, map[string]any{"capacity": 1})
	setStatus(t, nodes[1], ag.auth, "online")

	type asker struct {
		dev  *wsClient
		conv int64
	}
	askers := make([]asker, 6)
	for i := range askers {
		base := nodes[i%3]
		b := shop.buyer(t, fmt.Sprintf("racer%d", i))
		conv := startConversation(t, base, b, map[string]any{"product_id": "p"})
		askers[i] = asker{dev: dial(t, base, b), conv: conv}
	}
	var wg sync.WaitGroup
	for i := range askers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			askers[i].dev.send(map[string]any{"type": "send", "ref": fmt.Sprintf("race-%d", i), "client_msg_id": fmt.Sprintf("race-%d", i),
				"conversation_id": askers[i].conv, "body": map[string]any{"type": "text", "text": "me first"}})
		}()
	}
	wg.Wait()
	open := func() (n int, first int64) {
		var out struct{ Sessions []session.Session }
		api(t, "GET", nodes[0]+"/api/sessions?state=open", mgr, nil, &out)
		for _, s := range out.Sessions {
			n, first = n+1, s.ID
		}
		return n, first
	}
	var winner int64
	eventually(t, 10*time.Second, "one session assigned", func() bool {
		var n int
		n, winner = open()
		return n == 1
	})
	var q struct{ Length int }
	eventually(t, 5*time.Second, "five waiting", func() bool {
		api(t, "GET", nodes[2]+"/api/routing/queue", mgr, nil, &q)
		return q.Length == 5
	})
	if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/close", nodes[2], winner), ag.auth, map[string]any{}, nil); st != http.StatusOK {
		t.Fatalf("close: %d", st)
	}
	eventually(t, 10*time.Second, "the next one served", func() bool {
		n, next := open()
		return n == 1 && next != winner
	})
	if r := claims(t, nodes[1], mgr).Replay; r.OverCapacity != 0 || r.Mismatches != 0 || r.Claims != 2 {
		t.Fatalf("claims: %+v", r)
	}
}
