package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"

	"github.com/shopdesk/shopdesk/session"
)

// busMessage carries one event to the devices of some parties, through every node. Large audiences
// (a fan group later) are split into messages of at most busBatch recipients each, and every node
// pushes to its local devices only: no node needs a global map of who is online where.
type busMessage struct {
	Node string          `json:"n"`
	To   []string        `json:"to"`
	Data json.RawMessage `json:"ev"`
}

const busBatch = 100

// Bus carries events between nodes. The embedded mode has none (one node); production uses Redis.
type Bus interface {
	Publish(ctx context.Context, m busMessage) error
	// Run delivers every message published by any node to deliver, until ctx ends.
	Run(ctx context.Context, deliver func(busMessage)) error
}

// Hub is a node's map of its local connections by party, and the session.Pusher of the node.
type Hub struct {
	node    string
	bus     Bus
	log     *slog.Logger
	metrics *metrics

	mu sync.RWMutex
	// conns holds each party's local connections: a party has a few devices at most, and a slice
	// costs an idle connection far less than a map would.
	conns map[string][]*wsConn
	total int
}

func newHub(node string, bus Bus, log *slog.Logger, m *metrics) *Hub {
	return &Hub{node: node, bus: bus, log: log, metrics: m, conns: map[string][]*wsConn{}}
}

func (h *Hub) add(c *wsConn) {
	h.mu.Lock()
	h.conns[c.key] = append(h.conns[c.key], c)
	h.total++
	h.mu.Unlock()
	h.metrics.connections.Inc()
}

func (h *Hub) remove(c *wsConn) {
	h.mu.Lock()
	set := h.conns[c.key]
	if i := slices.Index(set, c); i >= 0 {
		set = slices.Delete(set, i, i+1)
		h.total--
		h.metrics.connections.Dec()
	}
	if len(set) == 0 {
		delete(h.conns, c.key)
	} else {
		h.conns[c.key] = set
	}
	h.mu.Unlock()
}

// Count returns the number of local connections.
func (h *Hub) Count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.total
}

// connected reports whether party key has a device on this node.
func (h *Hub) connected(key string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.conns[key]) > 0
}

// Push delivers ev to the local devices of to and publishes it for the other nodes.
func (h *Hub) Push(ctx context.Context, to []session.Party, ev session.Event) {
	if len(to) == 0 {
		return
	}
	data, err := json.Marshal(ev)
	if err != nil {
		h.log.Error("encode event", "err", err)
		return
	}
	keys := make([]string, len(to))
	for i, p := range to {
		keys[i] = p.Key()
	}
	// Only the message a device sent itself is not echoed to it (it has its ack); every other event
	// the frame caused, such as the session it opened or a system notice, reaches it too.
	var skip *wsConn
	if origin := originOf(ctx); origin != nil && ev.Type == session.EventMessage && ev.Message != nil &&
		ev.Message.Sender().Key() == origin.key {
		skip = origin
	}
	h.deliverLocal(keys, data, skip)
	if h.bus == nil {
		return
	}
	for start := 0; start < len(keys); start += busBatch {
		end := min(start+busBatch, len(keys))
		if err := h.bus.Publish(ctx, busMessage{Node: h.node, To: keys[start:end], Data: data}); err != nil {
			h.metrics.busErrors.Inc()
			h.log.Warn("publish event", "err", err)
		}
	}
}

// deliverLocal queues data to every local device of keys except skip, the device whose frame caused
// the event: it has its answer (an ack) already.
func (h *Hub) deliverLocal(keys []string, data []byte, skip *wsConn) {
	h.mu.RLock()
	var targets []*wsConn
	for _, k := range keys {
		for _, c := range h.conns[k] {
			if c != skip {
				targets = append(targets, c)
			}
		}
	}
	h.mu.RUnlock()
	for _, c := range targets {
		c.send(data)
	}
	h.metrics.pushes.Add(float64(len(targets)))
}

// fromBus delivers another node's event to local devices.
func (h *Hub) fromBus(m busMessage) {
	if m.Node == h.node {
		return
	}
	h.deliverLocal(m.To, m.Data, nil)
}

// closeAll tells every local device to reconnect elsewhere and closes its connection.
func (h *Hub) closeAll(reason string) {
	frame, _ := json.Marshal(outFrame{Type: "reconnect", Reason: reason})
	h.mu.RLock()
	var all []*wsConn
	for _, set := range h.conns {
		all = append(all, set...)
	}
	h.mu.RUnlock()
	for _, c := range all {
		c.closeWith(frame)
	}
}

// closeAllAbruptly drops every local connection without a goodbye, as a crashed node would.
func (h *Hub) closeAllAbruptly() {
	h.mu.RLock()
	var all []*wsConn
	for _, set := range h.conns {
		all = append(all, set...)
	}
	h.mu.RUnlock()
	for _, c := range all {
		c.close()
	}
}

type originKey struct{}

// withOrigin marks ctx as caused by a frame of conn, so that pushes skip that device.
func withOrigin(ctx context.Context, conn *wsConn) context.Context {
	return context.WithValue(ctx, originKey{}, conn)
}

func originOf(ctx context.Context) *wsConn {
	c, _ := ctx.Value(originKey{}).(*wsConn)
	return c
}
