package agent

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Store keeps shops, staff and buyers in the SQL warm store (SQLite or MySQL).
type Store struct {
	db *gorm.DB
}

// NewStore returns a Store over db, whose schema the migrations created.
func NewStore(db *gorm.DB) *Store { return &Store{db: db} }

func notFound(err error, format string, args ...any) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Errorf(ENOTFOUND, format, args...)
	}
	return unavailable(err, "agent store")
}

func isDuplicate(err error) bool {
	return errors.Is(err, gorm.ErrDuplicatedKey)
}

// CreateShop inserts a shop; ECONFLICT if the slug is taken.
func (s *Store) CreateShop(ctx context.Context, shop *Shop) error {
	if shop.CreatedAt.IsZero() {
		shop.CreatedAt = time.Now().UTC()
	}
	err := s.db.WithContext(ctx).Create(shop).Error
	if err != nil && isDuplicate(err) {
		return Errorf(ECONFLICT, "shop %q already exists", shop.Slug)
	}
	return unavailable(err, "create shop")
}

// Shop returns the shop with id.
func (s *Store) Shop(ctx context.Context, id int64) (*Shop, error) {
	var out Shop
	if err := s.db.WithContext(ctx).Take(&out, id).Error; err != nil {
		return nil, notFound(err, "shop %d not found", id)
	}
	return &out, nil
}

// ShopBySlug returns the shop with slug.
func (s *Store) ShopBySlug(ctx context.Context, slug string) (*Shop, error) {
	var out Shop
	if err := s.db.WithContext(ctx).Where("slug = ?", slug).Take(&out).Error; err != nil {
		return nil, notFound(err, "shop %q not found", slug)
	}
	return &out, nil
}

// Shops lists every shop.
func (s *Store) Shops(ctx context.Context) ([]Shop, error) {
	var out []Shop
	err := s.db.WithContext(ctx).Order("id").Find(&out).Error
	return out, unavailable(err, "list shops")
}

// SaveShop writes every field of shop.
func (s *Store) SaveShop(ctx context.Context, shop *Shop) error {
	return unavailable(s.db.WithContext(ctx).Save(shop).Error, "save shop")
}

// CreateStaff inserts a staff member; ECONFLICT if the username is taken in the shop.
func (s *Store) CreateStaff(ctx context.Context, st *Staff) error {
	if st.CreatedAt.IsZero() {
		st.CreatedAt = time.Now().UTC()
	}
	err := s.db.WithContext(ctx).Create(st).Error
	if err != nil && isDuplicate(err) {
		return Errorf(ECONFLICT, "username %q already exists in this shop", st.Username)
	}
	return unavailable(err, "create staff")
}

// Staff returns the staff member with id; ENOTFOUND unless they belong to shopID.
func (s *Store) Staff(ctx context.Context, shopID, id int64) (*Staff, error) {
	var out Staff
	if err := s.db.WithContext(ctx).Where("shop_id = ?", shopID).Take(&out, id).Error; err != nil {
		return nil, notFound(err, "staff %d not found", id)
	}
	return &out, nil
}

// StaffByUsername returns the staff member of shop with username.
func (s *Store) StaffByUsername(ctx context.Context, shopID int64, username string) (*Staff, error) {
	var out Staff
	if err := s.db.WithContext(ctx).Where("shop_id = ? AND username = ?", shopID, username).Take(&out).Error; err != nil {
		return nil, notFound(err, "staff %q not found", username)
	}
	return &out, nil
}

// StaffOf lists the staff of a shop.
func (s *Store) StaffOf(ctx context.Context, shopID int64) ([]Staff, error) {
	var out []Staff
	err := s.db.WithContext(ctx).Where("shop_id = ?", shopID).Order("id").Find(&out).Error
	return out, unavailable(err, "list staff")
}

// SaveStaff writes every field of st.
func (s *Store) SaveStaff(ctx context.Context, st *Staff) error {
	return unavailable(s.db.WithContext(ctx).Save(st).Error, "save staff")
}

// SetStatus changes a staff member's status and reports the previous one. The previous status is
// read just before the change, not under a lock: it is for the record (a log line), and agents flip
// statuses often enough that two more round trips for a transaction would show under load.
func (s *Store) SetStatus(ctx context.Context, shopID, id int64, status Status) (Status, error) {
	var st Staff
	db := s.db.WithContext(ctx)
	if err := db.Select("status").Where("shop_id = ?", shopID).Take(&st, id).Error; err != nil {
		return "", notFound(err, "staff %d not found", id)
	}
	if st.Status == status {
		return st.Status, nil
	}
	if err := db.Model(&Staff{}).Where("id = ? AND shop_id = ?", id, shopID).Update("status", status).Error; err != nil {
		return "", unavailable(err, "set status")
	}
	return st.Status, nil
}

// UpdateStatus changes a staff member's status when the caller does not need the previous one: one
// UPDATE, and a read only when it changed no row (the same status, or no such member).
func (s *Store) UpdateStatus(ctx context.Context, shopID, id int64, status Status) error {
	db := s.db.WithContext(ctx)
	res := db.Model(&Staff{}).Where("id = ? AND shop_id = ? AND status <> ?", id, shopID, status).Update("status", status)
	if res.Error != nil {
		return unavailable(res.Error, "set status")
	}
	if res.RowsAffected == 0 {
		var st Staff
		if err := db.Select("status").Where("shop_id = ?", shopID).Take(&st, id).Error; err != nil {
			return notFound(err, "staff %d not found", id)
		}
	}
	return nil
}

// UpsertBuyer returns the buyer of shop with externalID, creating it or refreshing name, tier and tags.
func (s *Store) UpsertBuyer(ctx context.Context, b *Buyer) error {
	db := s.db.WithContext(ctx)
	if b.CreatedAt.IsZero() {
		b.CreatedAt = time.Now().UTC()
	}
	if b.Tags == nil {
		b.Tags = []string{}
	}
	err := db.Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "shop_id"}, {Name: "external_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"name", "tier", "tags"}),
	}).Create(b).Error
	if err != nil {
		return unavailable(err, "save buyer")
	}
	var got Buyer
	if err := db.Where("shop_id = ? AND external_id = ?", b.ShopID, b.ExternalID).Take(&got).Error; err != nil {
		return unavailable(err, "load buyer")
	}
	*b = got
	return nil
}

// Buyer returns the buyer with id; ENOTFOUND unless they belong to shopID.
func (s *Store) Buyer(ctx context.Context, shopID, id int64) (*Buyer, error) {
	var out Buyer
	if err := s.db.WithContext(ctx).Where("shop_id = ?", shopID).Take(&out, id).Error; err != nil {
		return nil, notFound(err, "buyer %d not found", id)
	}
	return &out, nil
}
