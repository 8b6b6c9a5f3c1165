package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/gorilla/websocket"
)

// Frames the route scenario never reads: message events (system notices), counters, pongs and status
// echoes. The server encodes "type" first; a frame that does not start so is simply decoded.
var routeSkip = [][]byte{
	[]byte(`{"type":"message"`), []byte(`{"type":"unread"`), []byte(`{"type":"read"`),
	[]byte(`{"type":"typing"`), []byte(`{"type":"pong"`), []byte(`{"type":"status"`),
}

// wireSession is the part of a Session object the route scenario reads.
type wireSession struct {
	ID         int64  `json:"id"`
	State      string `json:"state"`
	AgentID    int64  `json:"agent_id"`
	AssignedBy string `json:"assigned_by"`
}

// routeFrame is the part of a server frame the route scenario reads.
type routeFrame struct {
	Type    string       `json:"type"`
	Ref     string       `json:"ref"`
	Session *wireSession `json:"session"`
	Queue   *struct {
		SessionID int64 `json:"session_id"`
	} `json:"queue"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// rconn is one WebSocket connection of the route scenario: an agent's or a buyer's. Its reader hands
// every frame it decodes, stamped with the bench clock on arrival, to handle.
type rconn struct {
	wsLink
	handle func(at time.Duration, f *routeFrame)

	// Reader side: only the reader goroutine touches these until it has returned.
	gotHello  bool
	badFrames int64
	readErr   error
}

// connect dials url with the credential, starts the reader (counted in readers) and waits for hello.
func (c *rconn) connect(ctx context.Context, r *routeRun, dialer *websocket.Dialer, url string, who credential) error {
	c.hello = make(chan struct{})
	if err := c.dial(ctx, dialer, url, who); err != nil {
		return err
	}
	r.readers.Add(1)
	go c.readLoop(r)
	return c.awaitHello(ctx, c.close)
}

func (c *rconn) ping() error { return c.write(pingFrame) }

// close says goodbye and closes the connection, which ends the reader.
func (c *rconn) close() {
	if c.ws == nil {
		return
	}
	c.dead.Store(true)
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bench done")
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	_ = c.ws.Close()
}

func (c *rconn) readLoop(r *routeRun) {
	defer r.readers.Done()
	var buf bytes.Buffer
	var deadlineSet time.Time
	for {
		if now := time.Now(); now.Sub(deadlineSet) > time.Second {
			_ = c.ws.SetReadDeadline(now.Add(readTimeout))
			deadlineSet = now
		}
		_, rd, err := c.ws.NextReader()
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(rd)
		}
		if err != nil {
			if !c.dead.Load() && !r.closing.Load() {
				c.readErr = err
				r.log.printf("%s: connection lost: %v", c.name, err)
			}
			c.dead.Store(true)
			return
		}
		at := r.now()
		data := buf.Bytes()
		skip := false
		for _, p := range routeSkip {
			if bytes.HasPrefix(data, p) {
				skip = true
				break
			}
		}
		if skip {
			continue
		}
		var f routeFrame
		if err := json.Unmarshal(data, &f); err != nil {
			c.badFrames++
			continue
		}
		switch f.Type {
		case "hello":
			if !c.gotHello {
				c.gotHello = true
				close(c.hello)
			}
		case "reconnect":
			r.log.printf("%s: server asked to reconnect elsewhere: %s", c.name, bytes.TrimSpace(data))
		case "error":
			if n := r.errorLines.Add(1); n <= maxErrorLines {
				r.log.printf("%s: server error frame: %s", c.name, bytes.TrimSpace(data))
			}
		}
		if c.handle != nil {
			c.handle(at, &f)
		}
	}
}

// heartbeatConns pings every connection every pingEvery until ctx ends, spread over the interval in
// heartbeatSlices: agents count as online for routing only with a recent heartbeat, and the server
// drops silent connections.
func heartbeatConns(ctx context.Context, conns []*rconn) {
	t := time.NewTicker(pingEvery / heartbeatSlices)
	defer t.Stop()
	for slice := 0; ; slice = (slice + 1) % heartbeatSlices {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i := slice; i < len(conns); i += heartbeatSlices {
			if ctx.Err() != nil {
				return
			}
			if c := conns[i]; c.ws != nil && !c.dead.Load() {
				_ = c.ping() // a failed write marks the connection dead; its reader reports why
			}
		}
	}
}
