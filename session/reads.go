package session

import "context"

// readsSessions bounds how many of a conversation's latest sessions Reads looks through for the
// agents who served it.
const readsSessions = 50

// Reads is how far each side of a conversation has read: what a device needs to show read receipts
// after a reload, before any `read` event arrives.
type Reads struct {
	ConversationID int64 `json:"conversation_id"`
	// Buyer is the buyer's read seq.
	Buyer int64 `json:"buyer"`
	// Staff is the highest read seq of the agents of the conversation's latest sessions (a transfer
	// hands the reading to the next agent; the buyer sees their messages read by whoever read last).
	Staff int64 `json:"staff"`
}

// Reads returns both sides' read positions in a conversation the caller may read. It reads the
// counters with a read at seq 0, which by the counters' own rule changes nothing.
func (s *Service) Reads(ctx context.Context, c Caller, convID int64) (Reads, error) {
	conv, err := s.access(ctx, c, convID)
	if err != nil {
		return Reads{}, err
	}
	out := Reads{ConversationID: convID}
	b, err := s.Unread.Read(ctx, BuyerParty(conv.BuyerID).Key(), convID, 0)
	if err != nil {
		return Reads{}, err
	}
	out.Buyer = b.ReadSeq
	list, err := s.Store.Sessions(ctx, SessionFilter{ShopID: conv.ShopID, ConversationID: convID, Limit: readsSessions})
	if err != nil {
		return Reads{}, err
	}
	seen := map[int64]bool{}
	for _, ss := range list {
		if ss.AgentID == 0 || seen[ss.AgentID] {
			continue
		}
		seen[ss.AgentID] = true
		u, err := s.Unread.Read(ctx, StaffParty(ss.AgentID).Key(), convID, 0)
		if err != nil {
			return Reads{}, err
		}
		out.Staff = max(out.Staff, u.ReadSeq)
	}
	return out, nil
}
