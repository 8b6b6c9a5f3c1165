package routing

import (
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/migrations/testdb"
	"github.com/shopdesk/shopdesk/rules"
	"github.com/shopdesk/shopdesk/session"
)

// propertyRules is a rule set whose targets would happily take anyone ("true" in the default): the
// engine, not the rules, must keep out offline, busy, away, full and foreign agents.
func propertyRules() rules.RuleSet {
	return rules.RuleSet{
		Rules: []rules.Rule{
			{Name: "pre", When: `session.kind == "presale"`, Target: `"a" in agent.groups`,
				Weight: `session.product.category == "big" ? 2 : 1`, EscalateAfterSeconds: 30, Priority: 2},
			{Name: "after", When: `session.kind == "aftersale"`, Target: `"b" in agent.groups || "vip" in agent.skills`,
				Prefer: []rules.Preference{rules.PreferLongestIdle, rules.PreferRoundRobin}, NoAnswerSeconds: 40},
			{Name: "scored", When: `session.product.category == "tv"`, Target: `agent.load < agent.capacity`,
				Prefer: []rules.Preference{rules.PreferScore}, Score: `float(agent.capacity - agent.load)`},
		},
		Default: rules.Rule{Name: "any", Target: "true",
			Prefer: []rules.Preference{rules.PreferWeightedShare, rules.PreferLastAgentFirst}},
	}
}

func TestPropertyInvariants(t *testing.T) {
	backends := map[string]func(t *testing.T) (Slots, Queue){
		"memory": func(t *testing.T) (Slots, Queue) { return NewMemorySlots(), NewMemoryQueue() },
		"redis": func(t *testing.T) (Slots, Queue) {
			rdb, prefix := testdb.Redis(t)
			return NewRedisSlots(rdb, prefix), NewRedisQueue(rdb, prefix)
		},
	}
	seeds := map[string][]int64{"memory": {1, 2, 3, 4, 5, 6}, "redis": {7, 8}}
	for name, backend := range backends {
		for _, seed := range seeds[name] {
			t.Run(fmt.Sprintf("%s/seed%d", name, seed), func(t *testing.T) {
				slots, queue := backend(t)
				runProperty(t, newHarness(t, slots, queue), seed, 400)
			})
		}
	}
}

func runProperty(t *testing.T, h *harness, seed int64, ops int) {
	rng := rand.New(rand.NewSource(seed))
	statuses := []agent.Status{agent.StatusOnline, agent.StatusOnline, agent.StatusBusy, agent.StatusAway, agent.StatusOffline}
	agents := map[int64][]int64{}
	for shop, ids := range map[int64][]int64{1: {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 2: {101, 102, 103, 104, 105, 106}} {
		for _, id := range ids {
			var groups, skills []string
			if rng.Intn(2) == 0 {
				groups = append(groups, "a")
			}
			if rng.Intn(2) == 0 {
				groups = append(groups, "b")
			}
			if rng.Intn(4) == 0 {
				skills = append(skills, "vip")
			}
			h.dir.add(agent.Staff{ID: id, ShopID: shop, Status: statuses[rng.Intn(len(statuses))], Capacity: rng.Intn(4),
				Groups: groups, Skills: skills})
			agents[shop] = append(agents[shop], id)
		}
		h.dir.add(agent.Staff{ID: 50 + 100*(shop-1), ShopID: shop, Role: agent.RoleManager, Status: agent.StatusOnline})
		h.publish(shop, propertyRules())
	}
	h.dir.stray = []agent.Staff{{ID: 999, ShopID: 3, Status: agent.StatusOnline, Capacity: 100, Groups: []string{"a", "b"}, Active: true}}

	var mu sync.Mutex
	var violations []string
	h.sess.check = func(s *session.Session, agentID int64, by string) {
		st, ok := h.dir.get(s.ShopID, agentID)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case !ok:
			violations = append(violations, fmt.Sprintf("session %d of shop %d given to agent %d of another shop", s.ID, s.ShopID, agentID))
		case by != AssignedByManual && st.Status != agent.StatusOnline:
			violations = append(violations, fmt.Sprintf("session %d given to %s agent %d (%s)", s.ID, st.Status, agentID, by))
		}
	}

	live := map[int64]bool{}      // session ids not closed
	convLive := map[int64]int64{} // conversation → live session
	contexts := []session.EntryContext{
		{ProductID: "p", Category: "big"}, {ProductID: "p", Category: "phone"}, {ProductID: "p", Category: "tv"},
		{OrderID: "o"}, {},
	}
	pickLive := func() (int64, bool) {
		for id := range live {
			return id, true
		}
		return 0, false
	}
	for op := 0; op < ops; op++ {
		shop := int64(rng.Intn(2) + 1)
		switch r := rng.Intn(100); {
		case r < 35:
			conv := shop*100 + int64(rng.Intn(20))
			if convLive[conv] != 0 {
				continue
			}
			s := h.openIn(shop, conv, contexts[rng.Intn(len(contexts))])
			live[s.ID], convLive[conv] = true, s.ID
		case r < 55:
			id, ok := pickLive()
			if !ok {
				continue
			}
			s := h.sess.get(id)
			h.close(id)
			delete(live, id)
			delete(convLive, s.ConversationID)
		case r < 70:
			id := agents[shop][rng.Intn(len(agents[shop]))]
			h.setStatus(shop, id, statuses[rng.Intn(len(statuses))])
		case r < 78:
			id := agents[shop][rng.Intn(len(agents[shop]))]
			h.dir.update(shop, id, func(st *agent.Staff) { st.Capacity = rng.Intn(4) })
			if err := h.eng.AgentChanged(h.ctx, shop, id); err != nil {
				t.Fatal(err)
			}
		case r < 90:
			h.tick(time.Duration(rng.Intn(50)+1) * time.Second)
		case r < 95:
			id, ok := pickLive()
			if !ok {
				continue
			}
			s := h.sess.get(id)
			to := TransferTo{Group: []string{"a", "b"}[rng.Intn(2)]}
			if rng.Intn(2) == 0 {
				to = TransferTo{AgentID: agents[s.ShopID][rng.Intn(len(agents[s.ShopID]))]}
			}
			if _, err := h.eng.Transfer(h.ctx, s.ShopID, id, to, "", 50+100*(s.ShopID-1)); err != nil {
				if c := session.ErrorCode(err); c != session.ECONFLICT && c != session.EINVALID {
					t.Fatalf("transfer: %v", err)
				}
			}
		default:
			if id, ok := pickLive(); ok {
				h.sess.respond(id)
			}
		}
		checkSlots(t, h, live)
	}
	mu.Lock()
	if len(violations) > 0 {
		t.Fatalf("%d violations, first: %s", len(violations), violations[0])
	}
	mu.Unlock()

	// Nothing waits forever: with everyone online and room to spare, the queues drain.
	for shop, ids := range agents {
		for _, id := range ids {
			h.dir.update(shop, id, func(st *agent.Staff) { st.Capacity = 100; st.Groups = []string{"a", "b"} })
			h.setStatus(shop, id, agent.StatusOnline)
		}
	}
	h.tick(time.Minute)
	h.tick(time.Minute)
	for shop := range agents {
		if n, _ := h.queue.Len(h.ctx, shop); n != 0 {
			t.Fatalf("shop %d: %d sessions still queued", shop, n)
		}
	}
	for id := range live {
		if s := h.sess.get(id); s.State != session.StateOpen || s.AgentID == 0 {
			t.Fatalf("session %+v never assigned", s)
		}
	}
	checkSlots(t, h, live)
	for shop := range agents {
		log, err := h.slots.ClaimLog(h.ctx, shop)
		if err != nil {
			t.Fatal(err)
		}
		r := ReplayClaims(log)
		if r.OverCapacity != 0 || r.Mismatches != 0 || r.Forced != 0 || r.Claims == 0 {
			t.Fatalf("shop %d replay %+v", shop, r)
		}
	}
	st := h.eng.Stats()
	t.Logf("stats %+v", st)
}

// checkSlots checks that every open session holds its agent's slot and nothing else holds one.
func checkSlots(t *testing.T, h *harness, live map[int64]bool) {
	t.Helper()
	h.sess.mu.Lock()
	all := make([]session.Session, 0, len(h.sess.byID))
	for _, s := range h.sess.byID {
		all = append(all, *s)
	}
	h.sess.mu.Unlock()
	for _, s := range all {
		hd, held, err := h.slots.Held(h.ctx, s.ShopID, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case s.State == session.StateOpen && (!held || hd.AgentID != s.AgentID):
			t.Fatalf("open session %d of agent %d holds %+v (%v)", s.ID, s.AgentID, hd, held)
		case s.State != session.StateOpen && held:
			t.Fatalf("%s session %d holds %+v", s.State, s.ID, hd)
		}
	}
}
