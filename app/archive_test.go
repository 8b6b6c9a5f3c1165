package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/shopdesk/shopdesk/app"
	"github.com/shopdesk/shopdesk/session"
)

// TestArchiveCommand: `shopdesk archive archive` moves a conversation's warm messages to cold
// segments (a local directory in embedded mode, S3 in production mode), and the history API still
// returns every message, in order, from a node started afterwards; uploads share the same store.
func TestArchiveCommand(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		data := t.TempDir()
		var extra []string
		if env.name == "production" {
			s3 := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
			t.Cleanup(s3.Close)
			extra = append(extra, "--s3-endpoint="+s3.URL, "--s3-bucket=archive-test", "--s3-access-key=k", "--s3-secret-key=s")
		}
		node := startNode(t, env, data, append(slices.Clone(extra), "--index-schedule=* * * * * *")...)
		base := node.URL()
		shop := newShop(t, base, 0)
		buyer := shop.buyer(t, "hana")
		conv := startConversation(t, base, buyer, map[string]any{"product_id": "p"})
		b := dial(t, base, buyer)
		const n = 7
		for i := 1; i <= n; i++ {
			if ack := b.sendText(conv, fmt.Sprintf("h%d", i), fmt.Sprintf("message %d", i)); ack.Seq != int64(i) {
				t.Fatalf("ack %d: %+v", i, ack)
			}
		}
		img := smallPNG(t)
		code, up := uploadFile(t, base, buyer, "cup.png", "image/png", img)
		if code != http.StatusOK && code != http.StatusCreated {
			t.Fatalf("upload: %d", code)
		}
		b.ws.Close()
		waitIndexCaughtUp(t, base, n) // the archive job moves only what the index has taken
		shutdownInBackground(t, node)()

		args := []string{"archive", "archive", "--until", time.Now().AddDate(0, 2, 0).Format(time.RFC3339),
			"--data=" + data, "--operator-token=" + operatorToken}
		if env.mysqlDSN != "" {
			args = append(args, "--mysql-dsn="+env.mysqlDSN, "--redis-addr="+env.redis, "--redis-prefix="+env.prefix)
		}
		args = append(args, extra...)
		var out, errOut bytes.Buffer
		if code := app.Main(args, &out, &errOut); code != 0 {
			t.Fatalf("archive: exit %d\n%s\n%s", code, out.String(), errOut.String())
		}
		line := regexp.MustCompile(`ARCHIVE_JOB job=archive processed=(\d+) moved=(\d+) deleted=(\d+) errors=0 seconds=[0-9.]+\n$`).FindStringSubmatch(out.String())
		if line == nil || line[2] != fmt.Sprint(n) || line[3] != fmt.Sprint(n) {
			t.Fatalf("summary line: %q (stderr %s)", out.String(), errOut.String())
		}
		out.Reset()
		statusArgs := append([]string{"archive", "status", "--json"}, args[4:]...)
		if code := app.Main(statusArgs, &out, &errOut); code != 0 {
			t.Fatalf("status: exit %d %s", code, errOut.String())
		}
		var st struct {
			Tiers struct {
				WarmMessages int64 `json:"warm_messages"`
				Cold         struct{ Messages, Segments int64 }
			}
		}
		if err := json.Unmarshal(out.Bytes(), &st); err != nil || st.Tiers.WarmMessages != 0 || st.Tiers.Cold.Messages != n || st.Tiers.Cold.Segments != 1 {
			t.Fatalf("status: %s %v", out.String(), err)
		}

		// A node started afterwards pages the whole conversation out of the cold tier.
		node = startNode(t, env, data, extra...)
		base = node.URL()
		var page struct{ Messages []session.Message }
		if st := api(t, "GET", fmt.Sprintf("%s/api/conversations/%d/messages?after=0", base, conv), buyer, nil, &page); st != http.StatusOK || len(page.Messages) != n {
			t.Fatalf("history after archiving: %d %+v", st, page.Messages)
		}
		for i, m := range page.Messages {
			if m.Seq != int64(i+1) || m.Body.Text != fmt.Sprintf("message %d", i+1) {
				t.Fatalf("message %d: %+v", i, m)
			}
		}
		if st := api(t, "GET", fmt.Sprintf("%s/api/conversations/%d/messages?before=5&limit=2", base, conv), buyer, nil, &page); st != http.StatusOK ||
			len(page.Messages) != 2 || page.Messages[0].Seq != 3 || page.Messages[1].Seq != 4 {
			t.Fatalf("a page backwards from seq 5: %d %+v", st, page.Messages)
		}
		// The upload is served from the same store (S3 in production) by the new node.
		if code, got := fetch(t, "GET", base+"/api/blobs/"+up.BlobKey, buyer); code != http.StatusOK || !bytes.Equal(got, img) {
			t.Fatalf("upload after restart: %d, %d bytes", code, len(got))
		}
		// New messages continue the conversation's seq after the archived ones.
		b = dial(t, base, buyer)
		if ack := b.sendText(conv, "after", "after archiving"); ack.Seq != n+1 {
			t.Fatalf("ack after archiving: %+v", ack)
		}
	})
}

// TestArchiveCommandRefusals: bad jobs and flags are refused with a usage error.
func TestArchiveCommandRefusals(t *testing.T) {
	for _, args := range [][]string{{"archive"}, {"archive", "compact", "--data=" + t.TempDir()}, {"archive", "archive", "--until", "yesterday", "--data=" + t.TempDir()}} {
		var out, errOut bytes.Buffer
		if code := app.Main(args, &out, &errOut); code != 2 || errOut.Len() == 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}

// TestArchiveWaitsForIndex: the index job reads only the warm store, so the archive job leaves a
// period there until the index has taken every message of it; once the index catches up, the next
// archive run moves it. (Here the node's index job never runs; the commands do the work.)
func TestArchiveWaitsForIndex(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		data := t.TempDir()
		node := startNode(t, env, data, "--index-schedule="+jobsOff)
		base := node.URL()
		shop := newShop(t, base, 0)
		buyer := shop.buyer(t, "iris")
		conv := startConversation(t, base, buyer, map[string]any{"product_id": "p"})
		b := dial(t, base, buyer)
		const n = 4
		for i := 1; i <= n; i++ {
			b.sendText(conv, fmt.Sprintf("i%d", i), fmt.Sprintf("unindexed %d", i))
		}
		b.ws.Close()
		shutdownInBackground(t, node)() // the last flush puts every message in the warm store
		until := time.Now().AddDate(0, 2, 0).Format(time.RFC3339)
		if r := runArchive(t, env, data, "archive", "--until", until); r.code != 0 || r.moved != 0 || r.errCount != 0 {
			t.Fatalf("archive before the index: %+v", r)
		}
		// The index takes what is surely warm: a flush that started AppendGrace after the messages.
		time.Sleep(session.AppendGrace)
		if r := runArchive(t, env, data, "flush"); r.code != 0 {
			t.Fatalf("flush: %+v", r)
		}
		if r := runArchive(t, env, data, "index"); r.code != 0 || r.processed < n {
			t.Fatalf("index: %+v", r)
		}
		if r := runArchive(t, env, data, "archive", "--until", until); r.code != 0 || r.moved < n || r.errCount != 0 {
			t.Fatalf("archive after the index: %+v", r)
		}
	})
}
