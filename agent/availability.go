package agent

import "context"

// Available reports whether anyone of the shop is at work to answer a buyer: an active staff member
// who is online or busy (busy keeps serving and will take the queue up when free). When no one is,
// the widget invites the buyer to leave a message, which waits in the queue for the next agent.
func (s *Service) Available(ctx context.Context, shopID int64) (bool, error) {
	staff, err := s.Store.StaffOf(ctx, shopID)
	if err != nil {
		return false, err
	}
	for _, st := range staff {
		if st.Active && (st.Status == StatusOnline || st.Status == StatusBusy) {
			return true, nil
		}
	}
	return false, nil
}
