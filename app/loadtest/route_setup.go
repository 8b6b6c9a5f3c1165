package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shopdesk/shopdesk/rules"
	"github.com/shopdesk/shopdesk/session"
)

// staffWorkers bounds the concurrent staff creations and logins of the setup.
const staffWorkers = 4

// routeFixture is what the route scenario's setup created: the shop and its published rule set, the
// agents (offline until their devices say otherwise) and each buyer's conversation.
type routeFixture struct {
	shopID      int64
	slug        string
	buyerSecret []byte
	manager     credential
	agents      []agentLogin
	buyers      []routeBuyerConv
}

type routeBuyerConv struct {
	token    string
	conv     int64
	category int
}

// routeRuleSet is the scenario's rule set: rule i takes category c<i> to the agents of group g<i%10>,
// least load first; every other category goes to the default rule, any online agent.
func routeRuleSet(n int) rules.RuleSet {
	rs := rules.RuleSet{Default: rules.Rule{Name: "anyone online", Target: `agent.status == "online"`,
		Prefer: []rules.Preference{rules.PreferLeastLoadRatio}}}
	for i := range n {
		rs.Rules = append(rs.Rules, rules.Rule{Name: fmt.Sprintf("r%d", i),
			When:   fmt.Sprintf(`session.product.category == "c%d"`, i),
			Target: fmt.Sprintf(`"g%d" in agent.groups`, i%routeGroups),
			Prefer: []rules.Preference{rules.PreferLeastLoadRatio}})
	}
	return rs
}

// createRouteFixture creates a bench shop with a random slug, publishes the rule set, creates the
// agents (agent j: capacity o.capacity, group g<j%10>) and logs them in, and creates each buyer's
// conversation with category c<i%25>. nodes[0] takes the operator and manager calls; agents and
// buyers use their own node, as their devices will.
func createRouteFixture(ctx context.Context, nodes []*api, opToken string, o options, log *logger) (*routeFixture, error) {
	op := nodes[0]
	bs, manager, err := createBenchShop(ctx, op, opToken, log)
	if err != nil {
		return nil, err
	}
	fx := &routeFixture{slug: bs.slug, shopID: bs.shopID, buyerSecret: bs.buyerSecret}
	password := bs.password
	fx.manager = manager.token
	publish := map[string]any{"rule_set": routeRuleSet(o.rules), "comment": "shopdesk bench --scenario route", "publish": true}
	if err := op.do(ctx, http.MethodPost, "/api/routing/versions", fx.manager, publish, nil); err != nil {
		return nil, fmt.Errorf("publish the rule set: %w", err)
	}

	began := time.Now()
	fx.agents = make([]agentLogin, o.agents)
	g, gctx := errgroup.WithContext(ctx)
	// Creating and logging in staff is password hashing on the node: more calls at once than it has
	// cores only make each slower.
	g.SetLimit(staffWorkers)
	for j := range fx.agents {
		g.Go(func() error {
			name := fmt.Sprintf("agent%d", j)
			in := map[string]any{"username": name, "password": password, "capacity": o.capacity,
				"groups": []string{fmt.Sprintf("g%d", j%routeGroups)}}
			if err := op.do(gctx, http.MethodPost, "/api/staff", fx.manager, in, nil); err != nil {
				return fmt.Errorf("create %s: %w", name, err)
			}
			st, err := login(gctx, nodes[j%len(nodes)], fx.slug, name, password)
			if err != nil {
				return fmt.Errorf("%s login: %w", name, err)
			}
			fx.agents[j] = agentLogin{id: st.id, token: st.token.token}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	log.printf("%d agents created and logged in in %s", o.agents, time.Since(began).Round(time.Millisecond))

	fx.buyers = make([]routeBuyerConv, o.buyers)
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(setupWorkers)
	for i := range fx.buyers {
		g.Go(func() error {
			cat := i % routeCategories
			tok, err := session.SignBuyerToken(fx.buyerSecret, session.BuyerClaims{Subject: fmt.Sprintf("bench-buyer-%d", i)}, time.Now())
			if err != nil {
				return err
			}
			var conv struct {
				Conversation struct {
					ID int64 `json:"id"`
				} `json:"conversation"`
			}
			ctxIn := map[string]any{"context": map[string]string{"product_id": fmt.Sprintf("p%d", cat), "category": fmt.Sprintf("c%d", cat)}}
			who := credential{token: tok, shop: fx.shopID}
			if err := nodes[i%len(nodes)].do(gctx, http.MethodPost, "/api/conversations", who, ctxIn, &conv); err != nil {
				return fmt.Errorf("buyer %d: %w", i, err)
			}
			fx.buyers[i] = routeBuyerConv{token: tok, conv: conv.Conversation.ID, category: cat}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return fx, nil
}
