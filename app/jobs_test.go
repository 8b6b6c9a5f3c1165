package app_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopdesk/shopdesk/app"
	"github.com/shopdesk/shopdesk/session"
)

// jobLine matches the summary line of `shopdesk archive <job>`.
var jobLine = regexp.MustCompile(`(?m)^ARCHIVE_JOB job=(\w+) processed=(\d+) moved=(\d+) deleted=(\d+) errors=(\d+) seconds=[0-9.]+$`)

// jobRun is what one `shopdesk archive <job>` printed.
type jobRun struct {
	code                                int
	processed, moved, deleted, errCount int64
	stdout, stderr                      string
}

// runArchive runs `shopdesk archive` with the node's store flags and parses its summary line.
func runArchive(t *testing.T, env backendEnv, data string, args ...string) jobRun {
	t.Helper()
	full := append([]string{"archive"}, args...)
	full = append(full, "--data="+data, "--operator-token="+operatorToken)
	if env.mysqlDSN != "" {
		full = append(full, "--mysql-dsn="+env.mysqlDSN)
	}
	if env.redis != "" {
		full = append(full, "--redis-addr="+env.redis, "--redis-prefix="+env.prefix)
	}
	var out, errOut bytes.Buffer
	r := jobRun{code: app.Main(full, &out, &errOut)}
	r.stdout, r.stderr = out.String(), errOut.String()
	if strings.Contains(r.stderr, "\r") {
		t.Fatalf("a progress bar on a stderr that is no terminal: %q", r.stderr)
	}
	if m := jobLine.FindStringSubmatch(r.stdout); m != nil {
		if m[1] != args[0] {
			t.Fatalf("summary of job %s: %q", args[0], r.stdout)
		}
		n := func(s string) int64 { v, _ := strconv.ParseInt(s, 10, 64); return v }
		r.processed, r.moved, r.deleted, r.errCount = n(m[2]), n(m[3]), n(m[4]), n(m[5])
	}
	return r
}

// jobsStatus is the part of `shopdesk archive status --json` and GET /api/operator/jobs tests read.
type jobsStatus struct {
	Mode  string
	Node  string
	Tiers struct {
		Hot *struct {
			DirtyConversations int64 `json:"dirty_conversations"`
			UnflushedMessages  int64 `json:"unflushed_messages"`
			TrimConversations  int64 `json:"trim_conversations"`
		}
		WarmMessages int64 `json:"warm_messages"`
		Cold         *struct{ Messages, Segments int64 }
		Index        *struct {
			PendingMessages int64 `json:"pending_messages"`
			ShopsBehind     int   `json:"shops_behind"`
		}
	}
	Jobs []struct {
		Name    string
		Spec    string
		LastRun *struct {
			Job                               string
			Node                              string
			Processed, Moved, Deleted, Errors int64
			Error                             string
		} `json:"last_run"`
		ThisNode *struct {
			Runs     int64
			Failures int64
		} `json:"this_node"`
	}
	Errors []string
}

func (s jobsStatus) job(t *testing.T, name string) int {
	t.Helper()
	for i, j := range s.Jobs {
		if j.Name == name {
			return i
		}
	}
	t.Fatalf("job %s not in the status: %+v", name, s.Jobs)
	return -1
}

// TestArchiveJobsCLI: `shopdesk archive flush|trim|index` run each job by hand in both modes and end
// with the summary line; `status --json` reports the tiers and each job's last run from the run log;
// bad jobs and flags are refused with exit code 2 and change nothing.
func TestArchiveJobsCLI(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		data := t.TempDir()
		// No scheduled flush: the messages stay hot for the command to move.
		node := startNode(t, env, data, "--flush-schedule=@every 1h", "--index-schedule=@every 1h")
		base := node.URL()
		shop := newShop(t, base, 0)
		buyer := shop.buyer(t, "olga")
		conv := startConversation(t, base, buyer, map[string]any{"product_id": "p"})
		b := dial(t, base, buyer)
		const n = 5
		for i := 1; i <= n; i++ {
			if ack := b.sendText(conv, fmt.Sprintf("o%d", i), fmt.Sprintf("message %d", i)); ack.Seq != int64(i) {
				t.Fatalf("ack %d: %+v", i, ack)
			}
		}
		b.ws.Close()
		hot := env.name == "production"

		// Refusals first: nothing runs, nothing is recorded.
		for _, args := range [][]string{
			{"compact"}, {"flush", "--shop", "1"}, {"trim", "--until", time.Now().Format(time.RFC3339)},
			{"flush", "--json"}, {"status", "--shop", "1"}, {"archive", "--shop", "-3"}, {"flush", "extra"},
		} {
			if r := runArchive(t, env, data, args...); r.code != 2 || r.stderr == "" || r.stdout != "" {
				t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
			}
		}

		// The index goes no further than what is surely warm: what a flush that started at least
		// session.AppendGrace after the messages were written moved, or the warm store's messages that
		// old. Wait that long so that the flush and index commands below see all of them.
		time.Sleep(session.AppendGrace)
		r := runArchive(t, env, data, "flush")
		want := int64(0)
		if hot {
			want = n // everything was hot; embedded mode has no hot tier
		}
		if r.code != 0 || r.processed != want || r.moved != want || r.errCount != 0 {
			t.Fatalf("flush: %+v", r)
		}
		// The trim keeps nothing in Redis but what is not warm; embedded mode has no hot tier.
		r = runArchive(t, env, data, "trim", "--hot-keep-messages=0", "--hot-keep-hours=0")
		if r.code != 0 || r.deleted != want || r.errCount != 0 || (!hot && r.processed != 0) {
			t.Fatalf("trim: %+v", r)
		}
		// The history is whole after the trim.
		var page struct{ Messages []struct{ Seq int64 } }
		if st := api(t, "GET", fmt.Sprintf("%s/api/conversations/%d/messages?before=100&limit=50", base, conv), shop.manager, nil, &page); st != http.StatusOK || len(page.Messages) != n {
			t.Fatalf("history after the trim: %d %+v", st, page.Messages)
		}

		// The index is the serving node's in embedded mode: the command runs once the node is gone.
		shutdownInBackground(t, node)()
		r = runArchive(t, env, data, "index", "--shop", strconv.FormatInt(shop.id, 10))
		if r.code != 0 || r.processed != n || r.errCount != 0 {
			t.Fatalf("index: %+v", r)
		}
		if r = runArchive(t, env, data, "index"); r.code != 0 || r.processed != 0 {
			t.Fatalf("index again: %+v", r)
		}
		if r = runArchive(t, env, data, "index", "--shop", "999999"); r.code != 1 {
			t.Fatalf("index of a missing shop: %+v", r)
		}

		r = runArchive(t, env, data, "status", "--json")
		var st jobsStatus
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
			t.Fatalf("status: exit %d %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
		}
		if st.Mode != env.name || st.Tiers.WarmMessages != n || st.Tiers.Cold == nil || st.Tiers.Index == nil ||
			st.Tiers.Index.PendingMessages != 0 || (st.Tiers.Hot != nil) != hot || len(st.Errors) != 0 {
			t.Fatalf("status tiers: %+v", st)
		}
		if hot && (st.Tiers.Hot.UnflushedMessages != 0 || st.Tiers.Hot.DirtyConversations != 0) {
			t.Fatalf("hot tier after the flush: %+v", *st.Tiers.Hot)
		}
		for name, processed := range map[string]int64{"flush": want, "index": 0} {
			j := st.Jobs[st.job(t, name)]
			if j.LastRun == nil || j.LastRun.Processed != processed || !strings.HasPrefix(j.LastRun.Node, "cli@") {
				t.Fatalf("last %s run: %+v", name, j.LastRun)
			}
		}
		if j := st.Jobs[st.job(t, "archive")]; j.LastRun != nil || j.Spec != "0 30 3 * * *" {
			t.Fatalf("archive never ran: %+v", j)
		}
		if j := st.Jobs[st.job(t, "index")]; j.LastRun.Errors != 0 {
			t.Fatalf("last index run: %+v", j.LastRun)
		}
		r = runArchive(t, env, data, "status")
		if r.code != 0 || !bytes.Contains([]byte(r.stdout), []byte("warm:  5 messages")) {
			t.Fatalf("status text: %d %q %q", r.code, r.stdout, r.stderr)
		}
	})
}

// TestJobsEndpoint: GET /api/operator/jobs shows the scheduler's jobs with this node's runs and the
// tiers; only the operator may read it.
func TestJobsEndpoint(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		node := startNode(t, env, "")
		base := node.URL()
		shop := newShop(t, base, 0)
		for _, who := range []authz{{}, shop.manager} {
			if st := api(t, "GET", base+"/api/operator/jobs", who, nil, nil); st != http.StatusUnauthorized {
				t.Fatalf("jobs as %+v: %d", who, st)
			}
		}
		var st jobsStatus
		eventually(t, 15*time.Second, "a flush run recorded", func() bool {
			st = jobsStatus{}
			if code := api(t, "GET", base+"/api/operator/jobs", authz{token: operatorToken}, nil, &st); code != http.StatusOK {
				t.Fatalf("jobs: %d", code)
			}
			j := st.Jobs[st.job(t, "flush")]
			return j.ThisNode != nil && j.ThisNode.Runs > 0 && j.LastRun != nil
		})
		if st.Node == "" || st.Mode != env.name || len(st.Jobs) < 4 || len(st.Errors) != 0 {
			t.Fatalf("jobs: %+v", st)
		}
		if j := st.Jobs[st.job(t, "flush")]; j.Spec != "@every 1s" || j.LastRun.Node != st.Node || j.ThisNode.Failures != 0 {
			t.Fatalf("flush job: %+v %+v", j, *j.LastRun)
		}
	})
}

// TestTrimWithMySQLDown: in production, while MySQL is unreachable the flush fails and retries, and
// the trim, running all along with a policy that keeps nothing, removes nothing that is not warm;
// once MySQL returns everything is flushed, then trimmed, and the history is whole.
func TestTrimWithMySQLDown(t *testing.T) {
	t.Parallel()
	env := productionEnv(t)
	direct := env.mysqlDSN
	var proxy *tcpProxy
	env.mysqlDSN, proxy = viaProxy(t, direct)
	node := startNode(t, env, "", "--trim-schedule=* * * * * *", "--hot-keep-messages=0", "--hot-keep-hours=0")
	base := node.URL()
	shop := newShop(t, base, 0)
	buyer := shop.buyer(t, "tess")
	conv := startConversation(t, base, buyer, map[string]any{"product_id": "p"})
	b := dial(t, base, buyer)
	if ack := b.sendText(conv, "t1", "before the outage"); ack.Seq != 1 { // opens the session while MySQL is up
		t.Fatalf("ack 1: %+v", ack)
	}
	rdb := redis.NewClient(&redis.Options{Addr: env.redis})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	logKey := fmt.Sprintf("%s{c:%d}:log", env.prefix, conv)
	hotSeqs := func() []int64 {
		t.Helper()
		z, err := rdb.ZRangeWithScores(ctx, logKey, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		out := make([]int64, len(z))
		for i, m := range z {
			out[i] = int64(m.Score)
		}
		return out
	}
	// The runs the node has made of a job, from its own scheduler.
	runs := func(name string) (runs, failures int64) {
		var st jobsStatus
		if code := api(t, "GET", base+"/api/operator/jobs", authz{token: operatorToken}, nil, &st); code != http.StatusOK {
			t.Fatalf("jobs: %d", code)
		}
		j := st.Jobs[st.job(t, name)]
		return j.ThisNode.Runs, j.ThisNode.Failures
	}

	proxy.cut()
	for i := int64(2); i <= 4; i++ {
		if ack := b.sendText(conv, fmt.Sprintf("t%d", i), "while MySQL is down"); ack.Type != "ack" || ack.Seq != i {
			t.Fatalf("send with MySQL down: %+v", ack)
		}
	}
	_, flushFailed := runs("flush")
	trims, _ := runs("trim")
	eventually(t, 30*time.Second, "failed flushes and trims run during the outage", func() bool {
		_, f := runs("flush")
		n, _ := runs("trim")
		return f >= flushFailed+2 && n >= trims+2
	})
	// Seq 1 may have been flushed (and then trimmed) before the cut; nothing after the marker is gone.
	marker, err := rdb.Get(ctx, fmt.Sprintf("%s{c:%d}:flushed", env.prefix, conv)).Int64()
	if err != nil && err != redis.Nil || marker > 1 {
		t.Fatalf("flushed marker during the outage: %d %v", marker, err)
	}
	hot := hotSeqs()
	for seq := marker + 1; seq <= 4; seq++ {
		if !slices.Contains(hot, seq) {
			t.Fatalf("hot log during the outage: %v, marker %d: unflushed seq %d trimmed", hot, marker, seq)
		}
	}

	proxy.restore()
	db, err := sql.Open("mysql", direct)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	eventually(t, 30*time.Second, "the flush catching up after MySQL returns", func() bool { return warmMaxSeq(t, db, conv) == 4 })
	eventually(t, 15*time.Second, "the trim after the flush", func() bool { return len(hotSeqs()) == 0 })
	msgs, _ := syncSeqs(t, b, conv, 0, 0)
	wantSeqs(t, "history after the outage and the trims", msgs, 1, 4)
}

// TestTrimKeepsHistory: pages of a conversation, read by a manager (who sees recalls marked) and by
// the buyer (from whom recalled messages are hidden), are the same before and after a trim that
// leaves two messages in Redis; a resend of a trimmed message is still deduplicated.
func TestTrimKeepsHistory(t *testing.T) {
	t.Parallel()
	env := productionEnv(t)
	data := t.TempDir()
	node := startNode(t, env, data, "--trim-schedule=@every 1h")
	base := node.URL()
	shop := newShop(t, base, 0)
	buyer := shop.buyer(t, "rita")
	conv := startConversation(t, base, buyer, map[string]any{"product_id": "p"})
	b := dial(t, base, buyer)
	for i := int64(1); i <= 6; i++ {
		if ack := b.sendText(conv, fmt.Sprintf("r%d", i), fmt.Sprintf("text %d", i)); ack.Seq != i {
			t.Fatalf("ack %d: %+v", i, ack)
		}
	}
	if f := b.request(map[string]any{"type": "send", "client_msg_id": "r7", "conversation_id": conv,
		"body": map[string]any{"type": "recall", "recall_seq": 3}}); f.Type != "ack" || f.Seq != 7 {
		t.Fatalf("recall: %+v", f)
	}
	b.sendText(conv, "r8", "text 8")
	db, err := sql.Open("mysql", env.mysqlDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	eventually(t, 15*time.Second, "everything flushed", func() bool { return warmMaxSeq(t, db, conv) == 8 })

	queries := []string{"after=0", "after=0&limit=3", "after=4&limit=2", "before=9&limit=4", "before=7&limit=5", "before=3"}
	read := func() map[string]string {
		out := map[string]string{}
		for _, who := range []struct {
			name string
			auth authz
		}{{"manager", shop.manager}, {"buyer", buyer}} {
			for _, q := range queries {
				var page struct{ Messages json.RawMessage }
				if st := api(t, "GET", fmt.Sprintf("%s/api/conversations/%d/messages?%s", base, conv, q), who.auth, nil, &page); st != http.StatusOK {
					t.Fatalf("%s %s: %d", who.name, q, st)
				}
				out[who.name+" "+q] = string(page.Messages)
			}
		}
		return out
	}
	before := read()
	if !bytes.Contains([]byte(before["manager after=0"]), []byte(`"recalled":true`)) {
		t.Fatalf("the manager's page does not mark the recall: %s", before["manager after=0"])
	}
	r := runArchive(t, env, data, "trim", "--hot-keep-messages=2", "--hot-keep-hours=0")
	if r.code != 0 || r.deleted != 6 {
		t.Fatalf("trim: %+v", r)
	}
	rdb := redis.NewClient(&redis.Options{Addr: env.redis})
	t.Cleanup(func() { rdb.Close() })
	if n, err := rdb.ZCard(context.Background(), fmt.Sprintf("%s{c:%d}:log", env.prefix, conv)).Result(); err != nil || n != 2 {
		t.Fatalf("hot messages after the trim: %d %v", n, err)
	}
	after := read()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: before the trim %s\nafter %s", k, v, after[k])
		}
	}
	if again := b.sendText(conv, "r2", "text 2"); again.Type != "ack" || again.Seq != 2 || !again.Dup {
		t.Fatalf("resend of a trimmed message: %+v", again)
	}
	if ack := b.sendText(conv, "r9", "text 9"); ack.Seq != 9 || ack.Dup {
		t.Fatalf("send after the trim: %+v", ack)
	}
}

// waitIndexCaughtUp waits until the node's warm store holds at least warm messages and its index
// job has taken all of them: the archive job moves nothing the index has not seen.
func waitIndexCaughtUp(t *testing.T, base string, warm int64) {
	t.Helper()
	eventually(t, 20*time.Second, fmt.Sprintf("%d warm messages indexed", warm), func() bool {
		var st jobsStatus
		if code := api(t, "GET", base+"/api/operator/jobs", authz{token: operatorToken}, nil, &st); code != http.StatusOK {
			t.Fatalf("jobs: %d", code)
		}
		return st.Tiers.WarmMessages >= warm && st.Tiers.Index != nil && st.Tiers.Index.PendingMessages == 0
	})
}
