package routing

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/rules"
	"github.com/shopdesk/shopdesk/session"
)

// VersionNone is Trace.Version of decisions no rule set made: transfers and manual assignments.
const VersionNone = -2

// TransferTo is where a transfer goes: one agent, or the best agent of a group (least loaded first).
// Exactly one of the two is set.
type TransferTo struct {
	AgentID int64  `json:"agent_id,omitempty"`
	Group   string `json:"group,omitempty"`
}

// MaxGroupBytes bounds a group name in a transfer.
const MaxGroupBytes = 64

// Transfer moves a live session to another agent through the engine: the target must be an online
// agent of the shop with room for the session's units, and the slot moves from the old agent to the
// new one in one atomic claim. by is the staff member asking: the session's agent or a manager. On
// failure nothing changes and the error says why (ECONFLICT: no one with room; the trace explains).
func (e *Engine) Transfer(ctx context.Context, shopID, sessionID int64, to TransferTo, note string, by int64) (*Trace, error) {
	if (to.AgentID == 0) == (to.Group == "") {
		return nil, errorf(session.EINVALID, "a transfer goes to one agent or to one group")
	}
	if len(note) > MaxCommentBytes {
		return nil, errorf(session.EINVALID, "the note is %d bytes long; at most %d are allowed", len(note), MaxCommentBytes)
	}
	var target string
	if to.Group != "" {
		if len(to.Group) > MaxGroupBytes || strings.ContainsAny(to.Group, "\"\\\n\r\t") {
			return nil, errorf(session.EINVALID, "group %q is not a group name", to.Group)
		}
		target = `"` + to.Group + `" in agent.groups`
	} else {
		target = fmt.Sprintf("agent.id == %d", to.AgentID)
	}
	s, snap, sh, err := e.liveSession(ctx, shopID, sessionID)
	if err != nil {
		return nil, err
	}
	i, ok := snap.byID[by]
	if !ok || !snap.staff[i].Active {
		return nil, errorf(session.EFORBIDDEN, "staff %d may not transfer sessions of this shop", by)
	}
	if snap.staff[i].Role != agent.RoleManager && s.AgentID != by {
		return nil, errorf(session.EFORBIDDEN, "session %d is not assigned to you", sessionID)
	}
	if to.AgentID != 0 {
		if _, ok := snap.byID[to.AgentID]; !ok {
			return nil, errorf(session.ENOTFOUND, "agent %d not found", to.AgentID)
		}
		if to.AgentID == s.AgentID {
			return nil, errorf(session.EINVALID, "session %d is already assigned to agent %d", sessionID, to.AgentID)
		}
	}
	cv, err := e.transferRules(target)
	if err != nil {
		return nil, err
	}
	now := e.now()
	units, err := e.unitsOf(ctx, sh, snap, s)
	if err != nil {
		return nil, err
	}
	var exclude []int64
	if s.AgentID != 0 {
		exclude = []int64{s.AgentID}
	}
	env := &rules.Session{Kind: string(s.Kind)}
	// Loads as Slots has them now, like the statuses: the node's load cache may still count units a
	// drain is about to take or has just given back.
	d, err := e.decide(ctx, sh, snap, cv, env, decideOpts{cause: CauseTransfer, exclude: exclude, session: s, weight: units, fresh: true, now: now})
	if err != nil {
		return nil, err
	}
	d.tr.Note = note
	agentID, err := e.commit(ctx, sh, d, s, AssignedByTransfer, now)
	if err != nil {
		return nil, err
	}
	if agentID == 0 {
		d.tr.Outcome = OutcomeNone
		e.emit(record{trace: d.tr})
		return d.tr, errorf(session.ECONFLICT, "no online agent with room for %d units among %s", units, describeTarget(to))
	}
	if _, err := e.p.Queue.Remove(ctx, shopID, sessionID); err != nil {
		return nil, err
	}
	e.emit(record{trace: d.tr})
	e.drainFreed(ctx, shopID, s.AgentID)
	return d.tr, nil
}

// drainFreed serves the queue after a hand-over freed capacity at agentID (0: none was freed). A
// failure is logged only: the hand-over itself is done, and Tick drains again within a second.
func (e *Engine) drainFreed(ctx context.Context, shopID, agentID int64) {
	if agentID == 0 || e.requestDrain(shopID) {
		return
	}
	if _, err := e.drain(ctx, shopID, e.now(), false); err != nil {
		e.cfg.Logger.Warn("drain after a hand-over", "shop", shopID, "err", err)
	}
}

func describeTarget(to TransferTo) string {
	if to.Group != "" {
		return "group " + to.Group
	}
	return fmt.Sprintf("agent %d", to.AgentID)
}

// transferRules compiles (once) the one-rule set of a transfer target.
func (e *Engine) transferRules(target string) (*compiled, error) {
	e.mu.Lock()
	cv := e.transfers[target]
	e.mu.Unlock()
	if cv != nil {
		return cv, nil
	}
	cv, err := compileSet(VersionNone, rules.RuleSet{Default: rules.Rule{Name: "transfer", Target: target}})
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if len(e.transfers) > 1000 {
		e.transfers = map[string]*compiled{}
	}
	e.transfers[target] = cv
	e.mu.Unlock()
	return cv, nil
}

// liveSession loads a live session of the shop and a fresh snapshot of its staff.
func (e *Engine) liveSession(ctx context.Context, shopID, sessionID int64) (*session.Session, *snapshot, *shopState, error) {
	s, err := e.p.Sessions.Session(ctx, sessionID)
	if err != nil {
		return nil, nil, nil, err
	}
	if s.ShopID != shopID {
		return nil, nil, nil, errorf(session.ENOTFOUND, "session %d not found", sessionID)
	}
	if s.State == session.StateClosed {
		return nil, nil, nil, errorf(session.ECONFLICT, "session %d is closed", sessionID)
	}
	// A person acts on what they see now: no cached statuses.
	e.invalidate(shopID)
	sh := e.shop(shopID)
	snap, err := e.snapshot(ctx, sh, e.now())
	if err != nil {
		return nil, nil, nil, err
	}
	return s, snap, sh, nil
}

// unitsOf is the capacity units the session holds, or would take under the rules in force.
func (e *Engine) unitsOf(ctx context.Context, sh *shopState, snap *snapshot, s *session.Session) (int, error) {
	h, held, err := e.p.Slots.Held(ctx, s.ShopID, s.ID)
	if err != nil {
		return 0, err
	}
	if held {
		return h.Units, nil
	}
	now := e.now()
	cv, _, err := e.activeRules(ctx, sh, now)
	if err != nil {
		return 0, err
	}
	env, err := e.sessionEnv(ctx, sh, snap, s, now, cv)
	if err != nil {
		return 0, err
	}
	idx, _, _ := cv.resolve(env, now.Sub(s.OpenedAt).Seconds())
	units, err := cv.set.Rule(idx).Weight(env)
	if err != nil {
		return 1, nil
	}
	return units, nil
}

// Assign gives a live session to an agent by a manager's hand (by is the manager's staff id). The claim
// is forced: it may exceed the agent's capacity, and the claim log and the trace record it. The agent
// must be an active agent of the shop, online or busy (a manager may hand work to a busy agent, never
// to one who is away or offline).
func (e *Engine) Assign(ctx context.Context, shopID, sessionID, agentID, by int64) (*Trace, error) {
	s, snap, sh, err := e.liveSession(ctx, shopID, sessionID)
	if err != nil {
		return nil, err
	}
	if i, ok := snap.byID[by]; !ok || !snap.staff[i].Active || snap.staff[i].Role != agent.RoleManager {
		return nil, errorf(session.EFORBIDDEN, "only managers of the shop assign sessions by hand")
	}
	i, ok := snap.byID[agentID]
	if !ok {
		return nil, errorf(session.ENOTFOUND, "agent %d not found", agentID)
	}
	st := snap.staff[i]
	if r := snap.reason[i]; r >= 0 && r != fBusy && r != fNoCapacity {
		return nil, errorf(session.ECONFLICT, "agent %d is %s: sessions go to agents who are online or busy", agentID, filterOrder[r])
	}
	units, over, now, err := e.forceAssign(ctx, s, snap, sh, st, AssignedByManual)
	if err != nil {
		return nil, err
	}
	tr := &Trace{ShopID: shopID, SessionID: sessionID, At: now, Cause: CauseManual, Version: VersionNone, Rule: rules.DefaultRule,
		RuleName: "manual", Weight: units, Staff: len(snap.staff), Eligible: 1, Outcome: OutcomeAssigned, AgentID: agentID,
		Over: over, Note: fmt.Sprintf("assigned by manager %d", by)}
	e.emit(record{trace: tr})
	return tr, nil
}

// forceAssign gives the live session s to st whatever st's load (a manager's hand: the claim is
// forced, and over says it went above capacity), out of the queue, and serves the queue from what
// its previous agent freed. It returns the session's units and when it was assigned.
func (e *Engine) forceAssign(ctx context.Context, s *session.Session, snap *snapshot, sh *shopState, st *agent.Staff, assignedBy string) (units int, over bool, now time.Time, err error) {
	if units, err = e.unitsOf(ctx, sh, snap, s); err != nil {
		return 0, false, now, err
	}
	prev, hadPrev, err := e.p.Slots.Held(ctx, s.ShopID, s.ID)
	if err != nil {
		return 0, false, now, err
	}
	if over, err = e.p.Slots.ForceClaim(ctx, s.ShopID, st.ID, s.ID, units, st.Capacity); err != nil {
		return 0, false, now, err
	}
	if moved := hadPrev && prev.AgentID != st.ID; moved || !hadPrev {
		if moved {
			sh.adjustLoad(prev.AgentID, -prev.Units)
		}
		sh.adjustLoad(st.ID, units)
	}
	if _, err := e.p.Sessions.AssignTo(ctx, s, st.ID, assignedBy); err != nil {
		e.undoClaim(ctx, sh, snap, s, st.ID, prev, hadPrev, errorCode(err) != session.ECONFLICT)
		return 0, false, now, err
	}
	if _, err := e.p.Queue.Remove(ctx, s.ShopID, s.ID); err != nil {
		return 0, false, now, err
	}
	now = e.now()
	sh.mu.Lock()
	sh.lastAssigned[st.ID] = now
	sh.mu.Unlock()
	e.stats.forced.Add(1)
	if hadPrev && prev.AgentID != st.ID {
		e.drainFreed(ctx, s.ShopID, prev.AgentID)
	}
	return units, over, now, nil
}
