package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/shopdesk/shopdesk/app"
	"github.com/shopdesk/shopdesk/migrations/testdb"
	"github.com/shopdesk/shopdesk/session"
)

// eventually polls cond every 100 ms until it holds, failing the test after d (at most 15 s).
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fetch does a request with no body and returns the status and the raw answer.
func fetch(t *testing.T, method, url string, a authz) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.apply(req.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// tryExpect is expect without failing: the first frame of type typ matching match within d.
func (c *wsClient) tryExpect(typ string, match func(frame) bool, d time.Duration) (frame, bool) {
	ok := func(f frame) bool { return f.Type == typ && (match == nil || match(f)) }
	for i, f := range c.backlog {
		if ok(f) {
			c.backlog = append(c.backlog[:i:i], c.backlog[i+1:]...)
			return f, true
		}
	}
	timeout := time.After(d)
	for {
		select {
		case f, open := <-c.frames:
			if !open {
				return frame{}, false
			}
			if ok(f) {
				return f, true
			}
			c.backlog = append(c.backlog, f)
		case <-timeout:
			return frame{}, false
		}
	}
}

// waitClosed waits until the server has closed the device's connection.
func (c *wsClient) waitClosed() {
	c.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, open := <-c.frames:
			if !open {
				return
			}
			c.backlog = append(c.backlog, f)
		case <-timeout:
			c.t.Fatal("connection still open after 10s")
		}
	}
}

// syncSeqs asks for the messages after a cursor and returns them with the "more" flag.
func syncSeqs(t *testing.T, c *wsClient, conv, after int64, limit int) ([]session.Message, bool) {
	t.Helper()
	req := map[string]any{"type": "sync", "conversation_id": conv, "after": after}
	if limit > 0 {
		req["limit"] = limit
	}
	f := c.request(req)
	if f.Type != "messages" {
		t.Fatalf("sync after %d: %+v", after, f)
	}
	return f.Messages, f.More
}

// seqsOf lists the seqs of msgs.
func seqsOf(msgs []session.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

// wantSeqs fails unless msgs are exactly the seqs from..to, in order.
func wantSeqs(t *testing.T, what string, msgs []session.Message, from, to int64) {
	t.Helper()
	got := seqsOf(msgs)
	ok := int64(len(got)) == to-from+1
	for i := range got {
		ok = ok && got[i] == from+int64(i)
	}
	if !ok {
		t.Fatalf("%s: got seqs %v, want %d..%d each once", what, got, from, to)
	}
}

// staffStatus returns a staff member's status as their shop's manager sees it.
func staffStatus(t *testing.T, base string, mgr authz, id int64) string {
	t.Helper()
	var out struct {
		Staff []struct {
			ID     int64  `json:"id"`
			Status string `json:"status"`
		} `json:"staff"`
	}
	if st := api(t, "GET", base+"/api/staff", mgr, nil, &out); st != http.StatusOK {
		t.Fatalf("GET /api/staff: %d", st)
	}
	for _, s := range out.Staff {
		if s.ID == id {
			return s.Status
		}
	}
	t.Fatalf("staff %d not listed: %+v", id, out.Staff)
	return ""
}

// managerID returns the staff id behind a staff login.
func managerID(t *testing.T, base string, a authz) int64 {
	t.Helper()
	var me struct {
		Staff struct {
			ID int64 `json:"id"`
		} `json:"staff"`
	}
	if st := api(t, "GET", base+"/api/me", a, nil, &me); st != http.StatusOK || me.Staff.ID == 0 {
		t.Fatalf("GET /api/me: %d", st)
	}
	return me.Staff.ID
}

// quickShop creates a shop for buyers only: its manager never logs in, which saves a bcrypt
// comparison (slow under the race detector) in tests that need no staff.
func quickShop(t *testing.T, base string) shopFixture {
	t.Helper()
	slug := strings.ToLower(testdb.Name("shop"))
	var created struct {
		Shop        struct{ ID int64 }
		BuyerSecret string `json:"buyer_secret"`
	}
	st := api(t, "POST", base+"/api/operator/shops", authz{token: operatorToken}, map[string]any{
		"slug": slug, "name": "Quick", "manager_username": "boss", "manager_password": "pw-boss"}, &created)
	if st != http.StatusCreated {
		t.Fatalf("create shop: %d", st)
	}
	return shopFixture{id: created.Shop.ID, slug: slug, secret: created.BuyerSecret}
}

func isOffline(f frame) bool { return f.Status == "offline" }

// TestPresenceTimeout: an agent whose heartbeats stop goes offline even though its TCP connection
// stays open; an agent who keeps pinging stays online.
func TestPresenceTimeout(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		node := startNode(t, env, "", "--presence-timeout=1s")
		base := node.URL()
		shop := newShop(t, base, 1)
		// The manager is staff too, with a status and heartbeats: it is the agent who keeps pinging.
		silent, pinger := shop.agents[0], staffLogin{id: managerID(t, base, shop.manager), auth: shop.manager}
		s := dial(t, base, silent.auth)
		p := dial(t, base, pinger.auth)
		for _, d := range []*wsClient{s, p} {
			if f := d.request(map[string]any{"type": "status", "status": "online"}); f.Type != "ok" || f.Status != "online" {
				t.Fatalf("status online: %+v", f)
			}
		}
		if st := staffStatus(t, base, shop.manager, silent.id); st != "online" {
			t.Fatalf("before the timeout: %q", st)
		}

		// The silent device sends nothing more; the other pings five times a timeout.
		ping := func() { p.send(map[string]any{"type": "ping"}) }
		deadline := time.Now().Add(15 * time.Second)
		for staffStatus(t, base, shop.manager, silent.id) != "offline" {
			if time.Now().After(deadline) {
				t.Fatal("an agent without heartbeats is still online after 15s (presence timeout 1s)")
			}
			ping()
			time.Sleep(200 * time.Millisecond)
		}
		s.expect("status", isOffline)

		// Two more timeouts of pinging: the pinger stays online and is never told otherwise.
		for i := 0; i < 10; i++ {
			ping()
			time.Sleep(200 * time.Millisecond)
		}
		if st := staffStatus(t, base, shop.manager, pinger.id); st != "online" {
			t.Fatalf("an agent who keeps pinging went %q", st)
		}
		p.none("status", isOffline, 100*time.Millisecond)
		// The sweep judged heartbeats, not the TCP connection: the silent device is still connected.
		if f := s.request(map[string]any{"type": "ping"}); f.Type != "pong" {
			t.Fatalf("silent device after the sweep: %+v", f)
		}
	})
}

// TestReconnectSync: a device that was away pulls exactly what it missed after its cursor, in pages,
// and a push that skips seqs makes it pull the gap.
func TestReconnectSync(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		node := startNode(t, env, "")
		base := node.URL()
		shop := newShop(t, base, 0)
		// The manager takes the session itself: one staff login less to hash.
		ag := staffLogin{id: managerID(t, base, shop.manager), auth: shop.manager}
		buyer := shop.buyer(t, "carol")
		conv := startConversation(t, base, buyer, map[string]any{"product_id": "sku-9"})
		b := dial(t, base, buyer)
		a := dial(t, base, ag.auth)

		if ack := b.sendText(conv, "b1", "hello"); ack.Type != "ack" || ack.Seq != 1 {
			t.Fatalf("first ack: %+v", ack)
		}
		assign(t, base, shop.manager, liveSession(t, base, shop.manager, conv).ID, ag)
		a.expect("message", func(f frame) bool { return f.Seq == 2 }) // the assignment notice: cursor 2
		a.ws.Close()

		for i := 3; i <= 5; i++ {
			if ack := b.sendText(conv, fmt.Sprintf("b%d", i), fmt.Sprintf("text %d", i)); ack.Type != "ack" || ack.Seq != int64(i) {
				t.Fatalf("ack %d: %+v", i, ack)
			}
		}

		a2 := dial(t, base, ag.auth)
		msgs, more := syncSeqs(t, a2, conv, 2, 0)
		wantSeqs(t, "sync after 2", msgs, 3, 5)
		if more {
			t.Fatal("sync after 2: more=true on the last page")
		}
		for _, m := range msgs {
			if m.ClientMsgID != fmt.Sprintf("b%d", m.Seq) || m.Body.Text != fmt.Sprintf("text %d", m.Seq) {
				t.Fatalf("synced message %d: %+v", m.Seq, m)
			}
		}
		// Nothing sent while away is pushed again after the reconnect.
		a2.none("message", nil, 200*time.Millisecond)

		// Paging.
		msgs, more = syncSeqs(t, a2, conv, 2, 2)
		wantSeqs(t, "page 1", msgs, 3, 4)
		if !more {
			t.Fatal("page 1: more=false with a message left")
		}
		msgs, more = syncSeqs(t, a2, conv, 4, 2)
		wantSeqs(t, "page 2", msgs, 5, 5)
		if more {
			t.Fatal("page 2: more=true on the last page")
		}
		if msgs, more = syncSeqs(t, a2, conv, 5, 2); len(msgs) != 0 || more {
			t.Fatalf("sync at the head: %v more=%v", seqsOf(msgs), more)
		}

		// Gap → pull: away again at cursor 5; on return a push of seq 7 reveals that 6 is missing.
		a2.ws.Close()
		b.sendText(conv, "b6", "text 6")
		a3 := dial(t, base, ag.auth)
		b.sendText(conv, "b7", "text 7")
		if f := a3.expect("message", nil); f.Seq != 7 {
			t.Fatalf("first push after the reconnect: seq %d", f.Seq)
		}
		msgs, _ = syncSeqs(t, a3, conv, 5, 0)
		wantSeqs(t, "gap pull", msgs, 6, 7)
	})
}

// shutdownDevice is a raw WebSocket device that records every frame, so that frames the harness's
// frame type does not decode (a reconnect's reason) can be checked.
type shutdownDevice struct {
	frames chan map[string]any
	// closeCode is the status of the server's close frame (1006 when it sent none); set before frames closes.
	closeCode int
}

func dialShutdownDevice(t *testing.T, base string, a authz) *shutdownDevice {
	t.Helper()
	h := http.Header{}
	a.apply(h)
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(base), h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	d := &shutdownDevice{frames: make(chan map[string]any, 64)}
	go func() {
		defer close(d.frames)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				d.closeCode = websocket.CloseAbnormalClosure
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					d.closeCode = ce.Code
				}
				return
			}
			var m map[string]any
			if json.Unmarshal(data, &m) == nil {
				d.frames <- m
			}
		}
	}()
	if f := d.next(t); f["type"] != "hello" {
		t.Fatalf("first frame: %v", f)
	}
	return d
}

// next returns the next frame, nil when the connection closed.
func (d *shutdownDevice) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case f, open := <-d.frames:
		if !open {
			return nil
		}
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no frame and no close within 10s")
	}
	return nil
}

// holdRequest starts POST /api/conversations as buyer and returns once its handler is reading the
// body, which the test holds back: the request stays in flight, so a Shutdown meanwhile stays in its
// draining phase. finish sends the rest of the body and returns the status (-1 on a transport error).
func holdRequest(t *testing.T, base string, buyer authz) (finish func() int) {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", base+"/api/conversations", pr)
	if err != nil {
		t.Fatal(err)
	}
	buyer.apply(req.Header)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Expect", "100-continue")
	reading := make(chan struct{})
	req = req.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got100Continue: func() { close(reading) }, // the server answers 100 when the handler reads
	}))
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 15 * time.Second}}
	status := make(chan int, 1)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			status <- -1
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
	select {
	case <-reading:
	case <-time.After(10 * time.Second):
		t.Fatal("the held request never reached its handler")
	}
	return func() int {
		if _, err := pw.Write([]byte(`{"context":{"page":"/cart"}}`)); err != nil {
			return -1
		}
		pw.Close()
		select {
		case st := <-status:
			return st
		case <-time.After(15 * time.Second):
			return -1
		}
	}
}

// TestGracefulShutdown: Shutdown tells every device to reconnect before closing its connection,
// refuses new devices and reports not ready while it drains, and finishes in-flight requests.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		node := startNode(t, env, "")
		base := node.URL()
		shop := quickShop(t, base)
		buyer := shop.buyer(t, "dave")
		devices := []*shutdownDevice{dialShutdownDevice(t, base, buyer), dialShutdownDevice(t, base, buyer),
			dialShutdownDevice(t, base, shop.buyer(t, "erin"))}

		// An in-flight request holds the node in its draining phase until the test has looked at it.
		finish := holdRequest(t, base, buyer)
		waitShutdown := shutdownInBackground(t, node)

		for i, d := range devices {
			f := d.next(t)
			if f == nil || f["type"] != "reconnect" || f["reason"] != "shutdown" {
				t.Fatalf("device %d: want a reconnect frame with reason shutdown before the close, got %v", i, f)
			}
			if f := d.next(t); f != nil {
				t.Fatalf("device %d: frame after the reconnect: %v", i, f)
			}
			if d.closeCode != websocket.CloseGoingAway {
				t.Fatalf("device %d: close status %d, want 1001 (going away)", i, d.closeCode)
			}
		}

		// While draining: not ready, and no new devices. The listener is closed already, so the node's
		// handler is asked directly.
		h := node.Handler()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		var ready map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &ready)
		if rec.Code != http.StatusServiceUnavailable || ready["draining"] != true || ready["ready"] != false {
			t.Fatalf("/readyz while draining: %d %s", rec.Code, rec.Body.String())
		}
		rec = httptest.NewRecorder()
		ws := httptest.NewRequest("GET", "/ws", nil)
		buyer.apply(ws.Header)
		h.ServeHTTP(rec, ws)
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "EUNAVAILABLE") {
			t.Fatalf("a device connecting to a draining node: %d %s", rec.Code, rec.Body.String())
		}

		if st := finish(); st != http.StatusOK {
			t.Fatalf("the in-flight request was not finished: %d", st)
		}
		waitShutdown()
		if _, _, err := dialRaw(base, buyer); err == nil {
			t.Fatal("a stopped node accepted a device")
		}
	})
}

// TestHealthReadyMetrics checks the operational endpoints in both modes.
func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		node := startNode(t, env, "")
		base := node.URL()
		if st, body := fetch(t, "GET", base+"/healthz", authz{}); st != http.StatusOK || !strings.Contains(string(body), "alive") {
			t.Fatalf("/healthz: %d %s", st, body)
		}
		var ready struct {
			Ready      bool
			Mode       string
			WarmStore  string `json:"warm_store"`
			Durability *struct{ Mode, Promise string }
		}
		if st := api(t, "GET", base+"/readyz", authz{}, nil, &ready); st != http.StatusOK || !ready.Ready || ready.WarmStore != "ok" {
			t.Fatalf("/readyz: %d %+v", st, ready)
		}
		if ready.Durability == nil || ready.Durability.Mode == "" || ready.Durability.Promise == "" {
			t.Fatalf("/readyz without durability: %+v", ready)
		}
		if env.redis == "" && ready.Durability.Mode != "sql-commit" {
			t.Fatalf("embedded durability mode %q", ready.Durability.Mode)
		}
		if ready.Mode != string(node.Mode()) {
			t.Fatalf("/readyz mode %q, node mode %q", ready.Mode, node.Mode())
		}

		shop := quickShop(t, base)
		dial(t, base, shop.buyer(t, "gauge"))
		eventually(t, 10*time.Second, "shopdesk_ws_connections 1", func() bool {
			_, body := fetch(t, "GET", base+"/metrics", authz{})
			return strings.Contains(string(body), "\nshopdesk_ws_connections 1\n")
		})
		_, body := fetch(t, "GET", base+"/metrics", authz{})
		for _, name := range []string{"shopdesk_ws_connections", "process_resident_memory_bytes", "go_goroutines"} {
			if !strings.Contains(string(body), "\n"+name+" ") {
				t.Errorf("/metrics lacks %s", name)
			}
		}
		if env.redis != "" && !strings.Contains(string(body), `shopdesk_redis_durability{mode="`+ready.Durability.Mode+`"} 1`) {
			t.Errorf("/metrics lacks the durability mode %q", ready.Durability.Mode)
		}
	})
}

// uploaded is the answer of POST /api/uploads.
type uploaded struct {
	BlobKey string `json:"blob_key"`
	URL     string `json:"url"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	MIME    string `json:"mime"`
	Size    int64  `json:"size"`
	Error   struct{ Code, Message string }
}

// uploadFile posts data as the multipart field "file", declared as ctype.
func uploadFile(t *testing.T, base string, a authz, name, ctype string, data []byte) (int, uploaded) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, name))
	h.Set("Content-Type", ctype)
	part, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	part.Write(data)
	mw.Close()
	req, err := http.NewRequest("POST", base+"/api/uploads", &buf)
	if err != nil {
		t.Fatal(err)
	}
	a.apply(req.Header)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out uploaded
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("upload %s: %d %s", name, resp.StatusCode, body)
	}
	return resp.StatusCode, out
}

// smallPNG returns a valid PNG of a few hundred bytes at most.
func smallPNG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for x := 0; x < 8; x++ {
		img.Set(x, x, color.RGBA{R: 200, A: 255})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// uploadFixture is a node with a shop, an assigned conversation and the sides' devices.
type uploadFixture struct {
	base         string
	shop         shopFixture
	agent        staffLogin // the shop's manager, who took the session
	buyer        authz
	conv         int64
	b, a         *wsClient
	otherManager authz
}

func newUploadFixture(t *testing.T, env backendEnv) uploadFixture {
	node := startNode(t, env, "", "--upload-max=1000")
	f := uploadFixture{base: node.URL()}
	f.shop = newShop(t, f.base, 0)
	f.agent = staffLogin{id: managerID(t, f.base, f.shop.manager), auth: f.shop.manager}
	f.otherManager = newShop(t, f.base, 0).manager
	f.buyer = f.shop.buyer(t, "frank")
	f.conv = startConversation(t, f.base, f.buyer, map[string]any{"order_id": "o-9"})
	f.b = dial(t, f.base, f.buyer)
	f.a = dial(t, f.base, f.agent.auth)
	f.b.sendText(f.conv, "u1", "the parcel arrived broken")
	assign(t, f.base, f.shop.manager, liveSession(t, f.base, f.shop.manager, f.conv).ID, f.agent)
	f.a.expect("message", func(fr frame) bool { return fr.Seq == 2 })
	return f
}

// TestUploads: accepted images round-trip and can be sent as messages; other shops, disallowed
// types and oversized files are refused with clear errors.
func TestUploads(t *testing.T) {
	t.Parallel()
	bothEnvs(t, func(t *testing.T, env backendEnv) {
		f := newUploadFixture(t, env)
		pic := smallPNG(t)
		if len(pic) > 1000 {
			t.Fatalf("test PNG is %d bytes, above --upload-max", len(pic))
		}
		st, up := uploadFile(t, f.base, f.buyer, "broken.png", "image/png", pic)
		if st != http.StatusCreated || up.BlobKey == "" || up.URL == "" || up.Type != "image" || up.MIME != "image/png" || up.Size != int64(len(pic)) {
			t.Fatalf("upload: %d %+v", st, up)
		}
		if st, got := fetch(t, "GET", f.base+up.URL, f.buyer); st != http.StatusOK || !bytes.Equal(got, pic) {
			t.Fatalf("download by the uploader: %d, %d bytes (want %d)", st, len(got), len(pic))
		}
		if st, got := fetch(t, "GET", f.base+up.URL, f.agent.auth); st != http.StatusOK || !bytes.Equal(got, pic) {
			t.Fatalf("download by the shop's agent: %d", st)
		}
		if st, _ := fetch(t, "GET", f.base+up.URL, f.otherManager); st != http.StatusNotFound {
			t.Fatalf("another shop's staff fetched the blob: %d", st)
		}

		elf := append([]byte("\x7fELF\x02\x01\x01\x00"), bytes.Repeat([]byte{0, 1, 2, 3}, 50)...)
		random := make([]byte, 300)
		for i := range random {
			random[i] = byte(i*7 + 3)
		}
		for name, data := range map[string][]byte{"elf.png": elf, "random.png": random} {
			if st, out := uploadFile(t, f.base, f.buyer, name, "image/png", data); st != http.StatusBadRequest || out.Error.Code != "EINVALID" {
				t.Errorf("%s claiming image/png: %d %+v", name, st, out)
			}
		}
		big := append(append([]byte{}, pic...), bytes.Repeat([]byte{0}, 1001)...)
		for _, size := range []int{len(big), 20 << 10} {
			data := big
			if size > len(big) {
				data = append(data, bytes.Repeat([]byte{0}, size-len(big))...)
			}
			if st, out := uploadFile(t, f.base, f.buyer, "big.png", "image/png", data); st != http.StatusRequestEntityTooLarge || out.Error.Code != "ETOOLARGE" {
				t.Errorf("%d-byte upload over --upload-max=1000: %d %+v", len(data), st, out)
			}
		}

		ack := f.b.request(map[string]any{"type": "send", "client_msg_id": "u-img", "conversation_id": f.conv,
			"body": map[string]any{"type": "image", "blob_key": up.BlobKey, "name": up.Name, "mime": up.MIME, "size": up.Size}})
		if ack.Type != "ack" || ack.Seq != 3 {
			t.Fatalf("image message: %+v", ack)
		}
		m := f.a.expect("message", func(fr frame) bool { return fr.Seq == 3 }).msg(t)
		if m.Body.Type != "image" || m.Body.BlobKey != up.BlobKey || m.Body.MIME != "image/png" {
			t.Fatalf("agent got %+v", m.Body)
		}
		if st, got := fetch(t, "GET", f.base+"/api/blobs/"+m.Body.BlobKey, f.agent.auth); st != http.StatusOK || !bytes.Equal(got, pic) {
			t.Fatalf("agent downloads the image it received: %d", st)
		}
	})
}

// TestImageMessageBlobMustBeTheShops documents a bug: an image message is accepted with any
// blob_key, also one that belongs to another shop or that was never uploaded, so a conversation
// stores a reference nobody in it can open. Bad input should get a clear error and change nothing.
func TestImageMessageBlobMustBeTheShops(t *testing.T) {
	t.Parallel()
	node := startNode(t, embeddedEnv(), "")
	base := node.URL()
	mine, theirs := quickShop(t, base), quickShop(t, base)
	st, foreign := uploadFile(t, base, theirs.buyer(t, "them"), "theirs.png", "image/png", smallPNG(t))
	if st != http.StatusCreated {
		t.Fatalf("upload in the other shop: %d %+v", st, foreign)
	}
	buyer := mine.buyer(t, "me")
	conv := startConversation(t, base, buyer, nil)
	b := dial(t, base, buyer)
	for name, key := range map[string]string{
		"another shop's blob":   foreign.BlobKey,
		"a blob never uploaded": fmt.Sprintf("uploads/%d/2020/01/%s.png", mine.id, strings.Repeat("ab", 12)),
	} {
		ack := b.request(map[string]any{"type": "send", "client_msg_id": "bad-" + name, "conversation_id": conv,
			"body": map[string]any{"type": "image", "blob_key": key, "name": "x.png", "mime": "image/png", "size": 10}})
		if ack.Type != "error" || (ack.Code != "EINVALID" && ack.Code != "ENOTFOUND") {
			t.Errorf("image message with %s (%s): want an EINVALID or ENOTFOUND error, got %s seq %d", name, key, ack.Type, ack.Seq)
		}
	}
}

// shutdownInBackground starts node.Shutdown and returns a function that waits for it to return
// without error, failing the test after 15 s.
func shutdownInBackground(t *testing.T, node *app.App) (wait func()) {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		done <- node.Shutdown(ctx)
	}()
	return func() {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Shutdown did not return")
		}
	}
}
