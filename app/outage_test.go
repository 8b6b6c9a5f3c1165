package app_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // reads the warm store the node flushes to
	"github.com/redis/go-redis/v9"

	"github.com/shopdesk/shopdesk/migrations/testdb"
)

// tcpProxy forwards loopback connections to a target and can cut them all, as a network partition
// or a Redis restart would.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close() // refused: the client sees the connection end at once
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.down { // cut while dialing
			p.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// cut closes every current connection and refuses new ones until restore.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

func (p *tcpProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// TestRedisOutage: while Redis is unreachable a send fails with EUNAVAILABLE and is not acknowledged,
// the WebSocket stays usable, and after Redis returns sends continue with the next seq and pushes
// reach other nodes again (their bus subscriptions reconnect by themselves).
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	env := productionEnv(t)
	proxy := startTCPProxy(t, testdb.RedisAddr())
	env.redis = proxy.addr()
	sfx := testdb.Name("")
	na := startNode(t, env, "", "--node-id=a-"+sfx)
	nb := startNode(t, env, "", "--node-id=b-"+sfx)
	base := na.URL()
	shop := newShop(t, base, 0)
	ag := staffLogin{id: managerID(t, base, shop.manager), auth: shop.manager} // the manager takes the session
	buyer := shop.buyer(t, "olga")
	conv := startConversation(t, base, buyer, map[string]any{"product_id": "kettle"})
	b := dial(t, base, buyer)
	a := dial(t, base, ag.auth)          // the agent's device on the buyer's node
	remote := dial(t, nb.URL(), ag.auth) // and one on the other node

	if ack := b.sendText(conv, "o1", "before the outage"); ack.Type != "ack" || ack.Seq != 1 {
		t.Fatalf("first ack: %+v", ack)
	}
	assign(t, base, shop.manager, liveSession(t, base, shop.manager, conv).ID, ag)
	a.expect("message", func(f frame) bool { return f.Seq == 2 })
	remote.expect("message", func(f frame) bool { return f.Seq == 2 })

	proxy.cut()
	f := b.sendText(conv, "o-lost", "during the outage")
	if f.Type != "error" || f.Code != "EUNAVAILABLE" {
		t.Fatalf("send during the outage: want an EUNAVAILABLE error frame, got %+v", f)
	}
	b.none("ack", func(f frame) bool { return f.ClientMsgID == "o-lost" }, 300*time.Millisecond)
	if p := b.request(map[string]any{"type": "ping"}); p.Type != "pong" {
		t.Fatalf("buyer ping during the outage: %+v", p)
	}
	if p := a.request(map[string]any{"type": "ping"}); p.Type != "pong" {
		t.Fatalf("agent ping during the outage: %+v", p)
	}
	var e apiError
	if st := api(t, "POST", fmt.Sprintf("%s/api/conversations/%d/messages", base, conv), buyer,
		map[string]any{"client_msg_id": "o-rest", "body": map[string]any{"type": "text", "text": "REST during the outage"}}, &e); st != http.StatusServiceUnavailable || e.Error.Code != "EUNAVAILABLE" {
		t.Fatalf("REST send during the outage: %d %+v", st, e)
	}
	var ready struct{ Ready bool }
	if st := api(t, "GET", base+"/readyz", authz{}, nil, &ready); st != http.StatusServiceUnavailable || ready.Ready {
		t.Fatalf("/readyz during the outage: %d", st)
	}

	proxy.restore()
	var ack frame
	eventually(t, 15*time.Second, "a send after Redis came back", func() bool {
		ack = b.sendText(conv, "o2", "after the outage") // a resend of the same message, as a client does
		return ack.Type == "ack"
	})
	if ack.Seq != 3 {
		t.Fatalf("first ack after the outage: seq %d, want 3", ack.Seq)
	}
	if m := a.expect("message", func(f frame) bool { return f.Seq == 3 }).msg(t); m.Body.Text != "after the outage" {
		t.Fatalf("agent got %+v", m)
	}

	// The other node's bus subscription comes back: typing (not stored) until it arrives there.
	eventually(t, 15*time.Second, "a push through the other node's bus", func() bool {
		b.send(map[string]any{"type": "typing", "conversation_id": conv})
		_, ok := remote.tryExpect("typing", nil, 300*time.Millisecond)
		return ok
	})
	if ack := b.sendText(conv, "o3", "the bus is back"); ack.Type != "ack" || ack.Seq != 4 {
		t.Fatalf("second ack after the outage: %+v", ack)
	}
	remote.expect("message", func(f frame) bool { return f.Seq == 4 })

	msgs, _ := syncSeqs(t, remote, conv, 0, 0)
	wantSeqs(t, "history after the outage", msgs, 1, 4)
	for _, m := range msgs {
		if m.ClientMsgID == "o-lost" || m.ClientMsgID == "o-rest" {
			t.Fatalf("a send refused during the outage was stored: %+v", m)
		}
	}
	eventually(t, 15*time.Second, "/readyz after the outage", func() bool {
		return api(t, "GET", base+"/readyz", authz{}, nil, nil) == http.StatusOK
	})
}

// warmMaxSeq returns the highest seq of a conversation in the MySQL warm store.
func warmMaxSeq(t *testing.T, db *sql.DB, conv int64) int64 {
	t.Helper()
	var seq sql.NullInt64
	if err := db.QueryRow("SELECT MAX(seq) FROM messages WHERE conversation_id = ?", conv).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	return seq.Int64
}

// TestRedisWipe: losing every Redis key after a flush never reuses a seq, keeps dedupe working and
// keeps history complete, also when the first frame after the loss is a resend.
func TestRedisWipe(t *testing.T) {
	t.Parallel()
	env := productionEnv(t)
	node := startNode(t, env, "")
	base := node.URL()
	shop := quickShop(t, base)
	buyer := shop.buyer(t, "walt")
	conv := startConversation(t, base, buyer, nil)
	b := dial(t, base, buyer)
	for i := int64(1); i <= 3; i++ {
		if ack := b.sendText(conv, fmt.Sprintf("w%d", i), fmt.Sprintf("text %d", i)); ack.Type != "ack" || ack.Seq != i {
			t.Fatalf("ack %d: %+v", i, ack)
		}
	}

	db, err := sql.Open("mysql", env.mysqlDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: env.redis})
	t.Cleanup(func() { rdb.Close() })
	wipe := func(flushedUpTo int64) {
		t.Helper()
		eventually(t, 15*time.Second, fmt.Sprintf("seq %d flushed to MariaDB", flushedUpTo), func() bool {
			return warmMaxSeq(t, db, conv) == flushedUpTo
		})
		testdb.DeletePrefix(context.Background(), rdb, env.prefix)
		if n, err := rdb.Exists(context.Background(), fmt.Sprintf("%s{c:%d}:seq", env.prefix, conv)).Result(); err != nil || n != 0 {
			t.Fatalf("seq counter survived the wipe: %d %v", n, err)
		}
	}

	wipe(3)
	if ack := b.sendText(conv, "w4", "text 4"); ack.Type != "ack" || ack.Seq != 4 || ack.Dup {
		t.Fatalf("first send after the wipe: %+v (want seq 4, not a reused seq)", ack)
	}
	if again := b.sendText(conv, "w1", "text 1"); again.Type != "ack" || again.Seq != 1 || !again.Dup {
		t.Fatalf("resend of w1 after the wipe: %+v (want seq 1, dup)", again)
	}
	msgs, _ := syncSeqs(t, b, conv, 0, 0)
	wantSeqs(t, "sync after the wipe", msgs, 1, 4)
	for _, m := range msgs {
		if m.ClientMsgID != fmt.Sprintf("w%d", m.Seq) || m.Body.Text != fmt.Sprintf("text %d", m.Seq) {
			t.Fatalf("message %d after the wipe: %+v", m.Seq, m)
		}
	}

	// Again, with a resend as the first frame after the loss.
	wipe(4)
	if again := b.sendText(conv, "w2", "text 2"); again.Type != "ack" || again.Seq != 2 || !again.Dup {
		t.Fatalf("resend of w2 as the first frame after a wipe: %+v", again)
	}
	if ack := b.sendText(conv, "w5", "text 5"); ack.Type != "ack" || ack.Seq != 5 || ack.Dup {
		t.Fatalf("send after the second wipe: %+v", ack)
	}
	msgs, _ = syncSeqs(t, b, conv, 0, 0)
	wantSeqs(t, "sync after the second wipe", msgs, 1, 5)

	eventually(t, 15*time.Second, "seq 5 flushed", func() bool { return warmMaxSeq(t, db, conv) == 5 })
	var rows, distinct int
	if err := db.QueryRow("SELECT COUNT(*), COUNT(DISTINCT client_msg_id) FROM messages WHERE conversation_id = ?", conv).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != 5 || distinct != 5 {
		t.Fatalf("warm store holds %d rows, %d distinct client_msg_ids; want 5 and 5", rows, distinct)
	}
	var ready struct {
		Ready          bool
		FlushConflicts int64 `json:"flush_conflicts"`
	}
	if st := api(t, "GET", base+"/readyz", authz{}, nil, &ready); st != http.StatusOK || ready.FlushConflicts != 0 {
		t.Fatalf("/readyz after the wipes: %d %+v", st, ready)
	}
}

// TestShutdownFlushes: a node stopped gracefully moves its hot tier to the warm store before it
// closes its backends, whatever its flush interval.
func TestShutdownFlushes(t *testing.T) {
	t.Parallel()
	env := productionEnv(t)
	node := startNode(t, env, "", "--flush-schedule=@every 1h")
	base := node.URL()
	buyer := quickShop(t, base).buyer(t, "hank")
	conv := startConversation(t, base, buyer, nil)
	b := dial(t, base, buyer)
	for i := int64(1); i <= 3; i++ {
		if ack := b.sendText(conv, fmt.Sprintf("h%d", i), "before the shutdown"); ack.Seq != i {
			t.Fatalf("ack %d: %+v", i, ack)
		}
	}
	db, err := sql.Open("mysql", env.mysqlDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if seq := warmMaxSeq(t, db, conv); seq != 0 {
		t.Fatalf("flushed before the first hourly flush: %d", seq)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := node.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if seq := warmMaxSeq(t, db, conv); seq != 3 {
		t.Fatalf("after Shutdown the warm store holds up to seq %d, want 3", seq)
	}
}
