package routing

import (
	"context"
	"fmt"
	"strings"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/rules"
	"github.com/shopdesk/shopdesk/session"
)

// TakeOver is a manager taking a live session for themself: a transfer to the manager, recorded as
// one (cause transfer, assigned_by "transfer", the trace's note saying who took it over and why). It
// differs from Transfer in what it checks: a manager acting in the live view is at work whatever
// their status, so the claim is forced, like a manual assignment (it may exceed the manager's
// capacity; the claim log and the trace's Over say so). note is the manager's reason, may be empty.
func (e *Engine) TakeOver(ctx context.Context, shopID, sessionID, by int64, note string) (*Trace, error) {
	if len(note) > MaxCommentBytes {
		return nil, errorf(session.EINVALID, "the note is %d bytes long; at most %d are allowed", len(note), MaxCommentBytes)
	}
	s, snap, sh, err := e.liveSession(ctx, shopID, sessionID)
	if err != nil {
		return nil, err
	}
	i, ok := snap.byID[by]
	if !ok || !snap.staff[i].Active || snap.staff[i].Role != agent.RoleManager {
		return nil, errorf(session.EFORBIDDEN, "only managers of the shop take sessions over")
	}
	st := &snap.staff[i]
	if s.State == session.StateOpen && s.AgentID == by {
		return nil, errorf(session.EINVALID, "session %d is already yours", sessionID)
	}
	units, err := e.unitsOf(ctx, sh, snap, s)
	if err != nil {
		return nil, err
	}
	prev, hadPrev, err := e.p.Slots.Held(ctx, shopID, sessionID)
	if err != nil {
		return nil, err
	}
	over, err := e.p.Slots.ForceClaim(ctx, shopID, by, sessionID, units, st.Capacity)
	if err != nil {
		return nil, err
	}
	if moved := hadPrev && prev.AgentID != by; moved || !hadPrev {
		if moved {
			sh.adjustLoad(prev.AgentID, -prev.Units)
		}
		sh.adjustLoad(by, units)
	}
	if _, err := e.p.Sessions.AssignTo(ctx, s, by, AssignedByTransfer); err != nil {
		e.undoClaim(ctx, sh, snap, s, by, prev, hadPrev, errorCode(err) != session.ECONFLICT)
		return nil, err
	}
	if _, err := e.p.Queue.Remove(ctx, shopID, sessionID); err != nil {
		return nil, err
	}
	now := e.now()
	sh.mu.Lock()
	sh.lastAssigned[by] = now
	sh.mu.Unlock()
	e.stats.forced.Add(1)
	if hadPrev && prev.AgentID != by {
		defer e.drainFreed(ctx, shopID, prev.AgentID)
	}
	why := fmt.Sprintf("taken over by manager %d (%s)", by, st.DisplayName)
	if note = strings.TrimSpace(note); note != "" {
		why += ": " + note
	}
	tr := &Trace{ShopID: shopID, SessionID: sessionID, At: now, Cause: CauseTransfer, Version: VersionNone, Rule: rules.DefaultRule,
		RuleName: "takeover", Weight: units, Staff: len(snap.staff), Eligible: 1, Outcome: OutcomeAssigned, AgentID: by,
		Over: over, Note: why}
	e.emit(record{trace: tr})
	return tr, nil
}
