package app

import (
	"context"

	"github.com/shopdesk/shopdesk/agent"
)

// Demo accounts, listed in the README. Every password is "demo".
const (
	DemoShop     = "demo"
	DemoPassword = "demo"
)

var demoStaff = []agent.NewStaff{
	{Username: "presale1", DisplayName: "Presale One", Groups: []string{"presale"}, Skills: []string{"zh", "en"}, Capacity: 5},
	{Username: "presale2", DisplayName: "Presale Two", Groups: []string{"presale"}, Skills: []string{"zh"}, Capacity: 5},
	{Username: "aftersale1", DisplayName: "Aftersale One", Groups: []string{"aftersale"}, Skills: []string{"zh", "refund"}, Capacity: 5},
}

// seedDemo creates the demo shop, its manager and agents, once; later starts find them and do nothing.
func (a *App) seedDemo(ctx context.Context) error {
	if _, err := a.agents.Store.ShopBySlug(ctx, DemoShop); err == nil {
		return nil
	} else if agent.ErrorCode(err) != agent.ENOTFOUND {
		return err
	}
	shop, _, err := a.agents.CreateShop(ctx, agent.NewShop{Slug: DemoShop, Name: "Demo Shop", TimeZone: "Asia/Shanghai",
		AllowedOrigins: []string{"*"}, ManagerUsername: "manager", ManagerPassword: DemoPassword})
	if err != nil {
		if agent.ErrorCode(err) == agent.ECONFLICT { // another node seeded it first
			return nil
		}
		return err
	}
	for _, st := range demoStaff {
		st.Password = DemoPassword
		if _, err := a.agents.CreateStaff(ctx, shop.ID, st); err != nil && agent.ErrorCode(err) != agent.ECONFLICT {
			return err
		}
	}
	a.log.Info("demo shop seeded", "shop", DemoShop, "id", shop.ID)
	return nil
}
