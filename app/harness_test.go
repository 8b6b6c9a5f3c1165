package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/shopdesk/shopdesk/app"
	"github.com/shopdesk/shopdesk/migrations/testdb"
	"github.com/shopdesk/shopdesk/session"
)

const operatorToken = "test-operator-token"

// backendEnv is a set of servers nodes of one test share: none (embedded), or MariaDB and Redis.
type backendEnv struct {
	name     string
	mysqlDSN string
	redis    string
	prefix   string
}

func embeddedEnv() backendEnv { return backendEnv{name: "embedded"} }

func productionEnv(t *testing.T) backendEnv {
	_, prefix := testdb.Redis(t)
	return backendEnv{name: "production", mysqlDSN: testdb.MySQLDatabase(t), redis: testdb.RedisAddr(), prefix: prefix}
}

// mysqlOnlyEnv is one node writing straight to MySQL, without Redis.
func mysqlOnlyEnv(t *testing.T) backendEnv {
	return backendEnv{name: "mysql", mysqlDSN: testdb.MySQLDatabase(t)}
}

// bothEnvs runs f in embedded and in production mode.
func bothEnvs(t *testing.T, f func(t *testing.T, env backendEnv)) {
	t.Run("embedded", func(t *testing.T) { f(t, embeddedEnv()) })
	t.Run("production", func(t *testing.T) { f(t, productionEnv(t)) })
}

// allModes runs f in every backend mode: embedded, MySQL-only and production.
func allModes(t *testing.T, f func(t *testing.T, env backendEnv)) {
	bothEnvs(t, f)
	t.Run("mysql-only", func(t *testing.T) { f(t, mysqlOnlyEnv(t)) })
}

// startNode runs a node on a random loopback port and stops it when the test ends.
func startNode(t *testing.T, env backendEnv, data string, extra ...string) *app.App {
	t.Helper()
	if data == "" {
		data = t.TempDir()
	}
	args := []string{"--addr=127.0.0.1:0", "--data=" + data, "--operator-token=" + operatorToken, "--bcrypt-cost=4"}
	if env.mysqlDSN != "" {
		args = append(args, "--mysql-dsn="+env.mysqlDSN)
	}
	if env.redis != "" {
		args = append(args, "--redis-addr="+env.redis, "--redis-prefix="+env.prefix)
	}
	args = append(args, extra...)
	cfg, err := app.ParseConfig("test", args, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	return a
}

// api calls the REST API and decodes the JSON answer into out (if not nil); it returns the status.
func api(t *testing.T, method, url string, auth authz, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	auth.apply(req.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, url, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

// authz is how a request authenticates.
type authz struct {
	token  string
	shop   int64
	origin string
}

func (a authz) apply(h http.Header) {
	if a.token != "" {
		h.Set("Authorization", "Bearer "+a.token)
	}
	if a.shop != 0 {
		h.Set("X-Shop", fmt.Sprint(a.shop))
	}
	if a.origin != "" {
		h.Set("Origin", a.origin)
	}
}

type apiError struct {
	Error struct{ Code, Message string } `json:"error"`
}

// shopFixture is a shop with a manager and agents, logged in.
type shopFixture struct {
	id      int64
	slug    string
	secret  string
	manager authz
	agents  []staffLogin
}

type staffLogin struct {
	id   int64
	auth authz
}

func newShop(t *testing.T, base string, agents int) shopFixture {
	t.Helper()
	slug := strings.ToLower(testdb.Name("shop"))
	var created struct {
		Shop        struct{ ID int64 }
		BuyerSecret string `json:"buyer_secret"`
	}
	st := api(t, "POST", base+"/api/operator/shops", authz{token: operatorToken}, map[string]any{
		"slug": slug, "name": "Test", "manager_username": "boss", "manager_password": "pw-boss",
		"allowed_origins": []string{"https://shop.example"}}, &created)
	if st != http.StatusCreated {
		t.Fatalf("create shop: %d", st)
	}
	f := shopFixture{id: created.Shop.ID, slug: slug, secret: created.BuyerSecret}
	f.manager = login(t, base, slug, "boss", "pw-boss").auth
	for i := 0; i < agents; i++ {
		name := fmt.Sprintf("agent%d", i+1)
		var out struct{ Staff struct{ ID int64 } }
		if st := api(t, "POST", base+"/api/staff", f.manager, map[string]any{"username": name, "password": "pw-" + name, "capacity": 5, "groups": []string{"presale"}}, &out); st != http.StatusCreated {
			t.Fatalf("create agent: %d", st)
		}
		f.agents = append(f.agents, login(t, base, slug, name, "pw-"+name))
	}
	return f
}

func login(t *testing.T, base, shop, user, pw string) staffLogin {
	t.Helper()
	var out struct {
		Token string
		Staff struct{ ID int64 }
	}
	if st := api(t, "POST", base+"/api/login", authz{}, map[string]string{"shop": shop, "username": user, "password": pw}, &out); st != http.StatusOK {
		t.Fatalf("login %s: %d", user, st)
	}
	return staffLogin{id: out.Staff.ID, auth: authz{token: out.Token}}
}

// buyer returns the authz of a buyer signed with the shop's secret.
func (f shopFixture) buyer(t *testing.T, sub string) authz {
	tok, err := session.SignBuyerToken([]byte(f.secret), session.BuyerClaims{Subject: sub, Name: "Buyer " + sub}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return authz{token: tok, shop: f.id}
}

// frame is any server frame; which fields are set depends on Type.
type frame struct {
	Type           string                          `json:"type"`
	Ref            string                          `json:"ref"`
	Code           string                          `json:"-"`
	Error          *struct{ Code, Message string } `json:"error"`
	Message        json.RawMessage                 `json:"message"`
	ConversationID int64                           `json:"conversation_id"`
	Seq            int64                           `json:"seq"`
	ClientMsgID    string                          `json:"client_msg_id"`
	Dup            bool                            `json:"dup"`
	Messages       []session.Message               `json:"messages"`
	Unread         *session.UnreadCount            `json:"unread"`
	Session        *session.Session                `json:"session"`
	From           *session.Party                  `json:"from"`
	Note           string                          `json:"note"`
	Status         string                          `json:"status"`
	More           bool                            `json:"more"`
	Party          *session.Party                  `json:"party"`
	Queue          *session.QueuePlace             `json:"queue"`
}

// msg decodes the pushed message of a "message" frame.
func (f frame) msg(t *testing.T) session.Message {
	var m session.Message
	if err := json.Unmarshal(f.Message, &m); err != nil {
		t.Fatalf("message frame: %v", err)
	}
	return m
}

// errText returns the message of an "error" frame.
func (f frame) errText() string {
	if f.Error == nil {
		return ""
	}
	return f.Error.Message
}

// wsClient is a device: a WebSocket connection with a backlog of frames not yet expected.
type wsClient struct {
	t       *testing.T
	ws      *websocket.Conn
	frames  chan frame
	backlog []frame
	mu      sync.Mutex
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/ws" }

// dial connects a device to a node; it fails the test unless the server says hello.
func dial(t *testing.T, base string, a authz) *wsClient {
	t.Helper()
	c, resp, err := dialRaw(base, a)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", base, err, status)
	}
	c.t = t
	t.Cleanup(func() { c.ws.Close() })
	c.expect("hello", nil)
	return c
}

func dialRaw(base string, a authz) (*wsClient, *http.Response, error) {
	h := http.Header{}
	a.apply(h)
	ws, resp, err := websocket.DefaultDialer.Dial(wsURL(base), h)
	if err != nil {
		return nil, resp, err
	}
	c := &wsClient{ws: ws, frames: make(chan frame, 4096)}
	go func() {
		defer close(c.frames)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var f frame
			if json.Unmarshal(data, &f) == nil {
				if f.Error != nil {
					f.Code = f.Error.Code
				}
				c.frames <- f
			}
		}
	}()
	return c, resp, nil
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

func (c *wsClient) sendRaw(data string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(data)); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

// expect returns the first frame of type typ matching match (nil matches any), waiting up to 10 s.
func (c *wsClient) expect(typ string, match func(frame) bool) frame {
	c.t.Helper()
	return c.await(fmt.Sprintf("%q frame", typ), func(f frame) bool { return f.Type == typ && (match == nil || match(f)) })
}

// await returns the first frame, from the backlog or the connection, for which ok holds, keeping the
// others in the backlog; it fails the test after 10 s or when the connection closes.
func (c *wsClient) await(what string, ok func(frame) bool) frame {
	c.t.Helper()
	for i, f := range c.backlog {
		if ok(f) {
			c.backlog = append(c.backlog[:i:i], c.backlog[i+1:]...)
			return f
		}
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, open := <-c.frames:
			if !open {
				c.t.Fatalf("connection closed while waiting for %s", what)
			}
			if ok(f) {
				return f
			}
			c.backlog = append(c.backlog, f)
		case <-timeout:
			c.t.Fatalf("no %s within 10s; backlog: %+v", what, c.backlog)
		}
	}
}

// none asserts that no frame of type typ matching match arrives within d.
func (c *wsClient) none(typ string, match func(frame) bool, d time.Duration) {
	c.t.Helper()
	ok := func(f frame) bool { return f.Type == typ && (match == nil || match(f)) }
	for _, f := range c.backlog {
		if ok(f) {
			c.t.Fatalf("unexpected %q frame: %+v", typ, f)
		}
	}
	timeout := time.After(d)
	for {
		select {
		case f, open := <-c.frames:
			if !open {
				return
			}
			if ok(f) {
				c.t.Fatalf("unexpected %q frame: %+v", typ, f)
			}
			c.backlog = append(c.backlog, f)
		case <-timeout:
			return
		}
	}
}

var refs int64
var refsMu sync.Mutex

func nextRef() string {
	refsMu.Lock()
	defer refsMu.Unlock()
	refs++
	return fmt.Sprintf("r%d", refs)
}

// sendText sends a text message and returns its ack or error frame.
func (c *wsClient) sendText(conv int64, cid, text string) frame {
	c.t.Helper()
	ref := nextRef()
	c.send(map[string]any{"type": "send", "ref": ref, "client_msg_id": cid, "conversation_id": conv, "body": map[string]any{"type": "text", "text": text}})
	return c.reply(ref)
}

// reply waits for the ack, ok, messages, pong or error frame answering ref.
func (c *wsClient) reply(ref string) frame {
	c.t.Helper()
	return c.await("a reply to "+ref, func(f frame) bool { return f.Ref == ref && f.Type != "message" })
}

// request sends a frame with a fresh ref and returns the reply.
func (c *wsClient) request(v map[string]any) frame {
	c.t.Helper()
	ref := nextRef()
	v["ref"] = ref
	c.send(v)
	return c.reply(ref)
}

// startConversation opens the buyer's conversation with a context and returns its id.
func startConversation(t *testing.T, base string, buyer authz, ctx map[string]any) int64 {
	t.Helper()
	var out struct{ Conversation struct{ ID int64 } }
	if st := api(t, "POST", base+"/api/conversations", buyer, map[string]any{"context": ctx}, &out); st != http.StatusOK {
		t.Fatalf("start conversation: %d", st)
	}
	return out.Conversation.ID
}

// liveSession returns the conversation's queued or open session, as a manager sees it.
func liveSession(t *testing.T, base string, mgr authz, conv int64) session.Session {
	t.Helper()
	var out struct{ Sessions []session.Session }
	api(t, "GET", fmt.Sprintf("%s/api/sessions?conversation_id=%d&state=queued,open", base, conv), mgr, nil, &out)
	if len(out.Sessions) != 1 {
		t.Fatalf("conversation %d: want one live session, got %+v", conv, out.Sessions)
	}
	return out.Sessions[0]
}

// assign hands the session to ag by the manager's hand. ag goes busy first: a manager may give work
// to a busy agent, and routing gives a busy agent nothing of its own accord, so the test decides
// alone who gets what.
func assign(t *testing.T, base string, mgr authz, sessionID int64, ag staffLogin) {
	t.Helper()
	setStatus(t, base, ag.auth, "busy")
	if st := api(t, "POST", fmt.Sprintf("%s/api/sessions/%d/assign", base, sessionID), mgr, map[string]any{"agent_id": ag.id}, nil); st != http.StatusOK {
		t.Fatalf("assign: %d", st)
	}
}

// setStatus sets a staff member's status over REST.
func setStatus(t *testing.T, base string, who authz, status string) {
	t.Helper()
	if st := api(t, "PUT", base+"/api/me/status", who, map[string]any{"status": status}, nil); st != http.StatusOK {
		t.Fatalf("status %s: %d", status, st)
	}
}
