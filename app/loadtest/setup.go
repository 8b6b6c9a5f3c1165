package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shopdesk/shopdesk/session"
)

// setupWorkers bounds the concurrent REST calls of the setup; SQLite has one writer anyway.
const setupWorkers = 16

// api is a small client of the REST API of one node.
type api struct {
	hc   *http.Client
	base string
}

// credential is how a request authenticates: a bearer token, and for buyers the shop id.
type credential struct {
	token string
	shop  int64
}

func (c *api) do(ctx context.Context, method, path string, who credential, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if who.token != "" {
		req.Header.Set("Authorization", "Bearer "+who.token)
	}
	if who.shop != 0 {
		req.Header.Set("X-Shop", strconv.FormatInt(who.shop, 10))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// fixture is what the setup created: the shop, its agents and each buyer's conversation.
type fixture struct {
	shopID      int64
	slug        string
	buyerSecret []byte
	agents      []agentLogin
	buyers      []buyerConv
	assignedAt  time.Time // when the last session was assigned
}

type agentLogin struct {
	id    int64
	token string
}

type buyerConv struct {
	token string
	conv  int64
	agent int // index into fixture.agents
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// benchShop is a throw-away shop the bench created, with its manager's password.
type benchShop struct {
	slug, password string
	shopID         int64
	buyerSecret    []byte
}

// createBenchShop creates a shop with a random slug through the operator API on op and logs its
// manager in.
func createBenchShop(ctx context.Context, op *api, opToken string, log *logger) (benchShop, staffLogin, error) {
	bs := benchShop{slug: "bench-" + randomHex(5), password: randomHex(12)}
	var shop struct {
		Shop struct {
			ID int64 `json:"id"`
		} `json:"shop"`
		BuyerSecret string `json:"buyer_secret"`
	}
	in := map[string]any{"slug": bs.slug, "name": "bench " + bs.slug, "manager_username": "manager",
		"manager_password": bs.password, "allowed_origins": []string{}}
	if err := op.do(ctx, http.MethodPost, "/api/operator/shops", credential{token: opToken}, in, &shop); err != nil {
		return bs, staffLogin{}, fmt.Errorf("create bench shop (is the operator token right?): %w", err)
	}
	bs.shopID, bs.buyerSecret = shop.Shop.ID, []byte(shop.BuyerSecret)
	log.printf("shop %s (id %d) created on %s", bs.slug, bs.shopID, op.base)
	manager, err := login(ctx, op, bs.slug, "manager", bs.password)
	if err != nil {
		return bs, staffLogin{}, fmt.Errorf("manager login: %w", err)
	}
	return bs, manager, nil
}

// createFixture creates a bench shop with a random slug, its agents, and for each buyer a conversation
// whose first message opened a session that the manager assigned, round-robin over the agents.
// nodes[0] takes the operator and manager calls; buyers use their own node, as their devices will.
func createFixture(ctx context.Context, nodes []*api, opToken string, buyers, agents int, log *logger) (*fixture, error) {
	op := nodes[0]
	bs, manager, err := createBenchShop(ctx, op, opToken, log)
	if err != nil {
		return nil, err
	}
	fx := &fixture{slug: bs.slug, shopID: bs.shopID, buyerSecret: bs.buyerSecret}
	password := bs.password
	fx.agents = make([]agentLogin, agents)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(setupWorkers)
	for i := range fx.agents {
		g.Go(func() error {
			name := fmt.Sprintf("agent%d", i)
			in := map[string]any{"username": name, "password": password, "capacity": 1000, "groups": []string{"presale"}}
			if err := op.do(gctx, http.MethodPost, "/api/staff", manager.token, in, nil); err != nil {
				return fmt.Errorf("create %s: %w", name, err)
			}
			st, err := login(gctx, nodes[i%len(nodes)], fx.slug, name, password)
			if err != nil {
				return fmt.Errorf("%s login: %w", name, err)
			}
			// Busy: the bench hands each conversation to an agent of its choice (a manager may give work
			// to a busy agent), and routing gives busy agents nothing of its own accord.
			if err := nodes[i%len(nodes)].do(gctx, http.MethodPut, "/api/me/status", st.token, map[string]any{"status": "busy"}, nil); err != nil {
				return fmt.Errorf("%s status: %w", name, err)
			}
			fx.agents[i] = agentLogin{id: st.id, token: st.token.token}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	fx.buyers = make([]buyerConv, buyers)
	var mu sync.Mutex
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(setupWorkers)
	for i := range fx.buyers {
		g.Go(func() error {
			b, err := openConversation(gctx, nodes[i%len(nodes)], op, fx, manager, i)
			if err != nil {
				return fmt.Errorf("buyer %d: %w", i, err)
			}
			mu.Lock()
			fx.buyers[i] = b
			fx.assignedAt = time.Now()
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return fx, nil
}

type staffLogin struct {
	id    int64
	token credential
}

func login(ctx context.Context, c *api, shop, username, password string) (staffLogin, error) {
	var out struct {
		Token string `json:"token"`
		Staff struct {
			ID int64 `json:"id"`
		} `json:"staff"`
	}
	in := map[string]string{"shop": shop, "username": username, "password": password}
	if err := c.do(ctx, http.MethodPost, "/api/login", credential{}, in, &out); err != nil {
		return staffLogin{}, err
	}
	return staffLogin{id: out.Staff.ID, token: credential{token: out.Token}}, nil
}

// buyerToken signs a buyer token as the shop's backend would.
func buyerToken(fx *fixture, subject string) (string, error) {
	return session.SignBuyerToken(fx.buyerSecret, session.BuyerClaims{Subject: subject}, time.Now())
}

// openConversation has buyer i start a conversation and write its first message, then has the manager
// assign the queued session to agent i mod len(agents).
func openConversation(ctx context.Context, node, op *api, fx *fixture, manager staffLogin, i int) (buyerConv, error) {
	tok, err := buyerToken(fx, fmt.Sprintf("bench-buyer-%d", i))
	if err != nil {
		return buyerConv{}, err
	}
	buyer := credential{token: tok, shop: fx.shopID}
	var conv struct {
		Conversation struct {
			ID int64 `json:"id"`
		} `json:"conversation"`
	}
	if err := node.do(ctx, http.MethodPost, "/api/conversations", buyer, map[string]any{"context": map[string]string{"product_id": "p1"}}, &conv); err != nil {
		return buyerConv{}, err
	}
	cid := conv.Conversation.ID
	first := map[string]any{"client_msg_id": "open-" + strconv.Itoa(i), "body": map[string]string{"type": "text", "text": "hello"}}
	if err := node.do(ctx, http.MethodPost, "/api/conversations/"+strconv.FormatInt(cid, 10)+"/messages", buyer, first, nil); err != nil {
		return buyerConv{}, err
	}
	sid, err := liveSession(ctx, op, manager.token, cid)
	if err != nil {
		return buyerConv{}, err
	}
	agent := i % len(fx.agents)
	in := map[string]int64{"agent_id": fx.agents[agent].id}
	if err := op.do(ctx, http.MethodPost, "/api/sessions/"+strconv.FormatInt(sid, 10)+"/assign", manager.token, in, nil); err != nil {
		return buyerConv{}, err
	}
	return buyerConv{token: tok, conv: cid, agent: agent}, nil
}

// liveSession returns the queued session of a conversation, retrying briefly: in a cluster the
// buyer's node and the manager's node may differ.
func liveSession(ctx context.Context, op *api, manager credential, conv int64) (int64, error) {
	var out struct {
		Sessions []struct {
			ID    int64  `json:"id"`
			State string `json:"state"`
		} `json:"sessions"`
	}
	for try := 0; try < 20; try++ {
		path := "/api/sessions?state=queued,open&conversation_id=" + strconv.FormatInt(conv, 10)
		if err := op.do(ctx, http.MethodGet, path, manager, nil, &out); err != nil {
			return 0, err
		}
		if len(out.Sessions) > 0 {
			return out.Sessions[0].ID, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("conversation %d: the first message opened no session", conv)
}

// residentBytes sums process_resident_memory_bytes over the nodes' /metrics.
func residentBytes(ctx context.Context, nodes []*api) (float64, error) {
	var sum float64
	for _, n := range nodes {
		v, err := n.scrape(ctx, "process_resident_memory_bytes")
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// scrape reads one unlabelled sample from the node's Prometheus text exposition.
func (c *api) scrape(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape %s/metrics: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scrape %s/metrics: %s", c.base, resp.Status)
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("scrape %s/metrics: %w", c.base, err)
	}
	return 0, errors.New(c.base + "/metrics has no " + name)
}

// wsURL is the WebSocket endpoint of a node given by its base URL.
func wsURL(base *url.URL) string {
	u := *base
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path += "/ws"
	return u.String()
}
