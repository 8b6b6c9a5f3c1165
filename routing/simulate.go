package routing

import (
	"context"
	"time"

	"github.com/shopdesk/shopdesk/rules"
	"github.com/shopdesk/shopdesk/session"
)

// SimulateRequest says which rules to try on which session.
type SimulateRequest struct {
	// RuleSet, when set, is the rule set simulated (a draft being edited, unsaved). Otherwise Draft
	// selects the shop's saved draft; otherwise Version a saved version; Version 0 means the version
	// in force now (rules.DefaultRuleSet itself can be passed as RuleSet).
	RuleSet *rules.RuleSet
	Draft   bool
	Version int
	// Session is the sample session as expressions see it.
	Session rules.Session
	// SessionID, when set, takes the sample from a real session of the shop instead: its context, its
	// buyer, its first message and the buyer's last agent, as a live decision would see them (Session
	// and LastAgentID are then ignored).
	SessionID int64
	// LastAgentID is the buyer's last agent, 0 for none.
	LastAgentID int64
	// Waited simulates a session that has waited that long (escalations).
	Waited time.Duration
}

// Simulate evaluates a rule set for a sample session against the shop's live agents (statuses, loads)
// and returns the agent it would choose with the full per-agent trace. It changes nothing: no claim,
// no queue, no assignment, no stored trace, no routing memory.
func (e *Engine) Simulate(ctx context.Context, shopID int64, req SimulateRequest) (*Trace, error) {
	now := e.now()
	sh := e.shop(shopID)
	var cv *compiled
	var err error
	switch {
	case req.RuleSet != nil:
		cv, err = compileSet(VersionDraft, *req.RuleSet)
	case req.Draft:
		var d *Draft
		if d, err = e.p.Store.Draft(ctx, shopID); err == nil {
			cv, err = compileSet(VersionDraft, d.RuleSet)
		}
	case req.Version > 0:
		cv, err = e.version(ctx, shopID, req.Version)
	default:
		cv, _, err = e.activeRules(ctx, sh, now)
	}
	if err != nil {
		return nil, err
	}
	snap, err := e.snapshot(ctx, sh, now)
	if err != nil {
		return nil, err
	}
	env, last := &req.Session, req.LastAgentID
	if req.SessionID != 0 {
		s, err := e.p.Sessions.Session(ctx, req.SessionID)
		if err != nil {
			return nil, err
		}
		if s.ShopID != shopID {
			return nil, errorf(session.ENOTFOUND, "session %d not found", req.SessionID)
		}
		if env, err = e.sessionEnv(ctx, sh, snap, s, now, cv); err != nil {
			return nil, err
		}
		if last, err = e.lastAgentOf(ctx, s); err != nil {
			return nil, err
		}
	}
	d, err := e.decide(ctx, sh, snap, cv, env, decideOpts{cause: CauseSimulate, waited: req.Waited, lastAgent: last, full: true, now: now})
	if err != nil {
		return nil, err
	}
	d.tr.Outcome = OutcomeNone
	if len(d.cands) > 0 {
		d.tr.Outcome, d.tr.AgentID = OutcomeChosen, snap.staff[d.cands[0].i].ID
	}
	return d.tr, nil
}

// shadowRun evaluates the shop's shadow draft, if any, for the same session with the loads the live
// decision d saw (the node's load cache, before d's claim), claiming nothing. A failing shadow run is logged and never
// affects the live one.
func (e *Engine) shadowRun(ctx context.Context, sh *shopState, snap *snapshot, rs *shopRules, env *rules.Session, d *decision, s *session.Session, o routeOpts) *decision {
	if rs == nil || rs.shadow == nil {
		return nil
	}
	sd, err := e.decide(ctx, sh, snap, rs.shadow, env, decideOpts{cause: o.cause, exclude: o.exclude, waited: o.waited,
		session: s, now: o.now})
	if err != nil {
		e.cfg.Logger.Warn("shadow routing", "shop", sh.id, "session", s.ID, "err", err)
		return nil
	}
	return sd
}

// shadowResult compares the live outcome of d with the shadow decision's first choice.
func shadowResult(d, shadow *decision) *ShadowResult {
	if shadow == nil {
		return nil
	}
	r := &ShadowResult{ShopID: d.tr.ShopID, SessionID: d.tr.SessionID, At: d.tr.At, LiveVersion: d.tr.Version,
		LiveRule: d.tr.RuleName, LiveAgent: d.tr.AgentID, ShadowRule: shadow.tr.RuleName}
	if len(shadow.cands) > 0 {
		r.ShadowAgent = shadow.snap.staff[shadow.cands[0].i].ID
	}
	r.Differs = r.LiveAgent != r.ShadowAgent
	return r
}
