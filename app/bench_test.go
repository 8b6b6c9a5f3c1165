package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/shopdesk/shopdesk/session"
)

// Benchmarks of the push path of a node (see docs/BENCHMARKS.md for the figures):
//
//	go test -run '^$' -bench . -benchmem ./app/
//
// BenchmarkHubPush pushes a message event to N local devices over real loopback WebSockets, whose
// readers count what arrives; the time includes encoding, queueing and writing every frame.

func benchMessageEvent(seq int64) session.Event {
	m := session.Message{ConversationID: 42, Seq: seq, ClientMsgID: "12.345.678901234", ShopID: 7, SenderKind: session.PartyBuyer,
		SenderID: 99, Body: session.Body{Type: session.TypeText, Text: "bench message"}, CreatedAt: time.Now().UTC()}
	uc := session.UnreadCount{ConversationID: 42, Count: 3, Total: 5}
	return session.Event{Type: session.EventMessage, ConversationID: 42, Message: &m, Seq: seq, Unread: &uc}
}

// BenchmarkEncodeFrames is what a send costs the gateway in encoding: the pushed event, the ack, and
// the WebSocket framing of both.
func BenchmarkEncodeFrames(b *testing.B) {
	ev := benchMessageEvent(1)
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		data, err := json.Marshal(ev)
		if err != nil {
			b.Fatal(err)
		}
		ack, err := json.Marshal(outFrame{Type: "ack", Ref: "r1", ClientMsgID: ev.Message.ClientMsgID, ConversationID: 42, Seq: 1,
			ServerTime: &ev.Message.CreatedAt})
		if err != nil {
			b.Fatal(err)
		}
		buf = appendTextFrame(appendTextFrame(buf[:0], data), ack)
	}
}

func BenchmarkHubPush(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run("conns="+strconv.Itoa(n), func(b *testing.B) { benchHubPush(b, n) })
	}
}

func benchHubPush(b *testing.B, n int) {
	a := &App{log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: newMetrics()}
	h := newHub("bench", nil, a.log, a.metrics)
	var received atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		h.add(&wsConn{ws: ws, app: a, key: r.URL.Query().Get("key")})
	}))
	defer srv.Close()
	to := make([]session.Party, n)
	var clients []*websocket.Conn
	for i := range to {
		to[i] = session.BuyerParty(int64(i + 1))
		ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/?key="+to[i].Key(), nil)
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, ws)
		go func() {
			for {
				if _, _, err := ws.NextReader(); err != nil {
					return
				}
				received.Add(1)
			}
		}()
	}
	defer func() {
		for _, ws := range clients {
			ws.Close()
		}
	}()
	for h.Count() < n {
		time.Sleep(time.Millisecond)
	}
	// waitFor waits until the devices received want frames; pushes never run far ahead of the writes,
	// which would close a device's connection as too slow.
	waitFor := func(want int64) {
		deadline := time.Now().Add(10 * time.Second)
		for received.Load() < want {
			if time.Now().After(deadline) {
				b.Fatalf("devices received %d of %d frames", received.Load(), want)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	ctx := context.Background()
	var sent int64
	b.ReportAllocs()
	for b.Loop() {
		sent++
		h.Push(ctx, to, benchMessageEvent(sent))
		if sent%256 == 0 {
			waitFor(int64(n) * (sent - 128))
		}
	}
	waitFor(int64(n) * sent)
}

// TestBusBatchEncoding checks the batch format the bus publishes: what a node sends decodes, on
// another node, to the same events, and comes back to the sender as its own.
func TestBusBatchEncoding(t *testing.T) {
	ev, _ := json.Marshal(benchMessageEvent(1))
	in := []busMessage{
		{Node: "n\"1", To: []string{"b:1", "s:2"}, Data: ev},
		{Node: "n\"1", To: []string{"b:<3>"}, Data: json.RawMessage(`{"type":"typing","conversation_id":4}`)},
		{Node: "other", To: []string{"b:9"}, Data: ev},
	}
	buf, n := appendBusBatch(nil, in)
	if n != 2 {
		t.Fatalf("a batch holds one node's events: took %d", n)
	}
	var p busPayload
	if err := json.Unmarshal(buf, &p); err != nil {
		t.Fatalf("%s: %v", buf, err)
	}
	if p.Node != "n\"1" || len(p.Msgs) != 2 {
		t.Fatalf("decoded %+v", p)
	}
	for i, m := range p.Msgs {
		if strings.Join(m.To, ",") != strings.Join(in[i].To, ",") || string(m.Data) != string(in[i].Data) {
			t.Fatalf("event %d: %+v, sent %+v", i, m, in[i])
		}
	}
	// Nothing listens on port 1: the publisher the Publish below starts fails at once, harmlessly.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer rdb.Close()
	b := &redisBus{rdb: rdb}
	if b.ours(string(buf)) {
		t.Fatal("a bus that published nothing took a batch as its own")
	}
	_ = b.Publish(context.Background(), in[0])
	if !b.ours(string(buf)) {
		t.Fatal("the publishing node does not recognise its batch")
	}
	other, _ := appendBusBatch(nil, in[2:])
	if b.ours(string(other)) {
		t.Fatal("another node's batch taken as our own")
	}
}
