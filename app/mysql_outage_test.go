package app_test

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/migrations/testdb"
)

// viaProxy rewrites a go-sql-driver DSN to reach MariaDB through the test's TCP proxy.
func viaProxy(t *testing.T, dsn string) (string, *tcpProxy) {
	t.Helper()
	i, j := strings.Index(dsn, "tcp("), strings.Index(dsn, ")/")
	if i < 0 || j < i {
		t.Fatalf("DSN %q has no tcp(host:port)", dsn)
	}
	proxy := startTCPProxy(t, dsn[i+4:j])
	return dsn[:i+4] + proxy.addr() + dsn[j:], proxy
}

// TestMySQLOutage: in MySQL-only mode, while MySQL is unreachable a send fails with EUNAVAILABLE and
// is not acknowledged, the WebSocket stays usable, and sends continue with the next seq afterwards.
func TestMySQLOutage(t *testing.T) {
	t.Parallel()
	dsn, proxy := viaProxy(t, testdb.MySQLDatabase(t))
	node := startNode(t, backendEnv{name: "mysql", mysqlDSN: dsn}, "")
	base := node.URL()
	shop := newShop(t, base, 0)
	buyer := shop.buyer(t, "mona")
	conv := startConversation(t, base, buyer, map[string]any{"order_id": "o-7"})
	b := dial(t, base, buyer)
	if ack := b.sendText(conv, "m1", "before the outage"); ack.Type != "ack" || ack.Seq != 1 {
		t.Fatalf("first ack: %+v", ack)
	}

	proxy.cut()
	f := b.sendText(conv, "m2", "during the outage")
	if f.Type != "error" || f.Code != "EUNAVAILABLE" {
		t.Fatalf("send while MySQL is down: %+v", f)
	}
	if strings.Contains(f.errText(), "127.0.0.1") || strings.Contains(f.errText(), "dial") {
		t.Fatalf("error message leaks backend details: %q", f.errText())
	}
	if p := b.request(map[string]any{"type": "ping"}); p.Type != "pong" {
		t.Fatalf("connection unusable during the outage: %+v", p)
	}

	proxy.restore()
	var ack frame
	eventually(t, 15*time.Second, "a send after MySQL returns", func() bool {
		ack = b.sendText(conv, "m2", "during the outage")
		return ack.Type == "ack"
	})
	if ack.Seq != 2 {
		t.Fatalf("after the outage: seq %d, want 2 (nothing was stored during it)", ack.Seq)
	}
	msgs, _ := syncSeqs(t, b, conv, 0, 0)
	wantSeqs(t, "history after the outage", msgs, 1, 2)
}

// TestMySQLOutageInProduction: with Redis up and MySQL down, sends are acknowledged from the hot tier
// and reach MySQL once it returns.
func TestMySQLOutageInProduction(t *testing.T) {
	t.Parallel()
	env := productionEnv(t)
	direct := env.mysqlDSN
	var proxy *tcpProxy
	env.mysqlDSN, proxy = viaProxy(t, direct)
	node := startNode(t, env, "")
	base := node.URL()
	shop := newShop(t, base, 0)
	buyer := shop.buyer(t, "nina")
	conv := startConversation(t, base, buyer, map[string]any{"product_id": "p"})
	b := dial(t, base, buyer)
	b.sendText(conv, "n1", "hello") // opens the session while MySQL is up

	proxy.cut()
	for i, cid := range []string{"n2", "n3"} {
		if ack := b.sendText(conv, cid, "while MySQL is down"); ack.Type != "ack" || ack.Seq != int64(i+2) {
			t.Fatalf("send with MySQL down: %+v", ack)
		}
	}
	proxy.restore()
	db, err := sql.Open("mysql", direct)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	eventually(t, 15*time.Second, "the flush catching up after MySQL returns", func() bool {
		return warmMaxSeq(t, db, conv) == 3
	})
}
