package app

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/session"
)

const (
	// maxFrameBytes bounds what a client frame may be; larger frames get ETOOLARGE and the connection
	// stays usable. Only frames beyond hardFrameBytes close it: reading them would be the attack.
	maxFrameBytes  = 64 << 10
	hardFrameBytes = 1 << 20
	// maxQueuedFrames is how far a device may fall behind before its connection is closed; it then
	// reconnects and syncs by seq, losing nothing.
	maxQueuedFrames = 4096
	// maxPendingFrames is how many read frames may wait for their handler before the read loop stops
	// reading, so that a fast sender meets TCP backpressure as it did when frames were handled inline.
	maxPendingFrames = 64
	heartbeatEvery   = 10 * time.Second
	writeTimeout     = 10 * time.Second
	frameTimeout     = 10 * time.Second
)

var writeBufferPool sync.Pool

// readBufferSize is the read buffer of a connection. The upgrader's ReadBufferSize stays 0 so that
// gorilla reads through the buffer serveWS hands it at the hijack (see hijacker).
const readBufferSize = 1024

// upgrader: gorilla writes only control frames itself (writeLoop frames the rest), and with a
// WriteBufferPool it keeps no write buffer per connection.
var upgrader = websocket.Upgrader{
	WriteBufferSize: 1024,
	WriteBufferPool: &writeBufferPool,
	// Origins are checked before upgrading, against the shop's allowed origins.
	CheckOrigin: func(*http.Request) bool { return true },
}

// clientFrame is any frame a device sends; which fields matter depends on Type (docs/protocol.md).
type clientFrame struct {
	Type           string        `json:"type"`
	Ref            string        `json:"ref,omitempty"`
	ClientMsgID    string        `json:"client_msg_id,omitempty"`
	ConversationID int64         `json:"conversation_id,omitempty"`
	Body           *session.Body `json:"body,omitempty"`
	After          int64         `json:"after,omitempty"`
	Before         int64         `json:"before,omitempty"`
	Limit          int           `json:"limit,omitempty"`
	Seq            int64         `json:"seq,omitempty"`
	Status         string        `json:"status,omitempty"`
}

// outFrame is every frame the server sends in answer to a client frame (events are session.Event).
// "type" comes first so that clients may dispatch on a prefix; absent fields are omitted.
type outFrame struct {
	Type             string               `json:"type"`
	Ref              string               `json:"ref,omitempty"`
	ClientMsgID      string               `json:"client_msg_id,omitempty"`
	ConversationID   int64                `json:"conversation_id,omitempty"`
	Seq              int64                `json:"seq,omitempty"`
	ServerTime       *time.Time           `json:"server_time,omitempty"`
	Dup              bool                 `json:"dup,omitempty"`
	Messages         []session.Message    `json:"messages,omitempty"`
	More             *bool                `json:"more,omitempty"`
	Unread           *session.UnreadCount `json:"unread,omitempty"`
	Status           agent.Status         `json:"status,omitempty"`
	Error            *frameError          `json:"error,omitempty"`
	Node             string               `json:"node,omitempty"`
	Party            *session.Party       `json:"party,omitempty"`
	ShopID           int64                `json:"shop_id,omitempty"`
	HeartbeatSeconds int                  `json:"heartbeat_seconds,omitempty"`
	FrameRate        int                  `json:"frame_rate,omitempty"`
	MaxFrameBytes    int                  `json:"max_frame_bytes,omitempty"`
	Reason           string               `json:"reason,omitempty"`
}

// frameError is the error of an "error" frame, shaped like the REST API's.
type frameError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// wsConn is one device's connection. Only its read loop owns a goroutine. Frames it reads are
// handled, in order, on a goroutine started when one arrives and ending when none waits; writes run
// on a goroutine started when frames are queued and ending when the queue drains. So an idle
// connection costs one goroutine, which only ever blocks in a read and keeps a small stack, and
// small buffers.
type wsConn struct {
	ws  *websocket.Conn
	br  *bufio.Reader // gorilla's read buffer
	app *App
	id  *identity
	key string

	mu      sync.Mutex
	out     [][]byte
	writing bool
	closing bool // a last frame is queued; nothing more is accepted
	closed  bool

	inMu     sync.Mutex
	in       []inFrame
	handling bool
	room     chan struct{} // closed when the read loop, stopped at maxPendingFrames, may go on

	// The token bucket; only the handler uses it.
	tokens float64
	last   time.Time
}

// inFrame is a frame read and waiting for the handler, or the error to answer it with.
type inFrame struct {
	data []byte
	err  error
}

// serveWS authenticates, checks the origin, upgrades and starts the read loop on a goroutine of its own.
func (a *App) serveWS(c *gin.Context) {
	if a.draining.Load() {
		fail(c, errorf(codeUnavailable, "node is shutting down; call /api/gateway for another"))
		return
	}
	id, err := a.auth.identify(c.Request)
	if err != nil {
		fail(c, err)
		return
	}
	origin := c.GetHeader("Origin")
	if id.buyer != nil && !originAllowed(id.shop, origin, c.Request.Host) {
		fail(c, errorf(codeOrigin, "origin not allowed for this shop"))
		return
	}
	if id.staff != nil && origin != "" && !sameOrigin(c.Request) && !a.clusterOrigin(c.Request.Context(), origin) {
		fail(c, errorf(codeOrigin, "staff connect from this cluster's pages only"))
		return
	}
	hj := &hijacker{ResponseWriter: c.Writer}
	ws, err := upgrader.Upgrade(hj, c.Request, nil)
	if err != nil {
		return // the upgrader has written the HTTP error
	}
	conn := &wsConn{ws: ws, br: hj.br, app: a, id: id, key: id.caller.Key(), tokens: float64(2 * a.cfg.FrameRate), last: time.Now()}
	a.hub.add(conn)
	if id.staff != nil {
		a.beat(c.Request.Context(), id)
	}
	now := time.Now().UTC()
	party := id.caller.Party
	conn.reply(outFrame{Type: "hello", Node: a.nodeID, Party: &party, ShopID: id.shop.ID, ServerTime: &now,
		HeartbeatSeconds: int(heartbeatEvery / time.Second), FrameRate: a.cfg.FrameRate, MaxFrameBytes: maxFrameBytes})
	// The read loop gets a goroutine of its own, so that the request's goroutine, whose stack grew while
	// authenticating, ends: an idle connection then costs a small stack.
	go func() {
		defer a.hub.remove(conn)
		defer conn.close()
		conn.readLoop()
	}()
}

func (a *App) beat(ctx context.Context, id *identity) {
	if err := a.presence.Beat(ctx, id.shop.ID, id.staff.ID, time.Now()); err != nil {
		a.log.Warn("presence beat", "staff", id.staff.ID, "err", err)
	}
}

func (c *wsConn) readLoop() {
	c.ws.SetReadLimit(hardFrameBytes)
	deadline := c.app.cfg.PresenceTimeout + 2*heartbeatEvery
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(deadline))
		// Wait for the next frame here, in a shallow call, rather than deep inside gorilla: a
		// goroutine's stack shrinks, at a GC, only below a quarter of its size, so a read loop parked
		// in gorilla keeps the 8 KiB it may start with, while one parked here shrinks to 2-4 KiB.
		// With thousands of idle devices that is most of what a connection costs. Peek fills the
		// buffer gorilla reads from, so this costs no extra read.
		if c.br != nil && c.br.Buffered() == 0 {
			if _, err := c.br.Peek(1); err != nil {
				return
			}
		}
		kind, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		switch {
		case kind != websocket.TextMessage:
			c.receive(inFrame{err: errorf(codeBadFrame, "frames are JSON text")})
		case len(data) > maxFrameBytes:
			c.receive(inFrame{err: errorf(codeTooLarge, "frame larger than 64 KiB")})
		default:
			c.receive(inFrame{data: data})
		}
	}
}

// hijacker hands gorilla, at the upgrade, a read buffer of readBufferSize that gorilla keeps as its
// own (it reuses a hijacked reader when the upgrader's ReadBufferSize is 0), so that the read loop
// can wait for a frame in it: see readLoop.
type hijacker struct {
	gin.ResponseWriter
	br *bufio.Reader
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := h.ResponseWriter.Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		return nc, brw, err // gorilla refuses a client that wrote before the handshake ended
	}
	h.br = bufio.NewReaderSize(nc, readBufferSize)
	return nc, bufio.NewReadWriter(h.br, brw.Writer), nil
}

// receive queues a read frame for the handler, starting one if none runs, and waits while
// maxPendingFrames are queued already.
func (c *wsConn) receive(f inFrame) {
	c.inMu.Lock()
	for len(c.in) >= maxPendingFrames {
		if c.room == nil {
			c.room = make(chan struct{})
		}
		room := c.room
		c.inMu.Unlock()
		<-room
		c.inMu.Lock()
	}
	c.in = append(c.in, f)
	start := !c.handling
	c.handling = true
	c.inMu.Unlock()
	if start {
		go c.handleQueued()
	}
}

// handleQueued handles read frames in the order they came until none waits.
func (c *wsConn) handleQueued() {
	for {
		c.inMu.Lock()
		batch := c.in
		c.in = nil
		if c.room != nil {
			close(c.room)
			c.room = nil
		}
		if len(batch) == 0 {
			c.handling = false
			c.inMu.Unlock()
			return
		}
		c.inMu.Unlock()
		for i, f := range batch {
			// The handler writes the answer to a frame itself, which saves starting a writer for it;
			// pushes for the device that come meanwhile wait for that write (one frame's handling at
			// most) and go with it.
			own := c.holdWrites()
			if f.err != nil {
				c.fail("", f.err)
			} else {
				c.handle(f.data)
			}
			batch[i] = inFrame{}
			if own {
				c.writeLoop()
			}
		}
	}
}

// holdWrites makes the caller the connection's writer, if none runs: frames then queue until the
// caller runs writeLoop.
func (c *wsConn) holdWrites() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writing || c.closed {
		return false
	}
	c.writing = true
	return true
}

// allow is the per-connection token bucket: FrameRate per second, bursts of twice that.
func (c *wsConn) allow() bool {
	now := time.Now()
	rate := float64(c.app.cfg.FrameRate)
	c.tokens += now.Sub(c.last).Seconds() * rate
	if c.tokens > 2*rate {
		c.tokens = 2 * rate
	}
	c.last = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

func (c *wsConn) handle(data []byte) {
	var f clientFrame
	if err := json.Unmarshal(data, &f); err != nil {
		c.fail("", errorf(codeBadFrame, "malformed JSON frame: "+err.Error()))
		return
	}
	if !c.allow() {
		c.fail(f.Ref, errorf(codeRate, "too many frames; slow down"))
		return
	}
	a := c.app
	a.metrics.frames.WithLabelValues(frameLabel(f.Type)).Inc()
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	caller := c.id.caller
	switch f.Type {
	case "ping":
		if c.id.staff != nil {
			a.beat(ctx, c.id)
		}
		now := time.Now().UTC()
		c.reply(outFrame{Type: "pong", Ref: f.Ref, ServerTime: &now})
	case "send":
		if f.ConversationID == 0 || f.Body == nil {
			c.fail(f.Ref, errorf(codeInvalid, "send needs conversation_id, client_msg_id and body"))
			return
		}
		m, dup, err := a.sessions.Send(withOrigin(ctx, c), caller, f.ConversationID, f.ClientMsgID, *f.Body)
		if err != nil {
			c.fail(f.Ref, err)
			return
		}
		if !dup {
			a.metrics.sent.Inc()
		}
		c.reply(outFrame{Type: "ack", Ref: f.Ref, ClientMsgID: m.ClientMsgID, ConversationID: m.ConversationID,
			Seq: m.Seq, ServerTime: &m.CreatedAt, Dup: dup})
	case "sync":
		if f.ConversationID == 0 {
			c.fail(f.Ref, errorf(codeInvalid, "sync needs conversation_id"))
			return
		}
		limit := f.Limit
		if limit <= 0 || limit > a.sessions.Config.MaxPage {
			limit = a.sessions.Config.MaxPage
		}
		msgs, err := a.sessions.History(ctx, caller, f.ConversationID, f.After, f.Before, limit)
		if err != nil {
			c.fail(f.Ref, err)
			return
		}
		if msgs == nil {
			msgs = []session.Message{}
		}
		more := len(msgs) == limit
		c.reply(outFrame{Type: "messages", Ref: f.Ref, ConversationID: f.ConversationID, Messages: msgs, More: &more})
	case "read":
		uc, err := a.sessions.MarkRead(ctx, caller, f.ConversationID, f.Seq)
		if err != nil {
			c.fail(f.Ref, err)
			return
		}
		c.reply(outFrame{Type: "ok", Ref: f.Ref, Unread: &uc})
	case "typing":
		if err := a.sessions.Typing(ctx, caller, f.ConversationID); err != nil {
			c.fail(f.Ref, err)
			return
		}
		if f.Ref != "" {
			c.reply(outFrame{Type: "ok", Ref: f.Ref})
		}
	case "status":
		if c.id.staff == nil {
			c.fail(f.Ref, errorf(codeForbidden, "only staff have a status"))
			return
		}
		st, err := a.setStatus(ctx, c.id, agent.Status(f.Status))
		if err != nil {
			c.fail(f.Ref, err)
			return
		}
		c.reply(outFrame{Type: "ok", Ref: f.Ref, Status: st})
	case "":
		c.fail(f.Ref, errorf(codeInvalid, "frame type is required"))
	default:
		c.fail(f.Ref, errorf(codeUnknownType, "unknown frame type "+f.Type))
	}
}

var knownFrames = map[string]bool{"ping": true, "send": true, "sync": true, "read": true, "typing": true, "status": true}

func frameLabel(t string) string {
	if knownFrames[t] {
		return t
	}
	return "other"
}

func (c *wsConn) reply(v outFrame) {
	data, err := json.Marshal(v)
	if err != nil {
		c.app.log.Error("encode frame", "err", err)
		return
	}
	c.send(data)
}

// fail sends an error frame; the connection stays open.
func (c *wsConn) fail(ref string, err error) {
	code := errorCode(err)
	if code == codeInternal {
		c.app.log.Error("frame failed", "err", err)
	}
	c.app.metrics.frameErrors.WithLabelValues(code).Inc()
	c.reply(outFrame{Type: "error", Ref: ref, Error: &frameError{Code: code, Message: errorMessage(err)}})
}

// send queues a frame for the device and starts a writer if none runs.
func (c *wsConn) send(data []byte) {
	c.mu.Lock()
	if c.closed || c.closing {
		c.mu.Unlock()
		return
	}
	if len(c.out) >= maxQueuedFrames {
		c.mu.Unlock()
		c.app.log.Warn("slow device: closing its connection", "party", c.key)
		c.close()
		return
	}
	c.out = append(c.out, data)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// writeLoop writes queued frames until the queue is empty. Frames are encoded here, unmasked as a
// server's are, and whatever has queued goes out in one write: a busy device then costs one syscall
// for many frames instead of one each (gorilla flushes every message on its own). gorilla still
// writes its control frames (pong, close) itself; each of its writes and each of ours is one Write
// of whole frames, which the connection never interleaves.
func (c *wsConn) writeLoop() {
	for {
		// Let the goroutines that are about to queue more frames for this device run first: under
		// load they join this write instead of costing one of their own; an idle node loses nothing.
		runtime.Gosched()
		c.mu.Lock()
		batch := c.out
		c.out = nil
		if len(batch) == 0 || c.closed {
			c.writing = false
			closing := c.closing
			c.mu.Unlock()
			if closing {
				c.writeGoingAway()
				c.close()
			}
			return
		}
		c.mu.Unlock()
		if err := c.writeFrames(batch); err != nil {
			c.close()
			c.mu.Lock()
			c.writing = false
			c.mu.Unlock()
			return
		}
	}
}

// frameBuffers holds the buffers writeLoop encodes into, so that an idle connection holds none.
var frameBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

const (
	// writeChunk is how much writeFrames encodes before writing.
	writeChunk = 64 << 10
	// keepBuffer is the largest buffer returned to frameBuffers.
	keepBuffer = 256 << 10
)

func (c *wsConn) writeFrames(batch [][]byte) error {
	bp := frameBuffers.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= keepBuffer {
			*bp = buf[:0]
			frameBuffers.Put(bp)
		}
	}()
	conn := c.ws.NetConn()
	_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	for i, b := range batch {
		buf = appendTextFrame(buf, b)
		if len(buf) < writeChunk && i < len(batch)-1 {
			continue
		}
		if _, err := conn.Write(buf); err != nil {
			return err
		}
		buf = buf[:0]
	}
	return nil
}

// appendTextFrame appends payload as one final, unmasked text frame (RFC 6455 section 5.2).
func appendTextFrame(buf, payload []byte) []byte {
	const head = 0x80 | websocket.TextMessage // FIN, opcode text
	switch n := len(payload); {
	case n < 126:
		buf = append(buf, head, byte(n))
	case n <= 0xffff:
		buf = append(buf, head, 126, byte(n>>8), byte(n))
	default:
		buf = append(buf, head, 127)
		buf = binary.BigEndian.AppendUint64(buf, uint64(n))
	}
	return append(buf, payload...)
}

// goingAway is a close frame with status 1001 ("going away"), so clients see a clean close.
var goingAway = []byte{0x80 | websocket.CloseMessage, 2, 0x03, 0xe9}

// writeGoingAway ends the WebSocket with a close frame; only the write loop calls it, as the last write.
func (c *wsConn) writeGoingAway() {
	conn := c.ws.NetConn()
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = conn.Write(goingAway)
}

// closeWith abandons queued frames, writes frame as the last one and closes the connection.
func (c *wsConn) closeWith(frame []byte) {
	c.mu.Lock()
	if c.closed || c.closing {
		c.mu.Unlock()
		return
	}
	c.out = [][]byte{frame}
	c.closing = true
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

func (c *wsConn) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.out = nil
	c.mu.Unlock()
	_ = c.ws.Close()
}
