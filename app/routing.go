package app

import (
	"context"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/routing"
	"github.com/shopdesk/shopdesk/session"
)

// traceRetention is how long assignment traces are kept.
const traceRetention = 30 * 24 * time.Hour

// wireRouting builds the shunting engine over the node's backends and puts it between session and
// the agents: every session that opens, closes, or is handed over passes through it.
func (a *App) wireRouting() error {
	var slots routing.Slots
	var queue routing.Queue
	if a.rdb != nil {
		slots = routing.NewRedisSlots(a.rdb, a.cfg.RedisPrefix)
		queue = routing.NewRedisQueue(a.rdb, a.cfg.RedisPrefix)
	} else {
		slots, queue = routing.NewMemorySlots(), routing.NewMemoryQueue()
	}
	a.queued = &queueNotifier{app: a, last: map[int64]queueSeen{}}
	eng, err := routing.New(routing.Ports{Slots: slots, Queue: queue, Store: routing.NewStore(a.db),
		Sessions: routing.SessionPort{Service: a.sessions}, Directory: a.agents.Store, Presence: a.presence},
		routing.Config{PresenceTimeout: a.cfg.PresenceTimeout, OfflineGrace: a.cfg.RerouteGrace, Logger: a.log,
			Queued: func(ctx context.Context, s *session.Session) {
				a.queued.tell(ctx, s.ShopID, s.ID, s.BuyerID, s.ConversationID, true)
			}})
	if err != nil {
		return err
	}
	a.routing = eng
	a.sessions.Router = eng
	return nil
}

// startRouting rebuilds queues and slots that a restart or a Redis loss may have lost, and starts the
// engine's trace writer and its periodic work (escalations, no-answer, re-routes, queue notices),
// the latter on one node at a time.
func (a *App) startRouting(ctx context.Context) {
	if err := a.routing.Recover(ctx); err != nil {
		a.log.Warn("routing recover", "err", err)
	}
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		_ = a.routing.Run(ctx)
	}()
	a.every(ctx, time.Second, a.routingTick)
	a.every(ctx, time.Hour, func(ctx context.Context) {
		release, ok := a.lease.acquire(ctx, "routing-prune", time.Hour)
		if !ok {
			return
		}
		defer release()
		if _, err := a.routing.Store().Prune(ctx, time.Now().Add(-traceRetention)); err != nil {
			a.log.Warn("prune routing traces", "err", err)
		}
	})
}

func (a *App) routingTick(ctx context.Context) {
	release, ok := a.lease.acquire(ctx, "routing-tick", 10*time.Second)
	if !ok {
		return
	}
	defer release()
	now := time.Now()
	if err := a.routing.Tick(ctx, now); err != nil && ctx.Err() == nil {
		a.metrics.routingErrors.Inc()
	}
	a.queued.sweep(ctx)
	st := a.routing.Stats()
	a.metrics.routingAssigned.Set(float64(st.Assigned))
	a.metrics.routingQueued.Set(float64(st.Queued))
}

// agentStatusChanged tells the engine, which drains the queue when the agent can take work and starts
// the re-route grace period when they cannot.
func (a *App) agentStatusChanged(ctx context.Context, shopID, staffID int64, st agent.Status) {
	if err := a.routing.AgentStatusChanged(ctx, shopID, staffID, st, time.Now()); err != nil {
		a.log.Warn("routing: agent status", "staff", staffID, "err", err)
	}
}

// agentChanged tells the engine that a staff member's settings changed (capacity, groups, skills,
// active): more room may serve the queue at once.
func (a *App) agentChanged(c *gin.Context, shopID, staffID int64) {
	a.staffNames.forget(shopID, staffID)
	if err := a.routing.AgentChanged(c.Request.Context(), shopID, staffID); err != nil {
		a.log.Warn("routing: agent changed", "staff", staffID, "err", err)
	}
}

// queueSeen is what a buyer was last told about their place.
type queueSeen struct {
	buyerID, convID int64
	place           session.QueuePlace
	seen            bool
}

// queueNotifier pushes "queue" events to waiting buyers when their place or the estimate changes.
type queueNotifier struct {
	app  *App
	mu   sync.Mutex
	last map[int64]queueSeen // session id →
}

// tell pushes the session's place to its buyer, when it is queued and the place changed (or always
// when force is set).
func (q *queueNotifier) tell(ctx context.Context, shopID, sessionID, buyerID, convID int64, force bool) {
	pos, total, eta, err := q.app.routing.Position(ctx, shopID, sessionID)
	if err != nil || pos == 0 {
		return
	}
	q.tellPlace(ctx, buyerID, convID, session.QueuePlace{SessionID: sessionID, Position: pos, Total: total,
		ETASeconds: int(eta.Round(time.Second) / time.Second)}, force)
}

// tellPlace pushes place to the buyer when it differs from what they were last told (or always, with
// force).
func (q *queueNotifier) tellPlace(ctx context.Context, buyerID, convID int64, place session.QueuePlace, force bool) {
	sessionID := place.SessionID
	q.mu.Lock()
	prev, ok := q.last[sessionID]
	q.last[sessionID] = queueSeen{buyerID: buyerID, convID: convID, place: place, seen: true}
	q.mu.Unlock()
	if ok && !force && prev.place == place {
		return
	}
	q.app.hub.Push(ctx, []session.Party{session.BuyerParty(buyerID)}, session.Event{Type: session.EventQueue, ConversationID: convID, Queue: &place})
}

// sweep walks every shop's queue and tells each waiting buyer whose place changed; it forgets the
// sessions that left the queue.
func (q *queueNotifier) sweep(ctx context.Context) {
	shops, err := q.app.agents.Store.Shops(ctx)
	if err != nil {
		return
	}
	q.mu.Lock()
	for id, s := range q.last {
		s.seen = false
		q.last[id] = s
	}
	q.mu.Unlock()
	for _, sh := range shops {
		entries, err := q.app.routing.Queue(ctx, sh.ID, maxQueueNotices)
		if err != nil || len(entries) == 0 {
			continue
		}
		total, err := q.app.routing.QueueLength(ctx, sh.ID)
		if err != nil {
			continue
		}
		for _, e := range entries {
			q.mu.Lock()
			known, ok := q.last[e.SessionID]
			q.mu.Unlock()
			if !ok {
				s, err := q.app.sessions.Store.Session(ctx, e.SessionID)
				if err != nil {
					continue
				}
				known = queueSeen{buyerID: s.BuyerID, convID: s.ConversationID}
			}
			q.tellPlace(ctx, known.buyerID, known.convID, session.QueuePlace{SessionID: e.SessionID, Position: e.Position,
				Total: total, ETASeconds: e.ETASeconds}, false)
		}
	}
	q.mu.Lock()
	for id, s := range q.last {
		if !s.seen {
			delete(q.last, id)
		}
	}
	q.mu.Unlock()
}

// maxQueueNotices bounds how many waiting buyers of one shop are told their place each second; the
// rest learn it from GET /api/sessions/:id/queue or when they move up.
const maxQueueNotices = 500
