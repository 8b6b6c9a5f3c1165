package routing

import (
	"context"
	"fmt"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/shopdesk/shopdesk/rules"
	"github.com/shopdesk/shopdesk/session"
)

// maxFirstMessage bounds the first message an expression sees: evaluation cost grows with the data.
const maxFirstMessage = 500

// decision is one evaluation of a session against one compiled rule set: the rule that took it, its
// weight, and the eligible agents in preference order. Nothing is claimed yet.
type decision struct {
	cv     *compiled
	snap   *snapshot
	env    *rules.Session
	idx    int
	rule   *rules.CompiledRule
	weight int
	cands  []candidate
	keys   []float64
	nkeys  int
	tr     *Trace
}

// keysOf returns c's sort keys.
func (d *decision) keysOf(c candidate) []float64 {
	at := int(c.k) * d.nkeys
	return d.keys[at : at+d.nkeys : at+d.nkeys]
}

// candidate is one eligible agent; small, as a decision makes one per agent of its pool.
type candidate struct {
	i    int32 // index in snap.staff
	load int32
	idle int32
	// k is the candidate's row in the decision's keys (one key per preference).
	k     int32
	score float64
}

type decideOpts struct {
	cause   string
	exclude []int64
	waited  time.Duration
	// lastAgent is the buyer's last agent when known (Simulate); otherwise it is looked up when the
	// rule needs it and session is set.
	lastAgent int64
	session   *session.Session
	// weight, when positive, replaces the rule's weight (a transfer keeps the session's units).
	weight int
	// full asks for every agent's verdict in the trace (Simulate).
	full bool
	// fresh reads the loads from Slots instead of the node's load cache.
	fresh bool
	now   time.Time
}

// sessionEnv fills what expressions see of s: only the costly fields (buyer, first message, queue
// length) that some expression of the sets reads.
func (e *Engine) sessionEnv(ctx context.Context, sh *shopState, snap *snapshot, s *session.Session, now time.Time, sets ...*compiled) (*rules.Session, error) {
	kind := string(s.Kind)
	if kind == "" {
		kind = rules.KindUnknown
	}
	c := s.Context
	env := &rules.Session{Kind: kind, Product: rules.Product{ID: c.ProductID, Name: c.ProductName, Category: c.Category},
		Order: rules.Order{ID: c.OrderID, Status: c.OrderStatus}, EntryPage: c.Page, Language: c.Language,
		Time: rules.NewClock(now, snap.loc)}
	env.InBusinessHours = snap.hours.contains(env.Time)
	var buyer, first, qlen bool
	for _, cv := range sets {
		if cv != nil {
			buyer, first, qlen = buyer || cv.buyer, first || cv.firstMessage, qlen || cv.queueLength
		}
	}
	if buyer && s.BuyerID != 0 {
		b, err := e.p.Directory.Buyer(ctx, s.ShopID, s.BuyerID)
		switch {
		case err == nil:
			env.Buyer = rules.Buyer{Tier: b.Tier, Tags: b.Tags, Anonymous: b.Anonymous}
		case errorCode(err) != session.ENOTFOUND:
			return nil, err
		}
	}
	if first {
		text, err := e.p.Sessions.FirstMessage(ctx, s)
		if err != nil {
			return nil, err
		}
		if len(text) > maxFirstMessage {
			text = text[:maxFirstMessage]
			for !utf8.ValidString(text) {
				text = text[:len(text)-1]
			}
		}
		env.FirstMessage = text
	}
	if qlen {
		n, err := e.queueLen(ctx, sh, now)
		if err != nil {
			return nil, err
		}
		env.QueueLength = n
	}
	return env, nil
}

// queueLen is the shop's queue length, read at most once per CacheTTL.
func (e *Engine) queueLen(ctx context.Context, sh *shopState, now time.Time) (int, error) {
	sh.mu.Lock()
	if fresh(sh.queueLenAt, now, e.cfg.CacheTTL) {
		n := sh.queueLen
		sh.mu.Unlock()
		return n, nil
	}
	sh.mu.Unlock()
	n, err := e.p.Queue.Len(ctx, sh.id)
	if err != nil {
		return 0, err
	}
	sh.mu.Lock()
	sh.queueLen, sh.queueLenAt = n, now
	sh.mu.Unlock()
	return n, nil
}

// lastAgentOf is the agent of the conversation's previous session that had one: the buyer's last
// agent in this shop (a conversation is one buyer with one shop).
func (e *Engine) lastAgentOf(ctx context.Context, s *session.Session) (int64, error) {
	prev, err := e.p.Sessions.Sessions(ctx, session.SessionFilter{ShopID: s.ShopID, ConversationID: s.ConversationID, Limit: 5})
	if err != nil {
		return 0, err
	}
	for _, p := range prev {
		if p.ID != s.ID && p.AgentID != 0 {
			return p.AgentID, nil
		}
	}
	return 0, nil
}

// decide evaluates the session env against cv over the snapshot's agents: it resolves the rule
// (following escalations for the time waited), applies the cheap filters, evaluates the target (or
// the group index) and the score on what is left, and orders the eligible agents by the rule's
// preferences, ties broken by agent id.
func (e *Engine) decide(ctx context.Context, sh *shopState, snap *snapshot, cv *compiled, env *rules.Session, o decideOpts) (*decision, error) {
	tr := &Trace{ShopID: snap.shopID, At: o.now, Cause: o.cause, Version: cv.number, Staff: len(snap.staff)}
	if o.session != nil {
		tr.SessionID = o.session.ID
	}
	var errs []error
	idx, steps, werrs := cv.resolve(env, o.waited.Seconds())
	errs = append(errs, werrs...)
	rule := cv.set.Rule(idx)
	facts := cv.facts(idx)
	tr.Rule, tr.RuleName, tr.Escalations, tr.Prefer = idx, rule.Name(), steps, rule.Prefer()
	weight, err := rule.Weight(env)
	if err != nil {
		errs = append(errs, err)
		weight = 1
	}
	if o.weight > 0 {
		weight = o.weight
	}
	tr.Weight = weight
	d := &decision{cv: cv, snap: snap, env: env, idx: idx, rule: rule, weight: weight, tr: tr}

	lastAgent := o.lastAgent
	if facts.lastAgent && lastAgent == 0 && o.session != nil {
		if lastAgent, err = e.lastAgentOf(ctx, o.session); err != nil {
			return nil, err
		}
	}

	// The pool: the snapshot's online agents, or those of the group a plain group target names.
	removed := snap.removed
	pool, poolIDs := snap.online, snap.onlineIDs
	if facts.group != "" {
		pool, poolIDs = snap.byGroup[facts.group], snap.groupIDs[facts.group]
		removed[fNotInGroup] = len(snap.online) - len(pool)
	}
	var loads []int
	var allLoads map[int64]int
	if o.full {
		// Every agent's load shows in the full trace.
		if allLoads, err = e.p.Slots.Load(ctx, snap.shopID, snap.ids); err != nil {
			return nil, err
		}
		loads = make([]int, len(poolIDs))
		for k, id := range poolIDs {
			loads[k] = allLoads[id]
		}
	} else if loads, err = e.loadsOf(ctx, sh, poolIDs, o.fresh, o.now); err != nil {
		return nil, err
	}

	var idle []int
	if facts.idle {
		idle = make([]int, len(pool))
		sh.mu.Lock()
		for k, i := range pool {
			since, ok := sh.lastAssigned[snap.staff[i].ID]
			if !ok {
				since = e.started
			}
			idle[k] = int(max(0, o.now.Sub(since)/time.Second))
		}
		sh.mu.Unlock()
	}

	var verdict []AgentTrace
	if o.full {
		verdict = make([]AgentTrace, len(snap.staff))
		for i := range snap.staff {
			st := snap.staff[i]
			verdict[i] = AgentTrace{AgentID: st.ID, Name: st.DisplayName, Status: string(st.Status), Load: allLoads[st.ID],
				Capacity: st.Capacity, Groups: st.Groups}
			if r := snap.reason[i]; r >= 0 {
				verdict[i].Removed = filterOrder[r]
			} else if facts.group != "" && !contains(st.Groups, facts.group) {
				verdict[i].Removed = FilterNotInGroup
			}
		}
	}
	reject := func(i int, f filterID, err error) {
		removed[f]++
		if verdict != nil {
			verdict[i].Removed = filterOrder[f]
			if err != nil {
				verdict[i].Error = err.Error()
			}
		}
	}

	prefs := rule.Prefer()
	cands := make([]candidate, 0, len(pool))
	// One agent environment for the whole decision, filled only when an expression reads it: a fresh
	// one per candidate would escape to the heap each time.
	needEnv := facts.group == "" || rule.HasScore()
	var ag *rules.Agent
	if needEnv {
		ag = new(rules.Agent)
	}
	for k, i := range pool {
		st := snap.staff[i]
		load := loads[k]
		if st.Capacity-load < weight {
			reject(i, fFull, nil)
			continue
		}
		if containsID(o.exclude, st.ID) {
			reject(i, fExcluded, nil)
			continue
		}
		c := candidate{i: int32(i), load: int32(load)}
		if idle != nil {
			c.idle = int32(idle[k])
		}
		if needEnv {
			*ag = rules.Agent{ID: st.ID, Status: string(st.Status), Load: load, Capacity: st.Capacity, Groups: st.Groups,
				Skills: st.Skills, IdleSeconds: int(c.idle), LastAgent: st.ID == lastAgent, OnDuty: env.InBusinessHours}
		}
		if facts.group == "" {
			ok, err := rule.Target(env, ag)
			if err != nil {
				errs = append(errs, err)
				reject(i, fRuntimeError, err)
				continue
			}
			if !ok {
				reject(i, fTargetFalse, nil)
				continue
			}
		}
		if rule.HasScore() {
			if c.score, err = rule.Score(env, ag); err != nil {
				errs = append(errs, err)
				reject(i, fRuntimeError, err)
				continue
			}
		}
		cands = append(cands, c)
	}

	// Sort keys, lower first, one per preference; the routing memory is read under the shop's lock.
	keys := make([]float64, len(cands)*len(prefs))
	sh.mu.Lock()
	rrLast := sh.rr[[2]int{cv.number, idx}]
	for c := range cands {
		st := snap.staff[cands[c].i]
		k := keys[c*len(prefs) : (c+1)*len(prefs) : (c+1)*len(prefs)]
		for j, p := range prefs {
			switch p {
			case rules.PreferLeastLoadRatio:
				k[j] = float64(cands[c].load) / float64(st.Capacity)
			case rules.PreferLongestIdle:
				k[j] = -float64(cands[c].idle)
			case rules.PreferRoundRobin:
				m := snap.maxID + 1
				k[j] = float64(((st.ID-rrLast-1)%m + m) % m)
			case rules.PreferLastAgentFirst:
				if st.ID != lastAgent || lastAgent == 0 {
					k[j] = 1
				}
			case rules.PreferWeightedShare:
				k[j] = float64(sh.assigned[st.ID]) / float64(st.Capacity)
			case rules.PreferScore:
				k[j] = -cands[c].score
			}
		}
		cands[c].k = int32(c)
	}
	sh.mu.Unlock()
	d.keys, d.nkeys = keys, len(prefs)
	sort.Slice(cands, func(a, b int) bool {
		ka, kb := d.keysOf(cands[a]), d.keysOf(cands[b])
		for j := range ka {
			if ka[j] != kb[j] {
				return ka[j] < kb[j]
			}
		}
		return snap.staff[cands[a].i].ID < snap.staff[cands[b].i].ID
	})
	d.cands = cands

	for f := filterID(0); f < nFilters; f++ {
		if removed[f] > 0 {
			tr.Filters = append(tr.Filters, FilterCount{Filter: filterOrder[f], Removed: removed[f]})
		}
	}
	tr.Eligible = len(cands)
	for c := 0; c < len(cands) && c < 5; c++ {
		st := snap.staff[cands[c].i]
		tr.Top = append(tr.Top, CandidateTrace{AgentID: st.ID, Load: int(cands[c].load), Capacity: st.Capacity, Keys: d.keysOf(cands[c])})
	}
	if len(cands) >= 2 && equalKeys(d.keysOf(cands[0]), d.keysOf(cands[1])) {
		tr.TieBreak = fmt.Sprintf("agent id: %d before %d", snap.staff[cands[0].i].ID, snap.staff[cands[1].i].ID)
	}
	if len(errs) > 0 {
		e.stats.ruleErrors.Add(int64(len(errs)))
		tr.ErrorCount = len(errs)
		for _, err := range errs[:min(5, len(errs))] {
			tr.Errors = append(tr.Errors, err.Error())
		}
	}
	if verdict != nil {
		for c := range cands {
			verdict[cands[c].i].Keys = d.keysOf(cands[c])
			verdict[cands[c].i].Rank = c + 1
		}
		tr.Agents = verdict
	}
	return d, nil
}

func equalKeys(a, b []float64) bool {
	for j := range a {
		if a[j] != b[j] {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsID(list []int64, id int64) bool {
	for _, x := range list {
		if x == id {
			return true
		}
	}
	return false
}
