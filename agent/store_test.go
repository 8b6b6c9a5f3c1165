package agent

import (
	"context"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"github.com/shopdesk/shopdesk/migrations/testdb"
)

func sqlStores() []struct {
	name string
	open func(t *testing.T) *gorm.DB
} {
	return []struct {
		name string
		open func(t *testing.T) *gorm.DB
	}{
		{"sqlite", func(t *testing.T) *gorm.DB { return testdb.SQLite(t) }},
		{"mysql", func(t *testing.T) *gorm.DB { return testdb.MySQL(t) }},
	}
}

// TestServiceConformance runs shops, staff, login and buyers against every SQL backend.
func TestServiceConformance(t *testing.T) {
	for _, b := range sqlStores() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			svc := NewService(NewStore(b.open(t)))
			svc.Cost = bcrypt.MinCost
			shop, mgr, err := svc.CreateShop(ctx, NewShop{Slug: "tea-house", Name: "Tea House", TimeZone: "Asia/Shanghai",
				AllowedOrigins: []string{"https://tea.example/"}, ManagerUsername: "boss", ManagerPassword: "secret1"})
			if err != nil {
				t.Fatal(err)
			}
			if mgr.Role != RoleManager || len(shop.BuyerSecrets) != 1 || shop.AllowedOrigins[0] != "https://tea.example" {
				t.Fatalf("shop %+v manager %+v", shop, mgr)
			}
			if _, _, err := svc.CreateShop(ctx, NewShop{Slug: "tea-house", ManagerUsername: "x1", ManagerPassword: "secret1"}); ErrorCode(err) != ECONFLICT {
				t.Fatalf("duplicate slug: %v", err)
			}
			for _, bad := range []NewShop{
				{Slug: "Bad Slug", ManagerUsername: "ok", ManagerPassword: "secret1"},
				{Slug: "ok-shop", TimeZone: "Mars/Olympus", ManagerUsername: "ok", ManagerPassword: "secret1"},
				{Slug: "ok-shop", ManagerUsername: "ok", ManagerPassword: "x"},
				{Slug: "ok-shop", ManagerUsername: "ok", ManagerPassword: "secret1", AllowedOrigins: []string{"ftp://x"}},
			} {
				if _, _, err := svc.CreateShop(ctx, bad); ErrorCode(err) != EINVALID {
					t.Errorf("%+v: %v", bad, err)
				}
			}
			ag, err := svc.CreateStaff(ctx, shop.ID, NewStaff{Username: "presale1", Password: "pw1234", Groups: []string{"presale", " presale ", ""}, Skills: []string{"zh"}, Capacity: 3})
			if err != nil || ag.Status != StatusOffline || len(ag.Groups) != 1 || ag.Capacity != 3 || !ag.Active {
				t.Fatalf("agent %+v %v", ag, err)
			}
			if _, err := svc.CreateStaff(ctx, shop.ID, NewStaff{Username: "presale1", Password: "pw1234"}); ErrorCode(err) != ECONFLICT {
				t.Fatalf("duplicate username: %v", err)
			}
			if _, st, err := svc.Login(ctx, "tea-house", "presale1", "pw1234"); err != nil || st.ID != ag.ID {
				t.Fatalf("login: %v", err)
			}
			for _, bad := range [][3]string{{"tea-house", "presale1", "wrong"}, {"tea-house", "nobody", "pw1234"}, {"no-shop", "presale1", "pw1234"}} {
				if _, _, err := svc.Login(ctx, bad[0], bad[1], bad[2]); ErrorCode(err) != EFORBIDDEN {
					t.Errorf("login %v: %v", bad, err)
				}
			}
			prev, err := svc.SetStatus(ctx, shop.ID, ag.ID, StatusBusy)
			if err != nil || prev != StatusOffline {
				t.Fatalf("status: %v %v", prev, err)
			}
			if _, err := svc.SetStatus(ctx, shop.ID, ag.ID, "sleeping"); ErrorCode(err) != EINVALID {
				t.Fatalf("bad status: %v", err)
			}
			if _, err := svc.SetStatus(ctx, shop.ID+1, ag.ID, StatusOnline); ErrorCode(err) != ENOTFOUND {
				t.Fatalf("status across shops: %v", err)
			}
			// UpdateStatus: the same changes without the previous status, the same status twice is fine.
			for range 2 {
				if err := svc.UpdateStatus(ctx, shop.ID, ag.ID, StatusAway); err != nil {
					t.Fatalf("update status: %v", err)
				}
			}
			if prev, err := svc.SetStatus(ctx, shop.ID, ag.ID, StatusBusy); err != nil || prev != StatusAway {
				t.Fatalf("status after update: %v %v", prev, err)
			}
			if err := svc.UpdateStatus(ctx, shop.ID, ag.ID, "sleeping"); ErrorCode(err) != EINVALID {
				t.Fatalf("bad status update: %v", err)
			}
			for _, id := range [][2]int64{{shop.ID + 1, ag.ID}, {shop.ID, ag.ID + 1000}} {
				if err := svc.UpdateStatus(ctx, id[0], id[1], StatusOnline); ErrorCode(err) != ENOTFOUND {
					t.Fatalf("status update of staff %d in shop %d: %v", id[1], id[0], err)
				}
			}
			capacity, off := 8, false
			up, err := svc.UpdateStaff(ctx, shop.ID, ag.ID, StaffUpdate{Capacity: &capacity, Active: &off})
			if err != nil || up.Capacity != 8 || up.Active || up.Status != StatusOffline {
				t.Fatalf("update: %+v %v", up, err)
			}
			if _, _, err := svc.Login(ctx, "tea-house", "presale1", "pw1234"); ErrorCode(err) != EFORBIDDEN {
				t.Fatalf("deactivated login: %v", err)
			}
			if _, err := svc.Store.Staff(ctx, shop.ID+1, ag.ID); ErrorCode(err) != ENOTFOUND {
				t.Fatalf("staff across shops: %v", err)
			}
			rotated, err := svc.UpdateShop(ctx, shop.ID, ShopUpdate{RotateSecret: true})
			if err != nil || len(rotated.BuyerSecrets) != 2 || rotated.BuyerSecrets[1] != shop.BuyerSecrets[0] {
				t.Fatalf("rotate: %+v %v", rotated, err)
			}
			rotated, _ = svc.UpdateShop(ctx, shop.ID, ShopUpdate{RotateSecret: true})
			if len(rotated.BuyerSecrets) != 2 {
				t.Fatalf("only two secrets stay valid: %d", len(rotated.BuyerSecrets))
			}
			b := &Buyer{ShopID: shop.ID, ExternalID: "u-1", Name: "Ann", Tier: "vip"}
			if err := svc.Store.UpsertBuyer(ctx, b); err != nil || b.ID == 0 {
				t.Fatalf("buyer: %+v %v", b, err)
			}
			again := &Buyer{ShopID: shop.ID, ExternalID: "u-1", Name: "Ann B", Tags: []string{"returning"}}
			if err := svc.Store.UpsertBuyer(ctx, again); err != nil || again.ID != b.ID || again.Name != "Ann B" || len(again.Tags) != 1 {
				t.Fatalf("buyer upsert: %+v %v", again, err)
			}
			if _, err := svc.Store.Buyer(ctx, shop.ID+1, b.ID); ErrorCode(err) != ENOTFOUND {
				t.Fatalf("buyer across shops: %v", err)
			}
		})
	}
}
