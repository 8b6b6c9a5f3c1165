package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/shopdesk/shopdesk/app"
	"github.com/shopdesk/shopdesk/archive"
	"github.com/shopdesk/shopdesk/session"
)

// privacyWorld is a node with history in every tier: two buyers of one shop (ann, bob) whose first
// messages were moved to cold segments by `shopdesk archive archive` and whose later ones are warm
// (and hot in production mode), ann's upload, ann's recalled message, and a buyer of another shop.
type privacyWorld struct {
	env         backendEnv
	data        string
	extra       []string
	node        *app.App
	base        string
	shop, other shopFixture
	ann, bob    authz
	annConv     int64
	bobConv     int64
	cyConv      int64
	annBuyer    int64
	upload      uploaded
	recalledSeq int64
}

func newPrivacyWorld(t *testing.T, env backendEnv) *privacyWorld {
	t.Helper()
	w := &privacyWorld{env: env, data: t.TempDir(), extra: []string{"--index-schedule=* * * * * *"}}
	if env.name == "production" {
		s3 := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
		t.Cleanup(s3.Close)
		w.extra = append(w.extra, "--s3-endpoint="+s3.URL, "--s3-bucket=privacy-test", "--s3-access-key=k", "--s3-secret-key=s")
	}
	w.start(t)
	w.shop = newShop(t, w.base, 1)
	w.other = newShop(t, w.base, 0)
	w.ann, w.bob = w.shop.buyer(t, "ann"), w.shop.buyer(t, "bob")
	cy := w.other.buyer(t, "cy")
	w.annConv = startConversation(t, w.base, w.ann, map[string]any{"product_id": "p1"})
	w.bobConv = startConversation(t, w.base, w.bob, map[string]any{"order_id": "o1"})
	w.cyConv = startConversation(t, w.base, cy, map[string]any{"product_id": "p9"})
	var conv struct{ Conversation session.Conversation }
	if st := api(t, "GET", fmt.Sprintf("%s/api/conversations/%d", w.base, w.annConv), w.shop.manager, nil, &conv); st != http.StatusOK {
		t.Fatalf("conversation: %d", st)
	}
	w.annBuyer = conv.Conversation.BuyerID

	a, b, c := dial(t, w.base, w.ann), dial(t, w.base, w.bob), dial(t, w.base, cy)
	a.sendText(w.annConv, "a1", "ann cold one")
	a.sendText(w.annConv, "a2", "ann cold two")
	code, up := uploadFile(t, w.base, w.ann, "parcel.png", "image/png", smallPNG(t))
	if code != http.StatusCreated {
		t.Fatalf("upload: %d", code)
	}
	w.upload = up
	if f := a.request(map[string]any{"type": "send", "client_msg_id": "a3", "conversation_id": w.annConv,
		"body": map[string]any{"type": "image", "blob_key": up.BlobKey, "name": up.Name, "mime": up.MIME, "size": up.Size}}); f.Type != "ack" {
		t.Fatalf("image message: %+v", f)
	}
	oops := a.sendText(w.annConv, "a4", "ann recalled secret")
	w.recalledSeq = oops.Seq
	if f := a.request(map[string]any{"type": "send", "client_msg_id": "a5", "conversation_id": w.annConv,
		"body": map[string]any{"type": "recall", "recall_seq": oops.Seq}}); f.Type != "ack" {
		t.Fatalf("recall: %+v", f)
	}
	b.sendText(w.bobConv, "b1", "bob cold one")
	b.sendText(w.bobConv, "b2", "bob cold two")
	c.sendText(w.cyConv, "c1", "cy cold one")
	w.waitIndexed(t, w.shop.manager, "cold", 4)
	w.waitIndexed(t, w.other.manager, "cy", 1)
	for _, d := range []*wsClient{a, b, c} {
		d.ws.Close()
	}
	shutdownInBackground(t, w.node)() // the last flush puts every message in the warm store

	args := append([]string{"archive", "archive", "--until", time.Now().AddDate(0, 2, 0).Format(time.RFC3339)}, w.storeFlags()...)
	var out, errOut bytes.Buffer
	if code := app.Main(args, &out, &errOut); code != 0 || !strings.Contains(out.String(), "errors=0") {
		t.Fatalf("archive: exit %d\n%s\n%s", code, out.String(), errOut.String())
	}

	w.start(t)
	a, b = dial(t, w.base, w.ann), dial(t, w.base, w.bob)
	a.sendText(w.annConv, "a6", `ann fresh one <script>alert("x")</script> & more`)
	b.sendText(w.bobConv, "b3", "bob fresh one")
	a.ws.Close()
	b.ws.Close()
	w.waitIndexed(t, w.shop.manager, "fresh", 2)
	return w
}

func (w *privacyWorld) start(t *testing.T) {
	t.Helper()
	w.node = startNode(t, w.env, w.data, w.extra...)
	w.base = w.node.URL()
}

// storeFlags are the flags that make a command reach the world's stores.
func (w *privacyWorld) storeFlags() []string {
	args := []string{"--data=" + w.data, "--operator-token=" + operatorToken}
	if w.env.mysqlDSN != "" {
		args = append(args, "--mysql-dsn="+w.env.mysqlDSN, "--redis-addr="+w.env.redis, "--redis-prefix="+w.env.prefix)
	}
	return append(args, w.extra...)
}

func (w *privacyWorld) search(t *testing.T, who authz, q string) searchAnswer {
	t.Helper()
	var out searchAnswer
	if st := api(t, "GET", w.base+"/api/search?q="+url.QueryEscape(q), who, nil, &out); st != http.StatusOK {
		t.Fatalf("search %q: %d", q, st)
	}
	return out
}

func (w *privacyWorld) waitIndexed(t *testing.T, who authz, q string, n int64) {
	t.Helper()
	eventually(t, 20*time.Second, fmt.Sprintf("%d messages with %q indexed", n, q), func() bool { return w.search(t, who, q).Total == n })
}

// history pages through the whole conversation forwards, 3 at a time, as the given caller sees it.
func (w *privacyWorld) history(t *testing.T, who authz, conv int64) []session.Message {
	t.Helper()
	var all []session.Message
	for after := int64(0); ; {
		var page struct{ Messages []session.Message }
		if st := api(t, "GET", fmt.Sprintf("%s/api/conversations/%d/messages?after=%d&limit=3", w.base, conv, after), who, nil, &page); st != http.StatusOK {
			t.Fatalf("history of %d after %d: %d", conv, after, st)
		}
		if len(page.Messages) == 0 {
			return all
		}
		all = append(all, page.Messages...)
		after = page.Messages[len(page.Messages)-1].Seq
	}
}

func texts(ms []session.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = fmt.Sprintf("%d:%s:%s%s", m.Seq, m.Body.Type, m.Body.Text, m.Body.BlobKey)
	}
	return out
}

func (w *privacyWorld) deletions(t *testing.T, who authz) []archive.Deletion {
	t.Helper()
	var out struct{ Deletions []archive.Deletion }
	if st := api(t, "GET", w.base+"/api/data-deletions", who, nil, &out); st != http.StatusOK {
		t.Fatalf("data-deletions: %d", st)
	}
	return out.Deletions
}

// TestRetention: the retention job deletes a shop's history older than the cutoff from the hot,
// warm and cold tiers, the search index and the blob store, records it, leaves other shops alone,
// and does nothing more when run again.
func TestRetention(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		w := newPrivacyWorld(t, env)
		cyBefore := texts(w.history(t, w.other.manager, w.cyConv))
		if len(w.history(t, w.shop.manager, w.annConv)) < 6 {
			t.Fatalf("ann's history before retention: %v", texts(w.history(t, w.shop.manager, w.annConv)))
		}
		ctx := context.Background()
		if _, err := app.Retain(ctx, w.node, archive.Scope{ShopID: w.shop.id, Until: time.Now().Add(time.Hour)}); session.ErrorCode(err) != session.EINVALID {
			t.Fatalf("a cutoff in the future: %v", err)
		}
		res, err := app.Retain(ctx, w.node, archive.Scope{ShopID: w.shop.id, Until: time.Now()})
		if err != nil || res.Processed != 1 || res.Errors != 0 || res.Deleted != 9 { // 5 + 2 cold, 2 warm
			t.Fatalf("retention: %+v %v", res, err)
		}
		for _, conv := range []int64{w.annConv, w.bobConv} {
			if got := w.history(t, w.shop.manager, conv); len(got) != 0 {
				t.Fatalf("conversation %d after retention: %v", conv, texts(got))
			}
		}
		for _, q := range []string{"cold", "fresh", "ann"} {
			if out := w.search(t, w.shop.manager, q); out.Total != 0 {
				t.Fatalf("search %q after retention: %+v", q, out)
			}
		}
		if code, _ := fetch(t, "GET", w.base+"/api/blobs/"+w.upload.BlobKey, w.shop.manager); code != http.StatusNotFound {
			t.Fatalf("upload after retention: %d", code)
		}
		// Another shop keeps everything.
		if got := texts(w.history(t, w.other.manager, w.cyConv)); strings.Join(got, "|") != strings.Join(cyBefore, "|") {
			t.Fatalf("other shop after retention: %v, was %v", got, cyBefore)
		}
		if out := w.search(t, w.other.manager, "cy"); out.Total != 1 {
			t.Fatalf("other shop's index after retention: %+v", out)
		}
		recs := w.deletions(t, w.shop.manager)
		if len(recs) != 1 {
			t.Fatalf("deletions: %+v", recs)
		}
		r := recs[0]
		if r.Kind != archive.DeletionRetention || r.State != archive.DeletionDone || r.ShopID != w.shop.id || r.Cutoff == nil ||
			r.WarmMessages != 2 || r.ColdMessages != 7 || r.ColdSegments != 1 || r.IndexDocuments != 9 || r.Blobs != 1 || r.IndexPending || r.FinishedAt == nil {
			t.Fatalf("deletion record: %+v", r)
		}
		if hot := r.HotMessages > 0; hot != (env.name == "production") {
			t.Fatalf("hot copies deleted: %d in %s mode", r.HotMessages, env.name)
		}
		if len(w.deletions(t, w.other.manager)) != 0 {
			t.Fatal("the other shop has a deletion record")
		}
		// Nothing is left to delete: a rerun deletes and records nothing.
		res, err = app.Retain(ctx, w.node, archive.Scope{ShopID: w.shop.id, Until: time.Now()})
		if err != nil || res.Deleted != 0 || len(w.deletions(t, w.shop.manager)) != 1 {
			t.Fatalf("rerun: %+v %v", res, err)
		}
		// The scheduled job, by each shop's own period (three years by default), keeps recent history.
		res, err = app.RunJob(ctx, w.node, "retention")
		if err != nil || res.Processed < 2 || res.Deleted != 0 {
			t.Fatalf("retention job: %+v %v", res, err)
		}
		if got := texts(w.history(t, w.other.manager, w.cyConv)); len(got) != len(cyBefore) {
			t.Fatalf("other shop after the retention job: %v", got)
		}
		// New messages continue the conversation's seq after the deleted ones.
		a := dial(t, w.base, w.ann)
		if ack := a.sendText(w.annConv, "a7", "after retention"); ack.Seq != 7 {
			t.Fatalf("seq after retention: %+v", ack)
		}
	})
}

// TestEraseBuyer: a manager erases a buyer: their messages leave every tier (cold segments are
// rewritten without them), the index and the blob store; other buyers keep everything; the
// conversation pages to a single "erased" marker; other shops and unknown ids get 404.
func TestEraseBuyer(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		w := newPrivacyWorld(t, env)
		erase := func(who authz, buyer int64, reason string) (int, map[string]json.RawMessage) {
			var out map[string]json.RawMessage
			st := api(t, "POST", fmt.Sprintf("%s/api/buyers/%d/erase", w.base, buyer), who, map[string]any{"reason": reason}, &out)
			return st, out
		}
		annBefore := texts(w.history(t, w.shop.manager, w.annConv))
		bobBefore := texts(w.history(t, w.shop.manager, w.bobConv))
		for _, c := range []struct {
			name   string
			who    authz
			buyer  int64
			reason string
			want   int
		}{
			{"another shop's manager", w.other.manager, w.annBuyer, "gdpr", http.StatusNotFound},
			{"an unknown buyer", w.shop.manager, w.annBuyer + 1000, "gdpr", http.StatusNotFound},
			{"no reason", w.shop.manager, w.annBuyer, "", http.StatusBadRequest},
			{"an agent", w.shop.agents[0].auth, w.annBuyer, "gdpr", http.StatusForbidden},
			{"the buyer", w.ann, w.annBuyer, "gdpr", http.StatusForbidden},
		} {
			if st, out := erase(c.who, c.buyer, c.reason); st != c.want {
				t.Fatalf("%s: %d %s", c.name, st, out["error"])
			}
		}
		if got := texts(w.history(t, w.shop.manager, w.annConv)); strings.Join(got, "|") != strings.Join(annBefore, "|") {
			t.Fatalf("refused erasures changed ann's history: %v", got)
		}
		if len(w.deletions(t, w.shop.manager)) != 0 {
			t.Fatal("refused erasures were recorded")
		}

		st, out := erase(w.shop.manager, w.annBuyer, "request #42")
		if st != http.StatusOK {
			t.Fatalf("erase: %d %s", st, out["error"])
		}
		var rec archive.Deletion
		if err := json.Unmarshal(out["deletion"], &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Kind != archive.DeletionErasure || rec.State != archive.DeletionDone || rec.Subject != archive.BuyerSubject(w.annBuyer) ||
			rec.Reason != "request #42" || rec.ColdSegments != 1 || rec.ColdMessages < 5 || rec.WarmMessages < 1 || rec.Blobs != 1 || rec.IndexDocuments < 5 {
			t.Fatalf("erasure record: %+v", rec)
		}
		if hot := rec.HotMessages > 0; hot != (env.name == "production") {
			t.Fatalf("hot copies erased: %d in %s mode", rec.HotMessages, env.name)
		}
		check := func() {
			t.Helper()
			got := w.history(t, w.shop.manager, w.annConv)
			if len(got) != 1 || got[0].Body.Type != session.TypeSystem || got[0].Body.Event != archive.ErasedEvent || got[0].Seq != int64(len(annBefore)+1) {
				t.Fatalf("ann's conversation after erasure: %v (was %d messages)", texts(got), len(annBefore))
			}
			var page struct{ Messages []session.Message }
			if st := api(t, "GET", fmt.Sprintf("%s/api/conversations/%d/messages?before=%d&limit=5", w.base, w.annConv, got[0].Seq), w.shop.manager, nil, &page); st != http.StatusOK || len(page.Messages) != 0 {
				t.Fatalf("paging back from the marker: %d %v", st, texts(page.Messages))
			}
			if got := texts(w.history(t, w.shop.manager, w.bobConv)); strings.Join(got, "|") != strings.Join(bobBefore, "|") {
				t.Fatalf("bob's history after ann's erasure: %v, was %v", got, bobBefore)
			}
			if code, _ := fetch(t, "GET", w.base+"/api/blobs/"+w.upload.BlobKey, w.shop.manager); code != http.StatusNotFound {
				t.Fatalf("ann's upload after erasure: %d", code)
			}
		}
		check()
		if out := w.search(t, w.shop.manager, "ann"); out.Total != 0 {
			t.Fatalf("ann in the index after erasure: %+v", out)
		}
		if out := w.search(t, w.shop.manager, "bob"); out.Total != 3 {
			t.Fatalf("bob in the index after ann's erasure: %+v", out)
		}
		// A node started afterwards reads the rewritten cold segment, not a cached one.
		shutdownInBackground(t, w.node)()
		w.start(t)
		check()
		// Erasing again finishes nothing new and adds no second marker.
		if st, out := erase(w.shop.manager, w.annBuyer, "request #42 again"); st != http.StatusOK {
			t.Fatalf("erase again: %d %s", st, out["error"])
		}
		check()
		if recs := w.deletions(t, w.shop.manager); len(recs) != 2 || recs[0].ColdMessages != 0 || recs[0].WarmMessages != 0 {
			t.Fatalf("deletions after the rerun: %+v", recs)
		}
		// The erased identity is gone: the same buyer coming back starts a new conversation.
		if conv := startConversation(t, w.base, w.ann, nil); conv == w.annConv {
			t.Fatal("the erased buyer got their old conversation back")
		}
	})
}

// TestExport: staff export a conversation or a session as JSON Lines or a printable HTML page: every
// tier, in seq order, recalled messages marked, everything escaped, each export logged; other shops,
// unknown ids, buyers and bad formats are refused.
func TestExport(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		w := newPrivacyWorld(t, env)
		all := w.history(t, w.shop.manager, w.annConv)
		export := func(who authz, path string) (int, http.Header, []byte) {
			t.Helper()
			req, _ := http.NewRequest("GET", w.base+path, nil)
			who.apply(req.Header)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(resp.Body)
			return resp.StatusCode, resp.Header, buf.Bytes()
		}
		jsonl := func(body []byte) []session.Message {
			t.Helper()
			var out []session.Message
			sc := bufio.NewScanner(bytes.NewReader(body))
			for sc.Scan() {
				var m session.Message
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m.Seq == 0 {
					t.Fatalf("line %q: %v", sc.Text(), err)
				}
				out = append(out, m)
			}
			return out
		}

		st, h, body := export(w.shop.manager, fmt.Sprintf("/api/conversations/%d/export?format=jsonl", w.annConv))
		if st != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "application/x-ndjson") {
			t.Fatalf("jsonl export: %d %s %s", st, h, body)
		}
		got := jsonl(body)
		if len(got) != len(all) {
			t.Fatalf("jsonl export has %d messages, history %d", len(got), len(all))
		}
		sawCold, sawFresh, sawRecall := false, false, false
		for i, m := range got {
			if m.Seq != int64(i+1) {
				t.Fatalf("message %d has seq %d", i, m.Seq)
			}
			sawCold = sawCold || m.Body.Text == "ann cold one"
			sawFresh = sawFresh || strings.HasPrefix(m.Body.Text, "ann fresh one")
			if m.Seq == w.recalledSeq {
				if !m.Recalled || m.Body.Text != "ann recalled secret" {
					t.Fatalf("recalled message in the export: %+v", m)
				}
				sawRecall = true
			} else if m.Recalled {
				t.Fatalf("message %d marked recalled", m.Seq)
			}
		}
		if !sawCold || !sawFresh || !sawRecall {
			t.Fatalf("export lacks a tier or the recall: %v", texts(got))
		}

		st, h, body = export(w.shop.agents[0].auth, fmt.Sprintf("/api/conversations/%d/export?format=html", w.annConv))
		page := string(body)
		if st != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Fatalf("html export: %d %s", st, h)
		}
		if strings.Contains(page, "<script>") || !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more") {
			t.Fatalf("html export does not escape the message:\n%s", page)
		}
		if !strings.Contains(page, "ann cold one") || !strings.Contains(page, `class="recalled"`) || !strings.Contains(page, "parcel.png") ||
			!strings.Contains(page, fmt.Sprintf("%d messages.", len(all))) || !strings.HasSuffix(strings.TrimSpace(page), "</html>") {
			t.Fatalf("html export content:\n%s", page)
		}

		// A session's export starts at the session's first message.
		var list struct{ Sessions []session.Session }
		if st := api(t, "GET", fmt.Sprintf("%s/api/sessions?conversation_id=%d", w.base, w.bobConv), w.shop.manager, nil, &list); st != http.StatusOK || len(list.Sessions) == 0 {
			t.Fatalf("bob's sessions: %d %+v", st, list.Sessions)
		}
		s := list.Sessions[len(list.Sessions)-1]
		st, _, body = export(w.shop.manager, fmt.Sprintf("/api/sessions/%d/export", s.ID))
		sess := jsonl(body)
		if st != http.StatusOK || len(sess) == 0 || sess[0].Seq != s.FirstSeq || sess[0].ConversationID != w.bobConv {
			t.Fatalf("session export: %d %v (first seq %d)", st, texts(sess), s.FirstSeq)
		}

		for _, c := range []struct {
			name string
			who  authz
			path string
			want int
		}{
			{"another shop's conversation", w.other.manager, fmt.Sprintf("/api/conversations/%d/export", w.annConv), http.StatusNotFound},
			{"another shop's session", w.other.manager, fmt.Sprintf("/api/sessions/%d/export", s.ID), http.StatusNotFound},
			{"an unknown conversation", w.shop.manager, "/api/conversations/999999/export", http.StatusNotFound},
			{"an unknown session", w.shop.manager, "/api/sessions/999999/export", http.StatusNotFound},
			{"a bad format", w.shop.manager, fmt.Sprintf("/api/conversations/%d/export?format=pdf", w.annConv), http.StatusBadRequest},
			{"a buyer", w.ann, fmt.Sprintf("/api/conversations/%d/export", w.annConv), http.StatusForbidden},
		} {
			if st, _, body := export(c.who, c.path); st != c.want {
				t.Fatalf("%s: %d %s", c.name, st, body)
			}
		}

		var log struct {
			Exports []struct {
				StaffID  int64 `json:"staff_id"`
				Subject  string
				Format   string
				State    string
				Messages int64
			}
		}
		if st := api(t, "GET", w.base+"/api/data-exports", w.shop.manager, nil, &log); st != http.StatusOK || len(log.Exports) != 3 {
			t.Fatalf("export log: %d %+v", st, log.Exports)
		}
		first, html := log.Exports[2], log.Exports[1]
		if first.Subject != fmt.Sprintf("conversation:%d", w.annConv) || first.Format != "jsonl" || first.State != "done" || first.Messages != int64(len(all)) ||
			html.Format != "html" || html.StaffID != w.shop.agents[0].id || log.Exports[0].Subject != fmt.Sprintf("session:%d", s.ID) {
			t.Fatalf("export log: %+v", log.Exports)
		}
		if st := api(t, "GET", w.base+"/api/data-exports", w.other.manager, nil, &log); st != http.StatusOK || len(log.Exports) != 0 {
			t.Fatalf("the other shop's export log: %+v", log.Exports)
		}
	})
}

// TestRetentionCommand: `shopdesk archive retention --shop --until` deletes from every tier the
// command reaches; the search index belongs to the serving node, so its part is recorded pending and
// done by the node's next retention run.
func TestRetentionCommand(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		w := newPrivacyWorld(t, env)
		args := append([]string{"archive", "retention", "--shop", fmt.Sprint(w.shop.id), "--until", time.Now().UTC().Format(time.RFC3339)}, w.storeFlags()...)
		var out, errOut bytes.Buffer
		if code := app.Main(args, &out, &errOut); code != 0 || !strings.Contains(out.String(), "ARCHIVE_JOB job=retention processed=1 moved=0 deleted=9 errors=0") {
			t.Fatalf("retention: exit %d\n%s\n%s", code, out.String(), errOut.String())
		}
		if got := w.history(t, w.shop.manager, w.annConv); len(got) != 0 {
			t.Fatalf("ann's history after retention: %v", texts(got))
		}
		recs := w.deletions(t, w.shop.manager)
		if len(recs) != 1 || !recs[0].IndexPending || recs[0].IndexDocuments != 0 || recs[0].WarmMessages+recs[0].ColdMessages != 9 {
			t.Fatalf("deletion record of the command: %+v", recs)
		}
		if out := w.search(t, w.shop.manager, "cold"); out.Total != 4 {
			t.Fatalf("the index before the node's run: %+v", out)
		}
		if _, err := app.RunJob(context.Background(), w.node, "retention"); err != nil {
			t.Fatal(err)
		}
		if out := w.search(t, w.shop.manager, "cold"); out.Total != 0 {
			t.Fatalf("the index after the node's run: %+v", out)
		}
		if recs := w.deletions(t, w.shop.manager); len(recs) != 1 || recs[0].IndexPending || recs[0].IndexDocuments != 9 {
			t.Fatalf("deletion record after the node's run: %+v", recs)
		}
		// A cutoff in the future is refused.
		args = append([]string{"archive", "retention", "--until", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, w.storeFlags()...)
		if code := app.Main(args, &out, &errOut); code == 0 {
			t.Fatal("a cutoff in the future was accepted")
		}
	})
}
