package routing

import (
	"context"

	"github.com/shopdesk/shopdesk/session"
)

// SessionPort adapts a *session.Service to the engine's Sessions port: sessions are read from its
// Store, assigned with its AssignTo (which tells both sides), and the first message is read from its
// Log at the session's FirstSeq.
type SessionPort struct {
	Service *session.Service
}

// Session returns the session with id.
func (p SessionPort) Session(ctx context.Context, id int64) (*session.Session, error) {
	return p.Service.Store.Session(ctx, id)
}

// Sessions lists sessions by filter, newest first.
func (p SessionPort) Sessions(ctx context.Context, f session.SessionFilter) ([]session.Session, error) {
	return p.Service.Store.Sessions(ctx, f)
}

// AssignTo gives the session to the agent through session.Service.AssignFrom.
func (p SessionPort) AssignTo(ctx context.Context, s *session.Session, agentID int64, by string) (*session.Session, error) {
	return p.Service.AssignFrom(ctx, s, agentID, by)
}

// FirstMessage returns the text of the message that opened the session, "" when it is not text.
func (p SessionPort) FirstMessage(ctx context.Context, s *session.Session) (string, error) {
	if s.FirstSeq <= 0 {
		return "", nil
	}
	msgs, err := p.Service.Log.After(ctx, s.ConversationID, s.FirstSeq-1, 1)
	if err != nil || len(msgs) == 0 || msgs[0].Seq != s.FirstSeq {
		return "", err
	}
	return msgs[0].Body.Text, nil
}

// maxListed bounds how many sessions of one state one shop's periodic work reads: far above any
// shop's live sessions, it only stops a runaway.
const maxListed = 200_000

// allSessions lists every session matching f (f.Limit and f.BeforeID are ignored), newest first,
// page by page.
func (e *Engine) allSessions(ctx context.Context, f session.SessionFilter) ([]session.Session, error) {
	const page = 500
	f.Limit, f.BeforeID = page, 0
	var out []session.Session
	for len(out) < maxListed {
		list, err := e.p.Sessions.Sessions(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, list...)
		if len(list) < page {
			break
		}
		f.BeforeID = list[len(list)-1].ID
	}
	return out, nil
}
