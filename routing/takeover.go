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
	st := snap.staff[i]
	if s.State == session.StateOpen && s.AgentID == by {
		return nil, errorf(session.EINVALID, "session %d is already yours", sessionID)
	}
	units, over, now, err := e.forceAssign(ctx, s, snap, sh, st, AssignedByTransfer)
	if err != nil {
		return nil, err
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
