package app_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/shopdesk/shopdesk/app"
	"github.com/shopdesk/shopdesk/archive"
	"github.com/shopdesk/shopdesk/migrations"
	"github.com/shopdesk/shopdesk/session"
	"github.com/shopdesk/shopdesk/session/crashpoint"
)

// The crash tests kill a real shopdesk process at each named step of the Store Scheduler's jobs
// (a binary built with -tags crashpoint, stopped by SHOPDESK_CRASHPOINT), restart it without the
// crash point, let the jobs finish, and check the guarantees of issue 5: every acknowledged message
// is present exactly once across the tiers, in seq order, with no holes, through the history API and
// in the stores themselves, and the search index holds every message exactly once. They run in
// production mode: MariaDB and Redis on loopback, S3 served in this process by gofakes3.

const (
	crashMessages = 40 // acknowledged messages per conversation
	crashShops    = 2  // each with one conversation: two cold segments, archived one after the other
	hotKept       = 10 // messages per conversation the trim job leaves in Redis after a restart
	// waitLimit bounds each wait for a process or a job; generous, because make test loads the
	// machine: a wait that succeeds returns at once.
	waitLimit = time.Minute
	// jobsOff is a schedule that does not come round during a test: 00:00:00 on the 1st of January.
	jobsOff = "0 0 0 1 1 *"
)

// TestCrashPoints kills a node or a job run at each crash point and checks that a restart settles
// everything; that with S3 down in the middle of an archive run nothing leaves MySQL; and that two
// archive runs at once lose and double nothing.
func TestCrashPoints(t *testing.T) {
	t.Parallel()
	_ = productionEnv(t) // fails or skips before the binary is built when a server is missing
	bin := filepath.Join(t.TempDir(), "shopdesk-crashpoint")
	build := exec.Command("go", "build", "-tags", "crashpoint", "-o", bin, "github.com/shopdesk/shopdesk/cmd/shopdesk")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags crashpoint: %v\n%s", err, out)
	}

	// A crash in the flush: the hot messages were inserted into MySQL, their markers in Redis did
	// not move. The next flush inserts them again, idempotently.
	t.Run("production/flush.after_insert", func(t *testing.T) {
		t.Parallel()
		e := newCrashEnv(t, bin, app.ModeProduction)
		w := e.write(false, "--flush-schedule="+jobsOff, "--index-schedule="+jobsOff)
		if n := e.warmRows(t); n != 0 {
			t.Fatalf("%d warm rows before the flush", n)
		}
		e.crashServe("flush.after_insert", "--flush-schedule=@every 1s", "--index-schedule="+jobsOff)
		if n := e.warmRows(t); n == 0 {
			t.Fatal("the flush stopped before its insert")
		}
		e.settle(w)
	})

	// A crash in the index job: the bulk write went to the index, the cursor did not move. The next
	// run indexes the same messages again under the same document ids.
	for _, mode := range []app.Mode{app.ModeProduction, app.ModeEmbedded} {
		t.Run(string(mode)+"/index.after_bulk", func(t *testing.T) {
			t.Parallel()
			e := newCrashEnv(t, bin, mode)
			w := e.write(false, "--flush-schedule=@every 1s", "--index-schedule="+jobsOff)
			e.crashServe("index.after_bulk", "--index-schedule=* * * * * *")
			var cursors int64
			if err := e.db.Table("search_cursors").Count(&cursors).Error; err != nil || cursors != 0 {
				t.Fatalf("search cursors after the crash: %d %v", cursors, err)
			}
			e.settle(w)
		})
	}

	// Crashes in the archive job, run by hand as `shopdesk archive archive`, at each step between
	// writing a segment and deleting the warm rows it holds; @2 stops at the second shop's segment,
	// after the first shop's was done. Embedded mode (SQLite, the blob directory) runs a few of them.
	type archiveCase struct {
		mode  app.Mode
		point string
	}
	var cases []archiveCase
	for _, point := range []string{"archive.after_put", "archive.after_verify", "archive.after_manifest",
		"archive.before_delete", "archive.after_delete", "archive.after_put@2", "archive.before_delete@2"} {
		cases = append(cases, archiveCase{app.ModeProduction, point})
	}
	for _, point := range []string{"archive.after_put", "archive.after_manifest", "archive.before_delete@2"} {
		cases = append(cases, archiveCase{app.ModeEmbedded, point})
	}
	for _, c := range cases {
		t.Run(string(c.mode)+"/"+c.point, func(t *testing.T) {
			t.Parallel()
			e := newCrashEnv(t, bin, c.mode)
			w := e.write(true, "--flush-schedule=@every 1s", "--index-schedule=* * * * * *")
			if code, out := e.archive(c.point); code != crashpoint.ExitCode || !strings.Contains(out, "crashpoint: stopped at "+strings.Split(c.point, "@")[0]) {
				t.Fatalf("archive with %s: exit %d, want %d\n%s", c.point, code, crashpoint.ExitCode, out)
			}
			e.expireLeases()
			e.checkStores(w, false) // nothing lost, though a message may be both warm and cold
			if code, out := e.archive(""); code != 0 || !regexp.MustCompile(`ARCHIVE_JOB job=archive .* errors=0 `).MatchString(out) {
				t.Fatalf("archive rerun: exit %d\n%s", code, out)
			}
			if n := e.warmRows(t); n != 0 {
				t.Fatalf("%d warm rows left after the rerun", n)
			}
			e.settle(w)
		})
	}

	// Two archive runs at once, as when a run outlives its lease (a pause longer than the TTL) and
	// another process takes the job: the first run's segment upload is held back, its lease is made to
	// run out meanwhile, and a second run takes the lease and archives everything while the first,
	// unaware, goes on. Whatever the interleaving, one may be refused, nothing is lost or held twice,
	// and a later run settles what the race left.
	t.Run("production/two-archive-runs-at-once", func(t *testing.T) {
		t.Parallel()
		e := newCrashEnv(t, bin, app.ModeProduction)
		w := e.write(true, "--flush-schedule=@every 1s", "--index-schedule=* * * * * *")
		e.s3.putDelay.Store(int64(2 * time.Second))
		first := e.startArchive("")
		e.waitLease("job:archive")
		deadline := time.Now().Add(waitLimit)
		for e.s3.heldBack.Load() == 0 { // the first run's upload is under way
			if time.Now().After(deadline) {
				t.Fatalf("the first run uploaded no segment within %v\n%s", waitLimit, first.out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		e.expireLeases()
		e.s3.putDelay.Store(0)
		second := e.startArchive("")
		for _, c := range []*child{second, first} {
			if code := c.wait(t, 60*time.Second); code != 0 && code != 1 {
				t.Fatalf("overlapping archive run: exit %d\n%s", code, c.out.String())
			}
			t.Logf("overlapping archive run: exit %d, %s", c.code, regexp.MustCompile(`ARCHIVE_JOB .*`).FindString(c.out.String()))
		}
		if strings.Contains(second.out.String(), archive.ErrLeaseBusy.Error()) {
			t.Fatalf("the second run found the lease still held: the runs did not overlap\n%s", second.out.String())
		}
		e.checkStores(w, false)
		for range 2 { // the first settles what the race left; the second sweeps what the first replaced
			if code, out := e.archive(""); code != 0 {
				t.Fatalf("archive after the overlapping runs: exit %d\n%s", code, out)
			}
		}
		e.settle(w)
	})

	// S3 goes down between writing the first segment and reading it back: the run fails, no warm row
	// is deleted and no segment is recorded; once S3 is back, the next run archives everything.
	t.Run("production/s3-down-during-archive", func(t *testing.T) {
		t.Parallel()
		e := newCrashEnv(t, bin, app.ModeProduction)
		w := e.write(true, "--flush-schedule=@every 1s", "--index-schedule=* * * * * *")
		total := e.warmRows(t)
		e.s3.downAfterColdPut.Store(true)
		code, out := e.archive("")
		if code != 1 || !strings.Contains(out, "ARCHIVE_JOB job=archive") || !strings.Contains(out, fmt.Sprintf("errors=%d", crashShops)) {
			t.Fatalf("archive with S3 down: exit %d\n%s", code, out)
		}
		if !e.s3.off.Load() {
			t.Fatal("S3 never went down: no segment was written")
		}
		if n := e.warmRows(t); n != total {
			t.Fatalf("%d of %d warm rows left after a run with S3 down", n, total)
		}
		if st, err := archive.NewManifest(e.db).Stats(context.Background()); err != nil || st.Segments != 0 {
			t.Fatalf("manifest after a run with S3 down: %+v %v", st, err)
		}
		e.s3.off.Store(false)
		if code, out := e.archive(""); code != 0 {
			t.Fatalf("archive after S3 came back: exit %d\n%s", code, out)
		}
		e.settle(w)
	})
}

// crashEnv is one crash test's stores, shared by the in-process writer node and the child processes:
// a data directory (the embedded search index lives there) and, in production mode, a MariaDB
// database, a Redis prefix and an in-process S3; in embedded mode SQLite and the blob directory in
// the data directory.
type crashEnv struct {
	t       *testing.T
	bin     string
	env     backendEnv
	data    string
	s3      *faultyS3
	s3Args  []string
	db      *gorm.DB
	blobs   archive.Blobs
	until   string // archive runs move every period that ends by then: all of this test's messages
	storage []string
}

func newCrashEnv(t *testing.T, bin string, mode app.Mode) *crashEnv {
	t.Helper()
	ctx := context.Background()
	e := &crashEnv{t: t, bin: bin, env: embeddedEnv(), data: t.TempDir(), until: time.Now().AddDate(0, 2, 0).Format(time.RFC3339)}
	e.storage = []string{"--data=" + e.data, "--operator-token=" + operatorToken, "--bcrypt-cost=4"}
	var err error
	if mode == app.ModeEmbedded {
		e.db, err = migrations.OpenSQLite(ctx, filepath.Join(e.data, "shopdesk.db"))
		if err == nil {
			e.blobs, err = archive.NewLocalDir(filepath.Join(e.data, "blobs"))
		}
	} else {
		e.env = productionEnv(t)
		e.s3 = &faultyS3{Handler: gofakes3.New(s3mem.New()).Server()}
		srv := httptest.NewServer(e.s3)
		t.Cleanup(srv.Close)
		e.s3Args = []string{"--s3-endpoint=" + srv.URL, "--s3-bucket=crash", "--s3-access-key=k", "--s3-secret-key=s", "--s3-region=us-east-1"}
		e.storage = append(e.storage, "--mysql-dsn="+e.env.mysqlDSN, "--redis-addr="+e.env.redis, "--redis-prefix="+e.env.prefix)
		e.storage = append(e.storage, e.s3Args...)
		e.db, err = migrations.OpenMySQL(ctx, e.env.mysqlDSN)
		if err == nil {
			e.blobs, err = archive.NewS3(ctx, archive.S3Config{Endpoint: srv.URL, Bucket: "crash", AccessKey: "k", SecretKey: "s", Region: "us-east-1"})
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s, err := e.db.DB(); err == nil {
			s.Close()
		}
	})
	return e
}

// written is what the writer node had acknowledged, per conversation.
type written struct {
	convs []writtenConv
}

// writtenConv is one shop's conversation: its buyer reads the history, its manager searches.
type writtenConv struct {
	id      int64
	buyer   authz
	manager authz
	acked   map[int64]string // seq → client_msg_id
}

// write runs an in-process node with args over the test's stores, creates the shops and sends
// crashMessages messages in each conversation, keeping the acks. When settled, it waits until the
// index holds every message and shuts the node down (a last flush: every message warm); otherwise it
// kills the node, leaving unflushed messages in Redis only.
func (e *crashEnv) write(settled bool, args ...string) written {
	t := e.t
	t.Helper()
	// No trim here: a trim run at a minute's turn would drop these small conversations from the trim
	// set (nothing to trim at the default keep), and settle's trim, keeping fewer, would never see them.
	node := startNode(t, e.env, e.data, append(append(slices.Clone(e.s3Args), "--trim-schedule="+jobsOff), args...)...)
	base := node.URL()
	var w written
	for s := 0; s < crashShops; s++ {
		shop := newShop(t, base, 0)
		buyer := shop.buyer(t, "crash-buyer")
		c := writtenConv{id: startConversation(t, base, buyer, map[string]any{"product_id": "p1"}),
			buyer: buyer, manager: shop.manager, acked: map[int64]string{}}
		ws := dial(t, base, buyer)
		for i := 1; i <= crashMessages; i++ {
			cid := fmt.Sprintf("crash-%d-%d", s, i)
			ack := ws.sendText(c.id, cid, fmt.Sprintf("order %d message %d", s, i))
			if ack.Type != "ack" || ack.Seq <= 0 {
				t.Fatalf("send %s: %+v", cid, ack)
			}
			c.acked[ack.Seq] = cid
		}
		ws.ws.Close()
		w.convs = append(w.convs, c)
	}
	if !settled {
		node.Kill()
		return w
	}
	for _, c := range w.convs {
		e.waitIndexed(base, c, lastSeq(c))
	}
	shutdownInBackground(t, node)()
	return w
}

func lastSeq(c writtenConv) int64 {
	var last int64
	for seq := range c.acked {
		last = max(last, seq)
	}
	return last
}

// child is a running shopdesk process of the crash build.
type child struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	url  chan string
	done chan struct{}
	code int
}

// syncBuffer collects a child's output, read while the child writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var startedURL = regexp.MustCompile(`msg="shopdesk node started".* url=(\S+)`)

// start runs the crash build with args over the test's stores and the crash points in spec armed.
func (e *crashEnv) start(spec string, args ...string) *child {
	t := e.t
	t.Helper()
	cmd := exec.Command(e.bin, args...)
	// Only the flags given select the stores: no SHOPDESK_ setting of the test's environment leaks in.
	cmd.Env = slices.DeleteFunc(cmd.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "SHOPDESK_") })
	cmd.Env = append(cmd.Env, "SHOPDESK_CRASHPOINT="+spec)
	c := &child{cmd: cmd, out: &syncBuffer{}, url: make(chan string, 1), done: make(chan struct{})}
	cmd.Stdout = c.out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(c.out, line)
			if m := startedURL.FindStringSubmatch(line); m != nil {
				c.url <- m[1]
			}
		}
		_, _ = io.Copy(c.out, stderr)
		_ = cmd.Wait() // the exit code says it all; -1 when killed by a signal
		c.code = cmd.ProcessState.ExitCode()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("output of %v:\n%s", cmd.Args[:2], c.out.String())
		}
	})
	return c
}

// wait returns the child's exit code, failing the test if it runs on past d.
func (c *child) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-c.done:
		return c.code
	case <-time.After(d):
		t.Fatalf("%v still running after %v\n%s", c.cmd.Args[:2], d, c.out.String())
		return 0
	}
}

// serve starts a node of the crash build and returns its URL once it listens.
func (e *crashEnv) serve(spec string, args ...string) (*child, string) {
	t := e.t
	t.Helper()
	c := e.start(spec, append(append([]string{"serve", "--addr=127.0.0.1:0"}, e.storage...), args...)...)
	select {
	case u := <-c.url:
		return c, u
	case <-c.done:
		t.Fatalf("node exited with %d before it listened\n%s", c.code, c.out.String())
	case <-time.After(waitLimit):
		t.Fatalf("node did not start\n%s", c.out.String())
	}
	return nil, ""
}

// crashServe starts a node with the crash point armed and waits until it stops there.
func (e *crashEnv) crashServe(point string, args ...string) {
	t := e.t
	t.Helper()
	// It may stop before it says it listens: the jobs start first.
	c := e.start(point, append(append([]string{"serve", "--addr=127.0.0.1:0"}, e.storage...), args...)...)
	if code := c.wait(t, waitLimit); code != crashpoint.ExitCode || !strings.Contains(c.out.String(), "crashpoint: stopped at "+point) {
		t.Fatalf("node with %s: exit %d, want %d\n%s", point, code, crashpoint.ExitCode, c.out.String())
	}
	e.expireLeases()
}

// waitLease waits until someone holds the lease called name.
func (e *crashEnv) waitLease(name string) {
	t := e.t
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: e.env.redis})
	defer rdb.Close()
	deadline := time.Now().Add(waitLimit)
	for {
		n, err := rdb.Exists(context.Background(), e.env.prefix+"lease:"+name).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nobody took the lease %s within %v", name, waitLimit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expireLeases makes the leases a killed node held run out now. A dead holder keeps a job's lease
// until its TTL (minutes: the index job's is 5) so that no two nodes ever run the job at once; the
// test does not wait that long, it lets Redis expire the keys as it would then.
func (e *crashEnv) expireLeases() {
	t := e.t
	t.Helper()
	if e.env.redis == "" {
		return // embedded mode: leases live in the process, and died with it
	}
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: e.env.redis})
	defer rdb.Close()
	keys, err := rdb.Keys(ctx, e.env.prefix+"lease:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if ttl, err := rdb.PTTL(ctx, k).Result(); err != nil || ttl <= 0 {
			t.Fatalf("lease %s has no TTL (%v %v): a dead holder would block its job forever", k, ttl, err)
		}
		if err := rdb.PExpire(ctx, k, time.Millisecond).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// archive runs `shopdesk archive archive --until` with the crash points in spec and returns its exit
// code and output.
func (e *crashEnv) archive(spec string) (int, string) {
	e.t.Helper()
	c := e.startArchive(spec)
	code := c.wait(e.t, 60*time.Second)
	return code, c.out.String()
}

// startArchive starts `shopdesk archive archive --until` with the crash points in spec.
func (e *crashEnv) startArchive(spec string) *child {
	e.t.Helper()
	return e.start(spec, append([]string{"archive", "archive", "--until", e.until}, e.storage...)...)
}

// settle restarts a node without crash points, lets its jobs finish and checks every guarantee:
// through the API while it runs, in the stores once it has stopped.
func (e *crashEnv) settle(w written) {
	t := e.t
	t.Helper()
	// The trim job keeps only the newest few messages hot, so that the history pages cross from Redis
	// into MySQL or the cold segments.
	c, base := e.serve("", "--flush-schedule=@every 1s", "--index-schedule=* * * * * *",
		"--trim-schedule=* * * * * *", fmt.Sprintf("--hot-keep-messages=%d", hotKept), "--hot-keep-hours=0")
	for _, conv := range w.convs {
		e.waitTrimmed(conv)
		last := e.waitHistory(base, conv)
		e.waitIndexed(base, conv, last)
		e.checkSearch(base, conv, last)
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := c.wait(t, waitLimit); code != 0 {
		t.Fatalf("node exit %d after SIGTERM\n%s", code, c.out.String())
	}
	e.checkStores(w, true)
}

// waitTrimmed waits until the trim job has left at most hotKept of the conversation's messages in
// Redis (production mode).
func (e *crashEnv) waitTrimmed(c writtenConv) {
	t := e.t
	t.Helper()
	if e.env.redis == "" {
		return
	}
	rdb := redis.NewClient(&redis.Options{Addr: e.env.redis})
	defer rdb.Close()
	deadline := time.Now().Add(waitLimit)
	for {
		n, err := rdb.ZCard(context.Background(), fmt.Sprintf("%s{c:%d}:log", e.env.prefix, c.id)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n <= hotKept {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("conversation %d: %d messages still hot after %v, want at most %d", c.id, n, waitLimit, hotKept)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitHistory pages through the conversation's history, forwards and backwards, until it holds
// every acknowledged message (the flush may still be moving them), and checks it: seqs 1..last, each
// once, in order, each acknowledged one with its client_msg_id. It returns the last seq.
func (e *crashEnv) waitHistory(base string, c writtenConv) int64 {
	t := e.t
	t.Helper()
	want := lastSeq(c)
	deadline := time.Now().Add(waitLimit)
	for {
		fwd := e.pageHistory(base, c, true)
		if int64(len(fwd)) >= want || time.Now().After(deadline) {
			bwd := e.pageHistory(base, c, false)
			checkSeqs(t, "history forwards", c, fwd)
			checkSeqs(t, "history backwards", c, bwd)
			return fwd[len(fwd)-1].Seq
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pageHistory reads the whole conversation in pages of 15, forwards from seq 0 or backwards from
// the end, and returns it in seq order.
func (e *crashEnv) pageHistory(base string, c writtenConv, forwards bool) []session.Message {
	t := e.t
	t.Helper()
	var all []session.Message
	cursor := int64(0)
	if !forwards {
		cursor = 1 << 62
	}
	for range 1000 {
		var page struct{ Messages []session.Message }
		url := fmt.Sprintf("%s/api/conversations/%d/messages?after=%d&limit=15", base, c.id, cursor)
		if !forwards {
			url = fmt.Sprintf("%s/api/conversations/%d/messages?before=%d&limit=15", base, c.id, cursor)
		}
		if st := api(t, "GET", url, c.buyer, nil, &page); st != http.StatusOK {
			t.Fatalf("GET %s: %d", url, st)
		}
		if len(page.Messages) == 0 {
			break
		}
		if forwards {
			all = append(all, page.Messages...)
			cursor = page.Messages[len(page.Messages)-1].Seq
		} else {
			all = append(slices.Clone(page.Messages), all...)
			cursor = page.Messages[0].Seq
		}
	}
	return all
}

// checkSeqs: msgs are seqs 1..n of the conversation, in order, each once, holding every acknowledged
// message under its client_msg_id.
func checkSeqs(t *testing.T, what string, c writtenConv, msgs []session.Message) {
	t.Helper()
	for i, m := range msgs {
		if m.Seq != int64(i+1) || m.ConversationID != c.id {
			t.Fatalf("%s of conversation %d: message %d is %d/%d, want seq %d (a hole, a duplicate or out of order)", what, c.id, i, m.ConversationID, m.Seq, i+1)
		}
		if cid, ok := c.acked[m.Seq]; ok && m.ClientMsgID != cid {
			t.Fatalf("%s of conversation %d: seq %d holds %q, acknowledged as %q", what, c.id, m.Seq, m.ClientMsgID, cid)
		}
	}
	if int64(len(msgs)) < lastSeq(c) {
		t.Fatalf("%s of conversation %d: %d messages, but seq %d was acknowledged", what, c.id, len(msgs), lastSeq(c))
	}
}

// search returns one page of the conversation's documents in the index, newest first.
func (e *crashEnv) search(base string, c writtenConv, offset int) (total int64, seqs []int64) {
	t := e.t
	t.Helper()
	var res struct {
		Total int64
		Hits  []struct {
			ConversationID int64 `json:"conversation_id"`
			Seq            int64
		}
	}
	url := fmt.Sprintf("%s/api/search?conversation_id=%d&limit=100&offset=%d", base, c.id, offset)
	if st := api(t, "GET", url, c.manager, nil, &res); st != http.StatusOK {
		t.Fatalf("GET %s: %d", url, st)
	}
	for _, h := range res.Hits {
		if h.ConversationID != c.id {
			t.Fatalf("search of conversation %d found a message of %d", c.id, h.ConversationID)
		}
		seqs = append(seqs, h.Seq)
	}
	return res.Total, seqs
}

// waitIndexed waits until the index holds at least last documents of the conversation.
func (e *crashEnv) waitIndexed(base string, c writtenConv, last int64) {
	t := e.t
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		total, _ := e.search(base, c, 0)
		if total >= last {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("conversation %d: %d documents in the index after %v, want %d", c.id, total, waitLimit, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkSearch: the index holds each of the conversation's messages 1..last exactly once.
func (e *crashEnv) checkSearch(base string, c writtenConv, last int64) {
	t := e.t
	t.Helper()
	var all []int64
	for offset := 0; ; offset += 100 {
		total, seqs := e.search(base, c, offset)
		if total != last {
			t.Fatalf("conversation %d: %d documents in the index, want %d", c.id, total, last)
		}
		if all = append(all, seqs...); len(seqs) == 0 || len(all) >= int(total) {
			break
		}
	}
	slices.Sort(all)
	for i, seq := range all {
		if seq != int64(i+1) {
			t.Fatalf("conversation %d: the index holds seqs %v, want 1..%d once each", c.id, all, last)
		}
	}
	if int64(len(all)) != last {
		t.Fatalf("conversation %d: %d documents listed, want %d", c.id, len(all), last)
	}
}

// warmRows counts the messages in MySQL.
func (e *crashEnv) warmRows(t *testing.T) int64 {
	t.Helper()
	var n int64
	if err := e.db.Model(&session.Message{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// checkStores reads the stores themselves: the warm rows in MySQL and every segment the manifest
// records, fetched from S3 and decoded. Together they hold each conversation's seqs 1..last with
// the acknowledged client_msg_ids and nothing else. When settled (no run stopped halfway) no
// message is in two places, every segment is done, and S3 holds no object the manifest does not
// record; otherwise a message may be both warm and cold, which the next run resolves.
func (e *crashEnv) checkStores(w written, settled bool) {
	t := e.t
	t.Helper()
	ctx := context.Background()
	where := map[int64]map[int64][]string{} // conversation → seq → where it was found
	var rows []session.Message
	if err := e.db.Order("conversation_id, seq").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	found := func(m session.Message, place string) {
		if where[m.ConversationID] == nil {
			where[m.ConversationID] = map[int64][]string{}
		}
		where[m.ConversationID][m.Seq] = append(where[m.ConversationID][m.Seq], place+" "+m.ClientMsgID)
	}
	for _, m := range rows {
		found(m, "warm")
	}
	recs, err := archive.NewManifest(e.db).Segments(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, rec := range recs {
		if settled && rec.State != archive.StateDone {
			t.Errorf("segment %s left %s", rec.ObjectKey, rec.State)
		}
		keys[rec.ObjectKey] = true
		r, err := e.blobs.Get(ctx, rec.ObjectKey)
		if err != nil {
			t.Fatalf("segment %s: %v", rec.ObjectKey, err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if archive.Checksum(data) != rec.Checksum {
			t.Fatalf("segment %s: checksum differs from the manifest's", rec.ObjectKey)
		}
		seg, err := archive.DecodeSegment(data)
		if err != nil {
			t.Fatalf("segment %s: %v", rec.ObjectKey, err)
		}
		if int64(len(seg.Messages)) != rec.MessageCount {
			t.Fatalf("segment %s: %d messages, the manifest says %d", rec.ObjectKey, len(seg.Messages), rec.MessageCount)
		}
		for _, m := range seg.Messages {
			found(m, "cold "+rec.ObjectKey)
		}
	}
	if settled {
		objs, err := e.blobs.List(ctx, "cold/")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if !keys[o.Key] {
				t.Errorf("object %s is not in the manifest", o.Key)
			}
		}
	}
	if len(where) != len(w.convs) {
		t.Fatalf("messages of %d conversations in the stores, want %d", len(where), len(w.convs))
	}
	for _, c := range w.convs {
		seqs := where[c.id]
		last := int64(len(seqs))
		if last < lastSeq(c) {
			t.Fatalf("conversation %d: %d seqs in the stores, but seq %d was acknowledged", c.id, last, lastSeq(c))
		}
		for seq := int64(1); seq <= last; seq++ {
			places := seqs[seq]
			if len(places) == 0 {
				t.Fatalf("conversation %d: seq %d is in no tier (a hole)", c.id, seq)
			}
			if settled && len(places) != 1 {
				t.Fatalf("conversation %d: seq %d is in %d places: %v", c.id, seq, len(places), places)
			}
			for _, p := range places {
				if cid, ok := c.acked[seq]; ok && !strings.HasSuffix(p, " "+cid) {
					t.Fatalf("conversation %d: seq %d is %q, acknowledged as %q", c.id, seq, p, cid)
				}
			}
		}
	}
}

// faultyS3 is an S3 server that can be made to fail: while off it answers every request 503; once
// downAfterColdPut is set it goes off by itself right after the next segment is stored, so that the
// archive job finds S3 down when it reads the segment back; putDelay makes segment uploads slow.
type faultyS3 struct {
	http.Handler
	off              atomic.Bool
	downAfterColdPut atomic.Bool
	putDelay         atomic.Int64 // holds back segment uploads that arrive while it is set
	heldBack         atomic.Int64 // how many uploads were held back
}

func (s *faultyS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.off.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if d := s.putDelay.Load(); d > 0 && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/cold/") {
		s.heldBack.Add(1)
		time.Sleep(time.Duration(d))
	}
	s.Handler.ServeHTTP(w, r)
	if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/cold/") && s.downAfterColdPut.CompareAndSwap(true, false) {
		s.off.Store(true)
	}
}
