package routing

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/migrations/testdb"
	"github.com/shopdesk/shopdesk/rules"
	"github.com/shopdesk/shopdesk/session"
)

func wantAgent(t *testing.T, s session.Session, agentID int64) {
	t.Helper()
	if s.AgentID != agentID {
		t.Fatalf("session %d is with agent %d (state %s), want %d", s.ID, s.AgentID, s.State, agentID)
	}
	if agentID != 0 && s.State != session.StateOpen {
		t.Fatalf("session %d is %s", s.ID, s.State)
	}
}

func filters(tr Trace) map[string]int {
	m := map[string]int{}
	for _, f := range tr.Filters {
		m[f.Filter] = f.Removed
	}
	return m
}

func TestAssignExplains(t *testing.T) {
	h := newMemoryHarness(t)
	h.agent(1, 11, agent.StatusOnline, 2, "presale")
	h.agent(1, 12, agent.StatusOnline, 2, "presale")
	h.agent(1, 13, agent.StatusOffline, 2, "presale")
	h.agent(1, 14, agent.StatusBusy, 2, "presale")
	h.agent(1, 15, agent.StatusAway, 2, "presale")
	h.agent(1, 16, agent.StatusOnline, 1, "aftersale")
	h.dir.stray = []agent.Staff{{ID: 99, ShopID: 2, Status: agent.StatusOnline, Capacity: 9, Groups: []string{"presale"}, Active: true}}

	s1 := h.open(1, presale)
	wantAgent(t, s1, 11)
	trs := h.traces(1, s1.ID)
	if len(trs) != 1 {
		t.Fatalf("%d traces", len(trs))
	}
	tr := trs[0]
	want := map[string]int{FilterOtherShop: 1, FilterOffline: 1, FilterBusy: 1, FilterAway: 1, FilterNotInGroup: 1}
	if got := filters(tr); !reflect.DeepEqual(got, want) {
		t.Fatalf("filters %v, want %v", got, want)
	}
	if tr.Version != 0 || tr.RuleName != "presale" || tr.Rule != 0 || tr.Cause != CauseOpened || tr.Outcome != OutcomeAssigned ||
		tr.AgentID != 11 || tr.Eligible != 2 || tr.Staff != 7 || tr.Weight != 1 {
		t.Fatalf("trace %+v", tr)
	}
	if len(tr.Top) != 2 || tr.Top[0].AgentID != 11 || tr.Top[1].AgentID != 12 || tr.TieBreak != "agent id: 11 before 12" {
		t.Fatalf("top %+v, tie-break %q", tr.Top, tr.TieBreak)
	}
	if !reflect.DeepEqual(tr.Prefer, []rules.Preference{rules.PreferLastAgentFirst, rules.PreferLeastLoadRatio}) ||
		!reflect.DeepEqual(tr.Top[0].Keys, []float64{1, 0}) {
		t.Fatalf("prefer %v keys %v", tr.Prefer, tr.Top[0].Keys)
	}

	wantAgent(t, h.open(1, presale), 12) // least loaded
	wantAgent(t, h.open(1, presale), 11)
	wantAgent(t, h.open(1, presale), 12)
	s5 := h.open(1, presale)
	if s5.State != session.StateQueued || s5.AgentID != 0 {
		t.Fatalf("fifth session %+v", s5)
	}
	tr = h.traces(1, s5.ID)[0]
	if tr.Outcome != OutcomeQueued || filters(tr)[FilterFull] != 2 || tr.Eligible != 0 {
		t.Fatalf("queued trace %+v", tr)
	}
	if pos, total, _, err := h.eng.Position(h.ctx, 1, s5.ID); err != nil || pos != 1 || total != 1 {
		t.Fatalf("Position = %d/%d %v", pos, total, err)
	}
	wantAgent(t, h.open(1, aftersale), 16)
	if st := h.eng.Stats(); st.Assigned != 5 || st.Queued != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestQueueOrderAndDrain(t *testing.T) {
	h := newMemoryHarness(t)
	h.agent(1, 21, agent.StatusOnline, 1)
	h.publish(1, rules.RuleSet{
		Rules:   []rules.Rule{{Name: "vip", When: `session.buyer.tier == "vip"`, Target: `agent.status == "online"`, Priority: 10}},
		Default: rules.Rule{Name: "all", Target: `agent.status == "online"`},
	})
	h.dir.buyers[[2]int64{1, 301}] = agent.Buyer{ID: 301, ShopID: 1, Tier: "vip"}

	s1 := h.openIn(1, 300, unknown)
	wantAgent(t, s1, 21)
	h.clock.Add(time.Second)
	s2 := h.openIn(1, 302, unknown)
	h.clock.Add(time.Second)
	s3 := h.openIn(1, 301, unknown) // vip, later but first
	h.clock.Add(time.Second)
	s4 := h.openIn(1, 303, unknown)
	for i, s := range []session.Session{s3, s2, s4} {
		pos, total, _, err := h.eng.Position(h.ctx, 1, s.ID)
		if err != nil || pos != i+1 || total != 3 {
			t.Fatalf("session %d at %d/%d (%v), want %d/3", s.ID, pos, total, err, i+1)
		}
	}
	h.clock.Add(10 * time.Second)
	h.close(s1.ID)
	wantAgent(t, h.sess.get(s3.ID), 21)
	if tr := h.traces(1, s3.ID); tr[0].Cause != CauseQueue || tr[0].RuleName != "vip" {
		t.Fatalf("drain trace %+v", tr[0])
	}
	h.clock.Add(10 * time.Second)
	h.close(s3.ID)
	wantAgent(t, h.sess.get(s2.ID), 21)
	pos, total, eta, err := h.eng.Position(h.ctx, 1, s4.ID)
	if err != nil || pos != 1 || total != 1 || eta <= 0 {
		t.Fatalf("Position = %d/%d eta %v %v", pos, total, eta, err)
	}
	// A queued session that closes leaves the queue.
	h.close(s4.ID)
	if pos, total, _, _ := h.eng.Position(h.ctx, 1, s4.ID); pos != 0 || total != 0 {
		t.Fatalf("closed session still queued: %d/%d", pos, total)
	}
	// Capacity raised: the queue drains.
	s5 := h.openIn(1, 304, unknown)
	h.dir.update(1, 21, func(st *agent.Staff) { st.Capacity = 2 })
	if err := h.eng.AgentChanged(h.ctx, 1, 21); err != nil {
		t.Fatal(err)
	}
	wantAgent(t, h.sess.get(s5.ID), 21)
}

func TestEscalation(t *testing.T) {
	h := newMemoryHarness(t)
	h.agent(1, 31, agent.StatusOnline, 1, "backup")
	h.agent(1, 32, agent.StatusOffline, 1, "presale")
	h.publish(1, rules.RuleSet{
		Rules: []rules.Rule{{Name: "presale", When: `session.kind == "presale"`, Target: `"presale" in agent.groups`,
			EscalateAfterSeconds: 60, Priority: 1}},
		Default: rules.Rule{Name: "backup", Target: `"backup" in agent.groups`, Priority: 5},
	})
	busy := h.open(1, unknown) // the backup agent's only slot
	wantAgent(t, busy, 31)
	s := h.open(1, presale)
	if s.State != session.StateQueued {
		t.Fatalf("presale session %+v", s)
	}
	entry := func() QueueEntry {
		es, err := h.queue.Ordered(h.ctx, 1, 1)
		if err != nil || len(es) != 1 {
			t.Fatalf("queue %v %v", es, err)
		}
		return es[0]
	}
	if e := entry(); e.Priority != 1 {
		t.Fatalf("queued at priority %d", e.Priority)
	}
	h.tick(30 * time.Second)
	if e := entry(); e.Priority != 1 {
		t.Fatalf("escalated too early: priority %d", e.Priority)
	}
	h.tick(31 * time.Second)
	if e := entry(); e.Priority != 5 || h.sess.get(s.ID).State != session.StateQueued {
		t.Fatalf("after escalation: %+v, %s", e, h.sess.get(s.ID).State)
	}
	h.close(busy.ID)
	wantAgent(t, h.sess.get(s.ID), 31)
	tr := h.traces(1, s.ID)[0]
	if tr.Cause != CauseEscalate || tr.Escalations != 1 || tr.RuleName != "backup" || tr.Rule != rules.DefaultRule {
		t.Fatalf("escalation trace %+v", tr)
	}
	if h.eng.Stats().Escalations != 1 {
		t.Fatalf("stats %+v", h.eng.Stats())
	}
}

func TestNoAnswerTimeout(t *testing.T) {
	h := newMemoryHarness(t)
	for _, id := range []int64{41, 42, 43} {
		h.agent(1, id, agent.StatusOnline, 5)
	}
	h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "all", Target: `agent.status == "online"`, NoAnswerSeconds: 30}})
	s := h.open(1, unknown)
	wantAgent(t, s, 41)
	h.tick(20 * time.Second)
	wantAgent(t, h.sess.get(s.ID), 41)
	h.tick(11 * time.Second)
	wantAgent(t, h.sess.get(s.ID), 42)
	if h.load(1, 41) != 0 || h.load(1, 42) != 1 {
		t.Fatalf("loads %d %d", h.load(1, 41), h.load(1, 42))
	}
	h.tick(31 * time.Second)
	wantAgent(t, h.sess.get(s.ID), 43) // never back to 41
	h.tick(31 * time.Second)
	wantAgent(t, h.sess.get(s.ID), 43) // no one else: kept
	trs := h.traces(1, s.ID)
	if trs[0].Outcome != OutcomeKept || trs[0].Cause != CauseNoAnswer || filters(trs[0])[FilterExcluded] != 3 {
		t.Fatalf("last trace %+v", trs[0])
	}
	// An answered session stays.
	s2 := h.open(1, unknown)
	h.sess.respond(s2.ID)
	first := h.sess.get(s2.ID).AgentID
	h.tick(2 * time.Minute)
	wantAgent(t, h.sess.get(s2.ID), first)
	if h.eng.Stats().NoAnswer != 2 {
		t.Fatalf("stats %+v", h.eng.Stats())
	}
}

func TestRerouteAfterGrace(t *testing.T) {
	h := newMemoryHarness(t)
	h.agent(1, 51, agent.StatusOnline, 2)
	h.agent(1, 52, agent.StatusOnline, 2)
	h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "all", Target: `agent.status == "online"`}})
	s1 := h.open(1, unknown)
	s2 := h.open(1, unknown)
	wantAgent(t, s1, 51)
	wantAgent(t, s2, 52)

	h.setStatus(1, 51, agent.StatusOffline)
	h.tick(30 * time.Second)
	wantAgent(t, h.sess.get(s1.ID), 51) // within the grace period
	h.tick(31 * time.Second)
	wantAgent(t, h.sess.get(s1.ID), 52)
	if h.load(1, 51) != 0 || h.load(1, 52) != 2 {
		t.Fatalf("loads %d %d", h.load(1, 51), h.load(1, 52))
	}
	if tr := h.traces(1, s1.ID)[0]; tr.Cause != CauseReroute || tr.AgentID != 52 {
		t.Fatalf("reroute trace %+v", tr)
	}

	// Busy keeps its sessions.
	h.setStatus(1, 52, agent.StatusBusy)
	h.tick(5 * time.Minute)
	wantAgent(t, h.sess.get(s1.ID), 52)

	// Away with no one to take over: queued, kept by the agent until someone comes online.
	h.setStatus(1, 52, agent.StatusAway)
	h.tick(61 * time.Second)
	h.tick(time.Second)
	wantAgent(t, h.sess.get(s1.ID), 52)
	if pos, _, _, _ := h.eng.Position(h.ctx, 1, s1.ID); pos == 0 {
		t.Fatal("the session of an away agent with no one to take it is not queued")
	}
	h.agent(1, 53, agent.StatusOffline, 3)
	h.setStatus(1, 53, agent.StatusOnline)
	wantAgent(t, h.sess.get(s1.ID), 53)
	wantAgent(t, h.sess.get(s2.ID), 53)
	if h.load(1, 52) != 0 || h.load(1, 53) != 2 {
		t.Fatalf("loads %d %d", h.load(1, 52), h.load(1, 53))
	}
	// An agent back before anyone took over keeps the session.
	s3 := h.open(1, unknown)
	wantAgent(t, s3, 53)
	h.agent(1, 54, agent.StatusOnline, 1)
	h.setStatus(1, 53, agent.StatusAway)
	h.tick(2 * time.Minute)
	h.setStatus(1, 53, agent.StatusOnline)
	h.tick(time.Second)
	owners := map[int64]int{}
	for _, s := range []session.Session{s1, s2, s3} {
		owners[h.sess.get(s.ID).AgentID]++
	}
	if owners[54] != 1 || owners[53] != 2 {
		t.Fatalf("owners %v", owners)
	}
	if n, _ := h.queue.Len(h.ctx, 1); n != 0 {
		t.Fatalf("%d left in the queue", n)
	}
}

func TestLastAgentFirst(t *testing.T) {
	h := newMemoryHarness(t) // version 0: the default rule set prefers the last agent
	h.agent(1, 61, agent.StatusOnline, 3, "presale")
	h.agent(1, 62, agent.StatusOnline, 3, "presale")
	s1 := h.openIn(1, 500, presale)
	wantAgent(t, s1, 61)
	h.close(s1.ID)
	wantAgent(t, h.openIn(1, 501, presale), 61) // 61 now holds 1, 62 none
	s2 := h.openIn(1, 500, presale)
	wantAgent(t, s2, 61)
	tr := h.traces(1, s2.ID)[0]
	if !reflect.DeepEqual(tr.Top[0].Keys, []float64{0, 1.0 / 3}) || tr.TieBreak != "" {
		t.Fatalf("trace %+v", tr)
	}
}

func TestTransfer(t *testing.T) {
	h := newMemoryHarness(t)
	h.dir.add(agent.Staff{ID: 70, ShopID: 1, Role: agent.RoleManager, Status: agent.StatusOnline})
	h.agent(1, 71, agent.StatusOnline, 2, "a")
	h.agent(1, 72, agent.StatusOnline, 1, "b")
	h.agent(1, 73, agent.StatusBusy, 5, "b")
	h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "a", Target: `"a" in agent.groups`}})
	s := h.open(1, unknown)
	wantAgent(t, s, 71)

	if _, err := h.eng.Transfer(h.ctx, 1, s.ID, TransferTo{Group: "b"}, "", 72); session.ErrorCode(err) != session.EFORBIDDEN {
		t.Fatalf("transfer by a stranger: %v", err)
	}
	tr, err := h.eng.Transfer(h.ctx, 1, s.ID, TransferTo{AgentID: 73}, "", 71)
	if session.ErrorCode(err) != session.ECONFLICT || filters(*tr)[FilterBusy] != 1 {
		t.Fatalf("transfer to a busy agent: %v %+v", err, tr)
	}
	tr, err = h.eng.Transfer(h.ctx, 1, s.ID, TransferTo{Group: "b"}, "needs billing", 71)
	if err != nil || tr.AgentID != 72 || tr.Note != "needs billing" || tr.Cause != CauseTransfer {
		t.Fatalf("transfer to group b: %+v %v", tr, err)
	}
	wantAgent(t, h.sess.get(s.ID), 72)
	if h.load(1, 71) != 0 || h.load(1, 72) != 1 {
		t.Fatalf("loads %d %d", h.load(1, 71), h.load(1, 72))
	}
	if got := h.sess.get(s.ID).AssignedBy; got != AssignedByTransfer {
		t.Fatalf("assigned by %q", got)
	}
	// 72 is full now: a transfer to them fails and changes nothing.
	s2 := h.open(1, unknown)
	if _, err := h.eng.Transfer(h.ctx, 1, s2.ID, TransferTo{AgentID: 72}, "", 70); session.ErrorCode(err) != session.ECONFLICT {
		t.Fatalf("transfer to a full agent: %v", err)
	}
	wantAgent(t, h.sess.get(s2.ID), 71)
	if _, err := h.eng.Transfer(h.ctx, 1, s.ID, TransferTo{AgentID: 71}, "", 70); err != nil {
		t.Fatalf("manager's transfer: %v", err)
	}
	if h.load(1, 71) != 2 || h.load(1, 72) != 0 {
		t.Fatalf("loads %d %d", h.load(1, 71), h.load(1, 72))
	}
	if _, err := h.eng.Transfer(h.ctx, 1, s.ID, TransferTo{AgentID: 71, Group: "a"}, "", 70); session.ErrorCode(err) != session.EINVALID {
		t.Fatalf("two targets: %v", err)
	}
	if _, err := h.eng.Transfer(h.ctx, 2, s.ID, TransferTo{AgentID: 71}, "", 70); session.ErrorCode(err) != session.ENOTFOUND {
		t.Fatalf("another shop's session: %v", err)
	}
	// 71 is full; a third session waits. Transferring one of 71's sessions away serves it at once.
	s3 := h.open(1, unknown)
	if got := h.sess.get(s3.ID); got.State != session.StateQueued {
		t.Fatalf("third session: %+v", got)
	}
	if _, err := h.eng.Transfer(h.ctx, 1, s.ID, TransferTo{Group: "b"}, "", 70); err != nil {
		t.Fatalf("transfer back to b: %v", err)
	}
	wantAgent(t, h.sess.get(s3.ID), 71)
}

func TestManualAssignForces(t *testing.T) {
	h := newMemoryHarness(t)
	h.dir.add(agent.Staff{ID: 80, ShopID: 1, Role: agent.RoleManager, Status: agent.StatusOnline})
	h.agent(1, 81, agent.StatusOnline, 1)
	h.agent(1, 82, agent.StatusOffline, 1)
	h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "all", Target: `agent.status == "online"`}})
	s1 := h.open(1, unknown)
	s2 := h.open(1, unknown)
	wantAgent(t, s1, 81)
	if s2.State != session.StateQueued {
		t.Fatal("second session not queued")
	}
	if _, err := h.eng.Assign(h.ctx, 1, s2.ID, 81, 81); session.ErrorCode(err) != session.EFORBIDDEN {
		t.Fatalf("assign by an agent: %v", err)
	}
	if _, err := h.eng.Assign(h.ctx, 1, s2.ID, 82, 80); session.ErrorCode(err) != session.ECONFLICT {
		t.Fatalf("assign to an offline agent: %v", err)
	}
	tr, err := h.eng.Assign(h.ctx, 1, s2.ID, 81, 80)
	if err != nil || !tr.Over || tr.Cause != CauseManual {
		t.Fatalf("Assign = %+v %v", tr, err)
	}
	wantAgent(t, h.sess.get(s2.ID), 81)
	if h.load(1, 81) != 2 {
		t.Fatalf("load %d", h.load(1, 81))
	}
	if n, _ := h.queue.Len(h.ctx, 1); n != 0 {
		t.Fatal("assigned session still queued")
	}
	log, _ := h.slots.ClaimLog(h.ctx, 1)
	if r := ReplayClaims(log); r.OverCapacity != 0 || r.ForcedOver != 1 || r.Forced != 1 {
		t.Fatalf("replay %+v", r)
	}
	if got := h.sess.get(s2.ID).AssignedBy; got != AssignedByManual {
		t.Fatalf("assigned by %q", got)
	}
}

func TestShadow(t *testing.T) {
	h := newMemoryHarness(t)
	h.agent(1, 91, agent.StatusOnline, 3, "x")
	h.agent(1, 92, agent.StatusOnline, 3, "x", "y")
	h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "x", Target: `"x" in agent.groups`}})
	draft := rules.RuleSet{Default: rules.Rule{Name: "y", Target: `"y" in agent.groups`}}
	if _, err := h.store.SaveDraft(h.ctx, 1, draft, 70, true); err != nil {
		t.Fatal(err)
	}
	h.eng.RulesChanged(1)
	s1 := h.open(1, unknown) // live: 91 (tie, lower id); shadow: 92
	wantAgent(t, s1, 91)
	s2 := h.open(1, unknown) // live: 92 (least loaded); shadow: 92
	wantAgent(t, s2, 92)
	if err := h.eng.Flush(h.ctx); err != nil {
		t.Fatal(err)
	}
	rs, total, differ, err := h.store.ShadowResults(h.ctx, 1, h.clock.Now().Add(-time.Hour), 10)
	if err != nil || total != 2 || differ != 1 {
		t.Fatalf("ShadowResults = %+v %d %d %v", rs, total, differ, err)
	}
	byID := map[int64]ShadowResult{}
	for _, r := range rs {
		byID[r.SessionID] = r
	}
	if r := byID[s1.ID]; !r.Differs || r.LiveAgent != 91 || r.ShadowAgent != 92 || r.ShadowRule != "y" {
		t.Fatalf("shadow of s1 %+v", r)
	}
	if r := byID[s2.ID]; r.Differs || r.ShadowAgent != 92 {
		t.Fatalf("shadow of s2 %+v", r)
	}
	// Shadow claims nothing.
	if h.load(1, 92) != 1 {
		t.Fatalf("load of 92 is %d", h.load(1, 92))
	}
}

func TestSimulateChangesNothing(t *testing.T) {
	h := newMemoryHarness(t)
	h.agent(1, 101, agent.StatusOnline, 2, "x")
	h.agent(1, 102, agent.StatusOnline, 2, "y")
	h.agent(1, 103, agent.StatusAway, 2, "y")
	h.dir.stray = []agent.Staff{{ID: 199, ShopID: 2, Status: agent.StatusOnline, Capacity: 9, Active: true}}
	wantAgent(t, h.open(1, unknown), 101) // version 0's default rule: anyone online
	logBefore, _ := h.slots.ClaimLog(h.ctx, 1)
	statsBefore := h.eng.Stats()
	qBefore, _ := h.queue.Len(h.ctx, 1)

	rs := rules.RuleSet{Default: rules.Rule{Name: "y first", Target: `"y" in agent.groups || agent.load > 0`,
		Prefer: []rules.Preference{rules.PreferScore}, Score: `agent.id == 102 ? 1.0 : 0.0`}}
	tr, err := h.eng.Simulate(h.ctx, 1, SimulateRequest{RuleSet: &rs, Session: rules.Session{Kind: rules.KindPreSale}})
	if err != nil || tr.Outcome != OutcomeChosen || tr.AgentID != 102 || tr.Version != VersionDraft {
		t.Fatalf("Simulate = %+v %v", tr, err)
	}
	if len(tr.Agents) != 4 {
		t.Fatalf("%d agents in the trace", len(tr.Agents))
	}
	verdicts := map[int64]AgentTrace{}
	for _, a := range tr.Agents {
		verdicts[a.AgentID] = a
	}
	if v := verdicts[101]; v.Removed != "" || v.Rank != 2 || v.Load != 1 {
		t.Fatalf("101: %+v", v)
	}
	if v := verdicts[102]; v.Rank != 1 || !reflect.DeepEqual(v.Keys, []float64{-1}) {
		t.Fatalf("102: %+v", v)
	}
	if verdicts[103].Removed != FilterAway || verdicts[199].Removed != FilterOtherShop {
		t.Fatalf("removed: %+v %+v", verdicts[103], verdicts[199])
	}
	// The version in force, and a saved draft.
	if tr, err := h.eng.Simulate(h.ctx, 1, SimulateRequest{Session: rules.Session{Kind: rules.KindUnknown}}); err != nil || tr.AgentID != 102 || tr.RuleName != "anyone online" {
		t.Fatalf("Simulate of the version in force = %+v %v", tr, err)
	}
	if _, err := h.store.SaveDraft(h.ctx, 1, rs, 1, false); err != nil {
		t.Fatal(err)
	}
	if tr, err := h.eng.Simulate(h.ctx, 1, SimulateRequest{Draft: true}); err != nil || tr.AgentID != 102 {
		t.Fatalf("Simulate of the draft = %+v %v", tr, err)
	}
	bad := rules.RuleSet{Default: rules.Rule{Name: "bad", Target: "agent.nope"}}
	var ve *rules.ValidationError
	if _, err := h.eng.Simulate(h.ctx, 1, SimulateRequest{RuleSet: &bad}); !errors.As(err, &ve) {
		t.Fatalf("Simulate of an invalid set: %v", err)
	}

	logAfter, _ := h.slots.ClaimLog(h.ctx, 1)
	qAfter, _ := h.queue.Len(h.ctx, 1)
	if len(logAfter) != len(logBefore) || qAfter != qBefore || h.eng.Stats() != statsBefore {
		t.Fatal("Simulate changed slots, queue or counters")
	}
	if err := h.eng.Flush(h.ctx); err != nil {
		t.Fatal(err)
	}
	if trs, _ := h.store.Traces(h.ctx, 1, 0); len(trs) != 0 {
		t.Fatal("Simulate stored a trace")
	}
}

func TestRuntimeErrorsSkip(t *testing.T) {
	h := newMemoryHarness(t)
	h.agent(1, 111, agent.StatusOnline, 2)
	h.agent(1, 112, agent.StatusOnline, 3)
	h.publish(1, rules.RuleSet{
		Rules: []rules.Rule{
			{Name: "broken when", When: `session.buyer.tags[3] == "x"`, Target: "true"},
			{Name: "modulo", When: "true", Target: `agent.load % (agent.capacity - 2) == 0`},
		},
		Default: rules.Rule{Name: "all", Target: "true"},
	})
	s := h.open(1, unknown)
	wantAgent(t, s, 112)
	tr := h.traces(1, s.ID)[0]
	if tr.RuleName != "modulo" || tr.ErrorCount != 2 || len(tr.Errors) != 2 || filters(tr)[FilterRuntimeError] != 1 {
		t.Fatalf("trace %+v", tr)
	}
	if h.eng.Stats().RuleErrors != 2 {
		t.Fatalf("stats %+v", h.eng.Stats())
	}
}

func TestRecover(t *testing.T) {
	h := newMemoryHarness(t)
	h.agent(1, 121, agent.StatusOnline, 1)
	h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "all", Target: `agent.status == "online"`}})
	s1 := h.open(1, unknown)
	h.clock.Add(time.Second)
	s2 := h.open(1, unknown)
	h.clock.Add(time.Second)
	s3 := h.open(1, unknown)
	wantAgent(t, s1, 121)

	// A restart that lost both the queue and the slots.
	h.slots, h.queue = NewMemorySlots(), NewMemoryQueue()
	eng, err := New(Ports{Slots: h.slots, Queue: h.queue, Store: h.store, Sessions: h.sess, Directory: h.dir}, Config{Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	if err := eng.Recover(h.ctx); err != nil {
		t.Fatal(err)
	}
	es, _ := h.queue.Ordered(h.ctx, 1, 0)
	if len(es) != 2 || es[0].SessionID != s2.ID || es[1].SessionID != s3.ID || !es[0].EnqueuedAt.Equal(s2.OpenedAt) {
		t.Fatalf("recovered queue %+v", es)
	}
	if hd, ok, _ := h.slots.Held(h.ctx, 1, s1.ID); !ok || hd.AgentID != 121 {
		t.Fatalf("recovered slot %+v %v", hd, ok)
	}
	h.close(s1.ID)
	wantAgent(t, h.sess.get(s2.ID), 121)
}

// TestRecoverMany: a recovery reads every waiting session, page by page, not only the newest page.
func TestRecoverMany(t *testing.T) {
	h := newMemoryHarness(t)
	h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "all", Target: `agent.status == "online"`}})
	const n = 1234
	for i := 0; i < n; i++ {
		h.sess.open(1, int64(i+1), session.EntryContext{})
	}
	if err := h.eng.Recover(h.ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.queue.Len(h.ctx, 1); got != n {
		t.Fatalf("recovered %d of %d waiting sessions", got, n)
	}
}

// TestFailedRoutingLeavesNothingBehind: a session whose routing fails (a backend down, the caller's
// deadline) is queued where the next drain serves it, not left for the queue's rebuild; an assignment
// the store recorded before the error stands, with its slot.
func TestFailedRoutingLeavesNothingBehind(t *testing.T) {
	h := newMemoryHarness(t)
	h.agent(1, 141, agent.StatusOnline, 2)
	h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "all", Target: `agent.status == "online"`}})
	down := session.Errorf(session.EUNAVAILABLE, "store unreachable")
	h.sess.fail = func(*session.Session, int64) error { return down }
	s := h.sess.open(1, 9001, unknown)
	if err := h.eng.Opened(h.ctx, s); err == nil {
		t.Fatal("Opened must report the failure")
	}
	if pos, _, _ := h.queue.Position(h.ctx, 1, s.ID); pos != 1 {
		t.Fatalf("the session must wait in the queue, at %d", pos)
	}
	if _, held, _ := h.slots.Held(h.ctx, 1, s.ID); held {
		t.Fatal("a failed assignment must give its claim back")
	}
	h.sess.fail = nil
	h.tick(time.Second)
	wantAgent(t, h.sess.get(s.ID), 141)

	// Recorded, then the caller's deadline: the assignment stands, keeps its slot, and is announced
	// once by a second AssignTo (the first told nobody).
	timeouts := 0
	h.sess.failAfter = func(*session.Session, int64) error {
		if timeouts++; timeouts == 1 {
			return context.DeadlineExceeded
		}
		return nil
	}
	s2 := h.open(1, unknown)
	h.sess.failAfter = nil
	wantAgent(t, s2, 141)
	h.sess.mu.Lock()
	told := h.sess.told[s2.ID]
	h.sess.mu.Unlock()
	if timeouts != 2 || told != 1 {
		t.Fatalf("the assignment recorded before a timeout must be announced once: %d calls, %d announced", timeouts, told)
	}
	if hd, held, _ := h.slots.Held(h.ctx, 1, s2.ID); !held || hd.AgentID != 141 {
		t.Fatalf("the recorded assignment lost its slot: %+v %v", hd, held)
	}
	if pos, _, _ := h.queue.Position(h.ctx, 1, s2.ID); pos != 0 {
		t.Fatalf("an assigned session is not queued, at %d", pos)
	}
}

// TestCloseDoesNotWaitForTheDrain: with Run running, a close releases the slot at once and the queue
// is served on Run's goroutine.
func TestCloseDoesNotWaitForTheDrain(t *testing.T) {
	h := newMemoryHarness(t)
	h.agent(1, 151, agent.StatusOnline, 1)
	h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "all", Target: `agent.status == "online"`}})
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- h.eng.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	for !h.eng.running.Load() {
		time.Sleep(time.Millisecond)
	}
	s1 := h.open(1, unknown)
	s2 := h.open(1, unknown)
	wantAgent(t, s1, 151)
	h.close(s1.ID)
	deadline := time.Now().Add(5 * time.Second)
	for h.sess.get(s2.ID).State != session.StateOpen {
		if time.Now().After(deadline) {
			t.Fatal("the queued session was not served after the close")
		}
		time.Sleep(5 * time.Millisecond)
	}
	wantAgent(t, h.sess.get(s2.ID), 151)
}

// beats is a Presence whose online set tests set by hand.
type beats struct{ online []int64 }

func (b *beats) Online(context.Context, int64, time.Time) ([]int64, error) { return b.online, nil }

func TestPresenceAndSchedules(t *testing.T) {
	h := newMemoryHarness(t)
	b := &beats{online: []int64{132}}
	eng, err := New(Ports{Slots: h.slots, Queue: h.queue, Store: h.store, Sessions: h.sess, Directory: h.dir, Presence: b},
		Config{Now: h.clock.Now, PresenceTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	h.agent(1, 131, agent.StatusOnline, 3, "x") // says online, but no heartbeat
	h.agent(1, 132, agent.StatusOnline, 3, "y")
	h.agent(1, 133, agent.StatusOnline, 3, "x")
	b.online = append(b.online, 133)
	v1 := h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "x", Target: `"x" in agent.groups`}})
	v2, err := h.store.SaveVersion(h.ctx, 1, rules.RuleSet{Default: rules.Rule{Name: "y", Target: `"y" in agent.groups`}}, 1, "nights")
	if err != nil {
		t.Fatal(err)
	}
	s := h.open(1, unknown)
	wantAgent(t, s, 133)
	if tr := h.traces(1, s.ID)[0]; filters(tr)[FilterNoHeartbeat] != 1 || tr.Version != v1 {
		t.Fatalf("trace %+v", tr)
	}
	// From 10:30 to 11:00 (UTC, the clock starts at 10:00) version 2 is in force.
	sched := []rules.Schedule{{Version: v2.Number, TimeZone: "UTC", Start: "2025-03-10T10:30", End: "2025-03-10T11:00"}}
	if err := h.store.SetSchedules(h.ctx, 1, sched, 1, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	h.eng.RulesChanged(1)
	wantAgent(t, h.open(1, unknown), 133)
	h.clock.Add(31 * time.Minute)
	h.eng.invalidate(1)
	s2 := h.open(1, unknown)
	wantAgent(t, s2, 132)
	if tr := h.traces(1, s2.ID)[0]; tr.Version != v2.Number || tr.RuleName != "y" {
		t.Fatalf("scheduled trace %+v", tr)
	}
	h.clock.Add(30 * time.Minute)
	h.eng.invalidate(1)
	wantAgent(t, h.open(1, unknown), 133)
}

func TestAssignmentFailuresLeaveNoSlot(t *testing.T) {
	h := newMemoryHarness(t)
	h.agent(1, 141, agent.StatusOnline, 2)
	h.agent(1, 142, agent.StatusOnline, 2)
	h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "all", Target: `agent.status == "online"`}})
	// 141 was deactivated a moment ago: the session directory refuses it.
	h.sess.fail = func(s *session.Session, agentID int64) error {
		if agentID == 141 {
			return session.Errorf(session.EINVALID, "staff 141 is deactivated")
		}
		return nil
	}
	s := h.open(1, unknown)
	wantAgent(t, s, 142)
	if h.load(1, 141) != 0 || h.load(1, 142) != 1 {
		t.Fatalf("loads %d %d", h.load(1, 141), h.load(1, 142))
	}
	// The session closes while being assigned: nothing stays claimed.
	h.sess.fail = func(s *session.Session, agentID int64) error {
		return session.Errorf(session.ECONFLICT, "session %d is closed", s.ID)
	}
	s2 := h.open(1, unknown)
	if tr := h.traces(1, s2.ID)[0]; tr.Outcome != OutcomeClosed {
		t.Fatalf("trace %+v", tr)
	}
	if hs, _ := h.slots.Holdings(h.ctx, 1); len(hs) != 1 {
		t.Fatalf("slots %+v", hs)
	}
	h.sess.fail = nil
	// A transfer whose assignment fails keeps the session's slot where it was.
	h.sess.fail = func(s *session.Session, agentID int64) error {
		return session.Errorf(session.EUNAVAILABLE, "database down")
	}
	if _, err := h.eng.Transfer(h.ctx, 1, s.ID, TransferTo{AgentID: 141}, "", 142); session.ErrorCode(err) != session.EUNAVAILABLE {
		t.Fatalf("transfer: %v", err)
	}
	if hd, _, _ := h.slots.Held(h.ctx, 1, s.ID); hd.AgentID != 142 {
		t.Fatalf("slot at %d after a failed transfer", hd.AgentID)
	}
}

func TestSweepLeakedSlots(t *testing.T) {
	h := newMemoryHarness(t)
	h.agent(1, 151, agent.StatusOnline, 3)
	h.agent(1, 152, agent.StatusOnline, 3)
	h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "all", Target: `agent.status == "online"`}})
	s1 := h.open(1, unknown)
	s2 := h.open(1, unknown)
	wantAgent(t, s1, 151)
	wantAgent(t, s2, 152)
	// A node died after claiming for a session that then closed, and another between moving s2's
	// slot and assigning it.
	h.sess.close(s1.ID)
	if _, err := h.slots.Claim(h.ctx, 1, 151, s2.ID, 1, 3); err != nil {
		t.Fatal(err)
	}
	h.tick(30 * time.Second) // s2's assignment is recent: left alone
	if hd, _, _ := h.slots.Held(h.ctx, 1, s2.ID); hd.AgentID != 151 {
		t.Fatalf("slot of s2 at %d", hd.AgentID)
	}
	if _, held, _ := h.slots.Held(h.ctx, 1, s1.ID); held {
		t.Fatal("the closed session's slot was not released")
	}
	h.tick(2 * time.Minute)
	if hd, _, _ := h.slots.Held(h.ctx, 1, s2.ID); hd.AgentID != 152 {
		t.Fatalf("slot of s2 at %d, want it back with 152", hd.AgentID)
	}
	if h.load(1, 151) != 0 || h.load(1, 152) != 1 {
		t.Fatalf("loads %d %d", h.load(1, 151), h.load(1, 152))
	}
}

func TestDrainSkipsWhatNoOneCanTake(t *testing.T) {
	h := newMemoryHarness(t)
	h.agent(1, 161, agent.StatusOnline, 1, "x")
	h.agent(1, 162, agent.StatusOnline, 1, "y")
	h.publish(1, rules.RuleSet{
		Rules:   []rules.Rule{{Name: "x", When: `session.kind == "presale"`, Target: `"x" in agent.groups`, Priority: 3}},
		Default: rules.Rule{Name: "y", Target: `"y" in agent.groups`},
	})
	bx := h.open(1, presale)
	by := h.open(1, unknown)
	wantAgent(t, bx, 161)
	wantAgent(t, by, 162)
	var xs []session.Session
	for i := 0; i < 5; i++ {
		xs = append(xs, h.open(1, presale)) // ahead in the queue: priority 3
	}
	y := h.open(1, unknown)
	if pos, total, _, _ := h.eng.Position(h.ctx, 1, y.ID); pos != 6 || total != 6 {
		t.Fatalf("y at %d/%d", pos, total)
	}
	h.close(by.ID) // frees group y: the sixth in line gets it
	wantAgent(t, h.sess.get(y.ID), 162)
	h.close(bx.ID)
	wantAgent(t, h.sess.get(xs[0].ID), 161)
	if pos, total, _, _ := h.eng.Position(h.ctx, 1, xs[1].ID); pos != 1 || total != 4 {
		t.Fatalf("x1 at %d/%d", pos, total)
	}
}

func TestRaceBetweenNodes(t *testing.T) {
	h := newMemoryHarness(t)
	h.agent(1, 171, agent.StatusOnline, 1)
	h.agent(1, 172, agent.StatusOnline, 1)
	h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "all", Target: `agent.status == "online"`}})
	other, err := New(Ports{Slots: h.slots, Queue: h.queue, Store: h.store, Sessions: h.sess, Directory: h.dir}, Config{Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	first := h.open(1, unknown) // node A reads the loads into its cache: 171 takes it
	wantAgent(t, first, 171)
	h.close(first.ID)
	// Node B takes 171's only slot; node A's cache still says 171 is free.
	s := h.sess.open(1, 9001, unknown)
	if err := other.Opened(h.ctx, s); err != nil {
		t.Fatal(err)
	}
	wantAgent(t, h.sess.get(s.ID), 171)
	raced := h.open(1, unknown)
	wantAgent(t, raced, 172)
	tr := h.traces(1, raced.ID)[0]
	if !reflect.DeepEqual(tr.Raced, []int64{171}) || tr.Top[0].AgentID != 171 || tr.AgentID != 172 {
		t.Fatalf("trace %+v", tr)
	}
	log, _ := h.slots.ClaimLog(h.ctx, 1)
	if r := ReplayClaims(log); r.OverCapacity != 0 || r.MaxLoad != 1 {
		t.Fatalf("replay %+v", r)
	}
}

func TestRedisQueueSurvivesRestart(t *testing.T) {
	rdb, prefix := testdb.Redis(t)
	h := newHarness(t, NewRedisSlots(rdb, prefix), NewRedisQueue(rdb, prefix))
	h.agent(1, 181, agent.StatusOnline, 1)
	h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "all", Target: `agent.status == "online"`}})
	s1 := h.open(1, unknown)
	h.clock.Add(time.Second)
	s2 := h.open(1, unknown)
	wantAgent(t, s1, 181)

	// A new node: its own client, engine and caches, the same Redis.
	rdb2 := redis.NewClient(&redis.Options{Addr: testdb.RedisAddr()})
	t.Cleanup(func() { rdb2.Close() })
	h.slots, h.queue = NewRedisSlots(rdb2, prefix), NewRedisQueue(rdb2, prefix)
	eng, err := New(Ports{Slots: h.slots, Queue: h.queue, Store: h.store, Sessions: h.sess, Directory: h.dir}, Config{Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	if err := eng.Recover(h.ctx); err != nil {
		t.Fatal(err)
	}
	if pos, total, _, err := eng.Position(h.ctx, 1, s2.ID); err != nil || pos != 1 || total != 1 {
		t.Fatalf("after restart: %d/%d %v", pos, total, err)
	}
	h.close(s1.ID)
	wantAgent(t, h.sess.get(s2.ID), 181)
}

// TestQueuedHook: Config.Queued hears of the sessions the engine queues, and of no other.
func TestQueuedHook(t *testing.T) {
	h := newMemoryHarness(t)
	var told []int64
	eng, err := New(Ports{Slots: h.slots, Queue: h.queue, Store: h.store, Sessions: h.sess, Directory: h.dir},
		Config{Now: h.clock.Now, Queued: func(_ context.Context, s *session.Session) { told = append(told, s.ID) }})
	if err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	h.agent(1, 161, agent.StatusOnline, 1)
	h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "all", Target: `agent.status == "online"`}})
	s1 := h.open(1, unknown)
	s2 := h.open(1, unknown)
	wantAgent(t, s1, 161)
	if len(told) != 1 || told[0] != s2.ID {
		t.Fatalf("told of %v, want only %d", told, s2.ID)
	}
}

// TestDrainServesABigQueue: a queue longer than the room drains in parallel into exactly the room
// there is, in queue order, in memory and on Redis; the rest keeps its order.
func TestDrainServesABigQueue(t *testing.T) {
	for _, mode := range []string{"memory", "redis"} {
		t.Run(mode, func(t *testing.T) {
			var h *harness
			if mode == "memory" {
				h = newMemoryHarness(t)
			} else {
				rdb, prefix := testdb.Redis(t)
				h = newHarness(t, NewRedisSlots(rdb, prefix), NewRedisQueue(rdb, prefix))
			}
			const agents, capacity, extra = 12, 3, 9
			for id := int64(1); id <= agents; id++ {
				h.agent(1, 500+id, agent.StatusOffline, capacity)
			}
			h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "all", Target: `agent.status == "online"`}})
			var waiting []session.Session
			for i := 0; i < agents*capacity+extra; i++ {
				h.clock.Add(time.Millisecond)
				waiting = append(waiting, h.open(1, unknown))
			}
			for id := int64(1); id <= agents; id++ {
				h.dir.update(1, 500+id, func(st *agent.Staff) { st.Status = agent.StatusOnline })
			}
			h.eng.invalidate(1)
			h.tick(time.Second)
			for i, s := range waiting {
				got := h.sess.get(s.ID)
				if i < agents*capacity && got.State != session.StateOpen {
					t.Fatalf("session %d (#%d in line) is %s: the room was for the first %d", s.ID, i, got.State, agents*capacity)
				}
				if i >= agents*capacity {
					if pos, _, _, _ := h.eng.Position(h.ctx, 1, s.ID); got.State != session.StateQueued || pos != i-agents*capacity+1 {
						t.Fatalf("session %d (#%d in line) is %s at %d; want queued at %d", s.ID, i, got.State, pos, i-agents*capacity+1)
					}
				}
			}
			for id := int64(1); id <= agents; id++ {
				if n := h.load(1, 500+id); n != capacity {
					t.Fatalf("agent %d holds %d, want %d", 500+id, n, capacity)
				}
			}
			log, _ := h.slots.ClaimLog(h.ctx, 1)
			if r := ReplayClaims(log); r.OverCapacity != 0 || r.MaxLoad != capacity || r.Mismatches != 0 {
				t.Fatalf("replay %+v", r)
			}
		})
	}
}

// TestStatusChangesPatchTheSnapshot: a status change reaches routing at once without reloading the
// staff, and a reload that read the staff just before the change does not undo it.
func TestStatusChangesPatchTheSnapshot(t *testing.T) {
	h := newMemoryHarness(t)
	h.agent(1, 601, agent.StatusOnline, 5)
	h.agent(1, 602, agent.StatusOnline, 5)
	h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "all", Target: `agent.status == "online"`}})
	if first := h.open(1, unknown); first.State != session.StateOpen {
		t.Fatalf("first session: %+v", first)
	}
	reads := func() int {
		h.dir.mu.Lock()
		defer h.dir.mu.Unlock()
		return h.dir.staffReads
	}
	before := reads()
	h.setStatus(1, 601, agent.StatusBusy)
	h.setStatus(1, 602, agent.StatusAway)
	if s := h.open(1, unknown); s.State != session.StateQueued {
		t.Fatalf("with everyone busy or away the session must wait: %+v", s)
	}
	h.setStatus(1, 602, agent.StatusOnline)
	wantAgent(t, h.open(1, unknown), 602)
	if n := reads() - before; n != 0 {
		t.Fatalf("status changes reloaded the staff %d times", n)
	}

	// A reload (the snapshot aged out) reads the staff; 602 goes busy while it is under way.
	h.clock.Add(2 * time.Second)
	h.dir.afterStaffRead = func() {
		h.dir.afterStaffRead = nil
		h.dir.update(1, 602, func(st *agent.Staff) { st.Status = agent.StatusBusy })
		if err := h.eng.AgentStatusChanged(h.ctx, 1, 602, agent.StatusBusy, h.clock.Now()); err != nil {
			t.Error(err)
		}
	}
	if s := h.open(1, unknown); s.State != session.StateQueued {
		t.Fatalf("the reload undid the status change that came while it read: %+v", s)
	}
	if n := reads() - before; n != 1 {
		t.Fatalf("want one reload, got %d", n)
	}
}

// racySlots reports the next fail claims as finding the agent full, as when another node's drain
// took the room first.
type racySlots struct {
	Slots
	mu   sync.Mutex
	fail int
}

func (r *racySlots) Claim(ctx context.Context, shopID, agentID, sessionID int64, units, capacity int) (bool, error) {
	r.mu.Lock()
	lose := r.fail > 0
	if lose {
		r.fail--
	}
	r.mu.Unlock()
	if lose {
		return false, nil
	}
	return r.Slots.Claim(ctx, shopID, agentID, sessionID, units, capacity)
}

// TestDrainRetriesARacedClaim: a queued session whose claim raced goes back to the queue, and the
// same drain goes round again for it while room is left, instead of leaving it for the next release.
func TestDrainRetriesARacedClaim(t *testing.T) {
	slots := &racySlots{Slots: NewMemorySlots()}
	h := newHarness(t, slots, NewMemoryQueue())
	h.agent(1, 701, agent.StatusOffline, 2)
	h.publish(1, rules.RuleSet{Default: rules.Rule{Name: "all", Target: `agent.status == "online"`}})
	a, b := h.open(1, unknown), h.open(1, unknown)
	h.dir.update(1, 701, func(st *agent.Staff) { st.Status = agent.StatusOnline })
	h.eng.invalidate(1)
	slots.mu.Lock()
	slots.fail = 1
	slots.mu.Unlock()
	h.tick(time.Second)
	for _, s := range []session.Session{a, b} {
		if got := h.sess.get(s.ID); got.State != session.StateOpen || got.AgentID != 701 {
			t.Fatalf("session %d after one drain: %s with %d", s.ID, got.State, got.AgentID)
		}
	}
	if n := h.load(1, 701); n != 2 {
		t.Fatalf("agent holds %d, want 2", n)
	}
}
