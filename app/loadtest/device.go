package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const (
	writeTimeout = 5 * time.Second
	// readTimeout is generous: the heartbeat brings a pong every pingEvery, so silence this long means
	// the server is gone.
	readTimeout = 60 * time.Second
	pingEvery   = 5 * time.Second
	helloWait   = 15 * time.Second
	// maxErrorLines bounds how many server error frames are printed; the rest are only counted.
	maxErrorLines = 10
)

// Frames the bench never needs are recognised by their first bytes and not decoded: events are
// encoded with "type" first.
var (
	skipUnread = []byte(`{"type":"unread"`)
	skipTyping = []byte(`{"type":"typing"`)
	skipRead   = []byte(`{"type":"read"`)
)

// frame is the part of a server frame the bench reads. Message is the message of a "message" event; in
// an "error" frame the same key is the error text, which the bench prints whole instead.
type frame struct {
	Type           string `json:"type"`
	Ref            string `json:"ref"`
	ClientMsgID    string `json:"client_msg_id"`
	ConversationID int64  `json:"conversation_id"`
	Seq            int64  `json:"seq"`
	Dup            bool   `json:"dup"`
	Error          struct {
		Code string `json:"code"`
	} `json:"error"`
	Message struct {
		ClientMsgID string `json:"client_msg_id"`
		SenderKind  string `json:"sender_kind"`
	} `json:"message"`
}

// run is the state every device of one bench run shares.
type run struct {
	base time.Time // client_msg_ids carry send times as offsets from base
	log  *logger
	// pairs maps each conversation to its buyer's and its agent's device; read-only during the run.
	pairs map[int64]pair

	sent, acked, failed, rejected, delivered atomic.Int64
	errorLines                               atomic.Int64
	// recentAcks feeds the progress lines; the summary uses the devices' exact records.
	recentAcks latencyHistogram
	readers    sync.WaitGroup
	closing    atomic.Bool
}

type pair struct{ buyer, agent int }

// device is one WebSocket connection: a buyer's, an agent's, or an idle buyer's.
type device struct {
	// wsLink's name is for diagnostics: "buyer 3", "agent 1", "idle 7"; its writes are serialised
	// because the sender and the heartbeat share the connection.
	wsLink
	run   *run
	idx   int // index among the run's devices; part of every client_msg_id it sends
	agent bool

	// Sender side: only the device's sender goroutine uses these.
	convs   []int64
	counter int64
	buf     []byte
	slots   chan struct{} // one token per send that may be outstanding

	// Reader side: only the device's reader goroutine touches these until it has returned.
	gotHello   bool
	recv       receipts
	expect     []expected
	ackLat     []time.Duration
	deliverLat []time.Duration
	dup, late  int64
	// lateExample describes the first out-of-order arrival, for the report.
	lateExample string
	dupAcks     int64
	badFrames   int64
	readErr     error
}

func newDevice(r *run, idx int, name string, agent bool, window int) *device {
	d := &device{wsLink: wsLink{name: name, hello: make(chan struct{})}, run: r, idx: idx, agent: agent}
	if window > 0 {
		d.slots = make(chan struct{}, window)
		for range window {
			d.slots <- struct{}{}
		}
	}
	return d
}

// connect dials url with the credential, starts the reader and waits for the server's hello.
func (d *device) connect(ctx context.Context, dialer *websocket.Dialer, url string, who credential) error {
	if err := d.dial(ctx, dialer, url, who); err != nil {
		return err
	}
	d.run.readers.Add(1)
	go d.readLoop()
	return d.awaitHello(ctx, d.close)
}

func (d *device) ping() error { return d.write(pingFrame) }

// close says goodbye and closes the connection, which ends the reader.
func (d *device) close() {
	if d.ws == nil {
		return
	}
	d.dead.Store(true)
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bench done")
	_ = d.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	_ = d.ws.Close()
}

// sendLoop sends into the device's conversations in turn until ctx ends: every interval (offset
// first) when interval > 0, else as fast as the window of outstanding sends allows.
func (d *device) sendLoop(ctx context.Context, start time.Time, interval, offset time.Duration, done func()) {
	defer done()
	if len(d.convs) == 0 {
		return
	}
	var tick *time.Timer
	next := start.Add(offset)
	if interval > 0 {
		tick = time.NewTimer(time.Until(next))
		defer tick.Stop()
	}
	for i := 0; ; i++ {
		if tick != nil {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-d.slots:
		}
		if err := d.send(d.convs[i%len(d.convs)]); err != nil {
			d.run.log.printf("%v; this sender stops", err)
			return
		}
		if tick != nil {
			next = next.Add(interval)
			tick.Reset(time.Until(next))
		}
	}
}

// send writes one text message. Its client_msg_id "<device>.<n>.<ns since base>" is unique and carries
// the send time, so acks and deliveries are timed without shared bookkeeping; ref is the same string.
func (d *device) send(conv int64) error {
	d.counter++
	b := append(d.buf[:0], `{"type":"send","ref":"`...)
	mark := len(b)
	b = strconv.AppendInt(b, int64(d.idx), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, d.counter, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(time.Since(d.run.base)), 10)
	end := len(b)
	b = append(b, `","client_msg_id":"`...)
	b = append(b, b[mark:end]...)
	b = append(b, `","conversation_id":`...)
	b = strconv.AppendInt(b, conv, 10)
	b = append(b, `,"body":{"type":"text","text":"bench message"}}`...)
	d.buf = b
	d.run.sent.Add(1)
	return d.write(b)
}

// msgID is what a bench client_msg_id says: who sent it and when.
type msgID struct {
	device int
	sentAt time.Duration
}

// parseMsgID decodes a client_msg_id written by send; other ids (setup messages, system notices) fail.
func parseMsgID(s string) (msgID, bool) {
	var parts [3]int64
	p, n, digits := 0, int64(0), 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9' && digits < 18:
			n = n*10 + int64(c-'0')
			digits++
		case c == '.' && digits > 0 && p < 2:
			parts[p], p, n, digits = n, p+1, 0, 0
		default:
			return msgID{}, false
		}
	}
	if p != 2 || digits == 0 {
		return msgID{}, false
	}
	parts[2] = n
	return msgID{device: int(parts[0]), sentAt: time.Duration(parts[2])}, true
}

func (d *device) readLoop() {
	defer d.run.readers.Done()
	var buf bytes.Buffer
	var f frame
	var deadlineSet time.Time
	for {
		if now := time.Now(); now.Sub(deadlineSet) > time.Second {
			_ = d.ws.SetReadDeadline(now.Add(readTimeout))
			deadlineSet = now
		}
		_, r, err := d.ws.NextReader()
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			if !d.dead.Load() && !d.run.closing.Load() {
				d.readErr = err
				d.run.log.printf("%s: connection lost: %v", d.name, err)
			}
			d.dead.Store(true)
			return
		}
		d.handle(buf.Bytes(), &f)
	}
}

// release returns a send slot, unless the accounting is off and every slot is already free.
func (d *device) release() {
	if d.slots == nil {
		return
	}
	select {
	case d.slots <- struct{}{}:
	default:
	}
}

func (d *device) handle(data []byte, f *frame) {
	if bytes.HasPrefix(data, skipUnread) || bytes.HasPrefix(data, skipTyping) || bytes.HasPrefix(data, skipRead) {
		return
	}
	*f = frame{}
	if !parseFrame(data, f) {
		*f = frame{}
		if err := json.Unmarshal(data, f); err != nil {
			d.badFrames++
			return
		}
	}
	r := d.run
	switch f.Type {
	case "hello":
		if !d.gotHello {
			d.gotHello = true
			close(d.hello)
		}
	case "message":
		d.arrived(f)
	case "ack":
		id, ok := parseMsgID(f.ClientMsgID)
		if !ok {
			return
		}
		lat := time.Since(r.base) - id.sentAt
		d.ackLat = append(d.ackLat, lat)
		r.recentAcks.add(lat)
		d.expect = append(d.expect, expected{device: d.peer(f.ConversationID), conv: f.ConversationID, seq: f.Seq})
		if f.Dup {
			d.dupAcks++
		}
		r.acked.Add(1)
		d.release()
	case "error":
		switch _, ours := parseMsgID(f.Ref); {
		case ours:
			r.failed.Add(1)
			d.release()
		case f.Error.Code == "ERATE":
			r.rejected.Add(1)
			d.release()
		}
		if n := r.errorLines.Add(1); n <= maxErrorLines {
			r.log.printf("%s: server error frame: %s", d.name, bytes.TrimSpace(data))
		}
	case "reconnect":
		r.log.printf("%s: server asked to reconnect elsewhere: %s", d.name, bytes.TrimSpace(data))
	}
}

// arrived checks a message frame: once per device and conversation, in increasing seq; and counts a
// bench message from the other side as delivered.
func (d *device) arrived(f *frame) {
	if d.recv == nil {
		d.recv = receipts{}
	}
	switch d.recv.observe(f.ConversationID, f.Seq) {
	case arrivalDup:
		d.dup++
		return
	case arrivalInvalid:
		d.badFrames++
		return
	case arrivalLate:
		d.late++
		if d.lateExample == "" {
			d.lateExample = fmt.Sprintf("%s got seq %d of conversation %d (written by %s) after seq %d",
				d.name, f.Seq, f.ConversationID, f.Message.SenderKind, d.recv[f.ConversationID].last)
		}
	}
	fromPeer := (d.agent && f.Message.SenderKind == "buyer") || (!d.agent && f.Message.SenderKind == "staff")
	if !fromPeer {
		return
	}
	if id, ok := parseMsgID(f.Message.ClientMsgID); ok {
		d.deliverLat = append(d.deliverLat, time.Since(d.run.base)-id.sentAt)
		d.run.delivered.Add(1)
	}
}

// peer is the device of the other side of conv, -1 when the conversation is unknown.
func (d *device) peer(conv int64) int {
	p, ok := d.run.pairs[conv]
	switch {
	case !ok:
		return -1
	case d.agent:
		return p.buyer
	}
	return p.agent
}

// logger writes progress lines to stderr from any goroutine.
type logger struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *logger) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "bench: "+format+"\n", args...)
}
