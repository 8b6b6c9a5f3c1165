package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// pingFrame is the heartbeat every bench connection sends.
var pingFrame = []byte(`{"type":"ping"}`)

// wsLink is what every bench connection shares, whatever reads its frames: the dial with a
// credential, the wait for the server's hello, and serialised writes that mark the link dead on the
// first failure.
type wsLink struct {
	name  string
	ws    *websocket.Conn
	wmu   sync.Mutex
	dead  atomic.Bool
	hello chan struct{}
}

// dial connects to url as who; the caller starts its reader, then calls awaitHello.
func (l *wsLink) dial(ctx context.Context, dialer *websocket.Dialer, url string, who credential) error {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+who.token)
	if who.shop != 0 {
		h.Set("X-Shop", strconv.FormatInt(who.shop, 10))
	}
	ws, resp, err := dialer.DialContext(ctx, url, h)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("%s: dial %s: %w (HTTP %s)", l.name, url, err, resp.Status)
		}
		return fmt.Errorf("%s: dial %s: %w", l.name, url, err)
	}
	l.ws = ws
	return nil
}

// awaitHello waits for the reader to close l.hello; on a timeout or ctx's end it closes the link with
// closeLink and says why.
func (l *wsLink) awaitHello(ctx context.Context, closeLink func()) error {
	t := time.NewTimer(helloWait)
	defer t.Stop()
	var err error
	select {
	case <-l.hello:
		return nil
	case <-t.C:
		err = fmt.Errorf("%s: no hello frame within %s", l.name, helloWait)
	case <-ctx.Done():
		err = ctx.Err()
	}
	closeLink()
	return err
}

// write sends one text frame; a failed write leaves the link dead.
func (l *wsLink) write(b []byte) error {
	if l.dead.Load() {
		return fmt.Errorf("%s: connection is closed", l.name)
	}
	l.wmu.Lock()
	_ = l.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	err := l.ws.WriteMessage(websocket.TextMessage, b)
	l.wmu.Unlock()
	if err != nil {
		l.dead.Store(true)
		return fmt.Errorf("%s: write: %w", l.name, err)
	}
	return nil
}
