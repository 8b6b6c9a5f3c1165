package agent

import (
	"context"
	"strconv"
)

// ErasedExternalID is the external id an erased buyer is left with: the shop's own id of the person
// is gone, and if they come back they are a new buyer with a new conversation.
func ErasedExternalID(id int64) string { return "erased:" + strconv.FormatInt(id, 10) }

// AnonymizeBuyer replaces what the shop told us of the buyer (external id, name, tier, tags) with
// nothing, keeping the row so that conversations and sessions still point at a buyer. ENOTFOUND
// unless the buyer belongs to shopID. Running it again changes nothing more.
func (s *Store) AnonymizeBuyer(ctx context.Context, shopID, id int64) error {
	res := s.db.WithContext(ctx).Model(&Buyer{}).Where("id = ? AND shop_id = ?", id, shopID).
		Updates(map[string]any{"external_id": ErasedExternalID(id), "name": "", "tier": "", "tags": "[]", "anonymous": true})
	if res.Error != nil {
		return unavailable(res.Error, "anonymize buyer")
	}
	if res.RowsAffected == 0 {
		if _, err := s.Buyer(ctx, shopID, id); err != nil {
			return err
		}
	}
	return nil
}
