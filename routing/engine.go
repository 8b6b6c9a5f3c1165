package routing

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/session"
)

// Sessions is what the engine needs of the session package. app adapts *session.Service: Session and
// Sessions are its Store's methods, AssignTo is Service.AssignTo, FirstMessage reads the message at
// the session's FirstSeq from its Log.
type Sessions interface {
	// Session returns the session with id, ENOTFOUND when there is none.
	Session(ctx context.Context, id int64) (*session.Session, error)
	// Sessions lists sessions by filter, newest first.
	Sessions(ctx context.Context, f session.SessionFilter) ([]session.Session, error)
	// AssignTo gives the live session s (as the engine last read it: its shop and id say which one)
	// to agentID, records by, tells both sides; ECONFLICT when the session closed meanwhile.
	AssignTo(ctx context.Context, s *session.Session, agentID int64, by string) (*session.Session, error)
	// FirstMessage returns the text of the buyer's first message of the session, "" when it has none.
	FirstMessage(ctx context.Context, s *session.Session) (string, error)
}

// Directory is what the engine needs of the agent package; *agent.Store satisfies it.
type Directory interface {
	Shops(ctx context.Context) ([]agent.Shop, error)
	Shop(ctx context.Context, id int64) (*agent.Shop, error)
	StaffOf(ctx context.Context, shopID int64) ([]agent.Staff, error)
	Buyer(ctx context.Context, shopID, id int64) (*agent.Buyer, error)
}

// Presence tells which staff have sent a heartbeat lately; agent.Presence satisfies it. Optional: with
// it (and Config.PresenceTimeout), an agent whose status says online but whose heartbeat is overdue
// is not given sessions even before the sweeper marks them offline.
type Presence interface {
	Online(ctx context.Context, shopID int64, since time.Time) ([]int64, error)
}

// Ports are the engine's dependencies. Slots, Queue, Store, Sessions and Directory are required.
type Ports struct {
	Slots     Slots
	Queue     Queue
	Store     *Store
	Sessions  Sessions
	Directory Directory
	Presence  Presence
}

// Config tunes the engine; zero fields take DefaultConfig's values.
type Config struct {
	// CacheTTL bounds how long a node trusts its snapshot of a shop's staff and rules; AgentChanged,
	// AgentStatusChanged and RulesChanged drop them at once on this node.
	CacheTTL time.Duration
	// LoadCacheTTL bounds how long a node orders candidates by loads it read from Slots; its own claims
	// and releases update them at once. Capacities never depend on it: claims are atomic in Slots.
	LoadCacheTTL time.Duration
	// OfflineGrace is how long an agent may stay offline or away before their sessions are re-routed.
	OfflineGrace time.Duration
	// PresenceTimeout, with a Presence port, treats online agents without a heartbeat for that long as
	// gone.
	PresenceTimeout time.Duration
	// DrainBatch is how many queued sessions one drain looks at.
	DrainBatch int
	// DrainParallel is how many of a drain's claims and assignments run at once.
	DrainParallel int
	// ReconcileEvery is how often Tick rebuilds a shop's queue from the sessions table.
	ReconcileEvery time.Duration
	// TraceBuffer is the capacity of the trace channel; traces beyond it are dropped and counted.
	TraceBuffer int
	// FlushEvery is how often Run writes buffered traces.
	FlushEvery time.Duration
	// ETAWindow is how many recent dequeues the ETA is computed from.
	ETAWindow int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives warnings; slog.Default when nil.
	Logger *slog.Logger
	// Queued, when set, is told of every session the engine puts in the queue, so that its buyer can
	// be told their place at once.
	Queued func(ctx context.Context, s *session.Session)
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{CacheTTL: time.Second, LoadCacheTTL: 200 * time.Millisecond, OfflineGrace: time.Minute, DrainBatch: 100, DrainParallel: 8, ReconcileEvery: time.Minute,
		TraceBuffer: 16384, FlushEvery: 250 * time.Millisecond, ETAWindow: 32, Now: time.Now, Logger: slog.Default()}
}

// Stats counts what the engine did since it started.
type Stats struct {
	Assigned      int64 `json:"assigned"`
	Queued        int64 `json:"queued"`
	Raced         int64 `json:"raced"`
	RuleErrors    int64 `json:"rule_errors"`
	Escalations   int64 `json:"escalations"`
	NoAnswer      int64 `json:"no_answer"`
	Rerouted      int64 `json:"rerouted"`
	Forced        int64 `json:"forced"`
	TracesDropped int64 `json:"traces_dropped"`
	WriteErrors   int64 `json:"write_errors"`
}

type counters struct {
	assigned, queued, raced, ruleErrors, escalations, noAnswer, rerouted, forced, dropped, writeErrors atomic.Int64
}

// Engine is the shunting engine. It implements session.Router. Its methods are safe for concurrent
// use; the caller runs Run (trace writing) and calls Tick periodically on one node at a time.
type Engine struct {
	p       Ports
	cfg     Config
	started time.Time // idle times of agents never assigned count from here

	mu        sync.Mutex
	shops     map[int64]*shopState
	versions  map[[2]int64]*compiled
	transfers map[string]*compiled
	excluded  map[int64][]int64      // session → agents it must not go back to (no answer)
	noAnswer  map[int64]time.Time    // session → last no-answer attempt that found no one
	offline   map[[2]int64]time.Time // (shop, agent) → went offline or away
	reconcile map[int64]time.Time    // shop → last queue rebuild

	out   chan record
	stats counters

	// Drains after a release run on Run's goroutine when Run is running, so that a close never waits
	// for the queue to be served; requests for a shop coalesce while one is pending.
	running atomic.Bool
	kick    chan struct{}
	drainMu sync.Mutex
	pending map[int64]bool
}

var (
	_ session.Router = (*Engine)(nil)
	_ Directory      = (*agent.Store)(nil)
	_ Presence       = agent.Presence(nil)
	_ Sessions       = SessionPort{}
)

// New returns an engine over the ports.
func New(p Ports, cfg Config) (*Engine, error) {
	if p.Slots == nil || p.Queue == nil || p.Store == nil || p.Sessions == nil || p.Directory == nil {
		return nil, errors.New("routing: Slots, Queue, Store, Sessions and Directory are required")
	}
	d := DefaultConfig()
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = d.CacheTTL
	}
	if cfg.LoadCacheTTL <= 0 {
		cfg.LoadCacheTTL = d.LoadCacheTTL
	}
	if cfg.OfflineGrace <= 0 {
		cfg.OfflineGrace = d.OfflineGrace
	}
	if cfg.DrainParallel <= 0 {
		cfg.DrainParallel = d.DrainParallel
	}
	if cfg.DrainBatch <= 0 {
		cfg.DrainBatch = d.DrainBatch
	}
	if cfg.ReconcileEvery <= 0 {
		cfg.ReconcileEvery = d.ReconcileEvery
	}
	if cfg.TraceBuffer <= 0 {
		cfg.TraceBuffer = d.TraceBuffer
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = d.FlushEvery
	}
	if cfg.ETAWindow <= 0 {
		cfg.ETAWindow = d.ETAWindow
	}
	if cfg.Now == nil {
		cfg.Now = d.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = d.Logger
	}
	return &Engine{p: p, cfg: cfg, started: cfg.Now().UTC(), shops: map[int64]*shopState{}, versions: map[[2]int64]*compiled{},
		transfers: map[string]*compiled{}, excluded: map[int64][]int64{}, noAnswer: map[int64]time.Time{},
		offline: map[[2]int64]time.Time{}, reconcile: map[int64]time.Time{}, out: make(chan record, cfg.TraceBuffer),
		kick: make(chan struct{}, 1), pending: map[int64]bool{}}, nil
}

func (e *Engine) now() time.Time { return e.cfg.Now().UTC() }

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	c := &e.stats
	return Stats{Assigned: c.assigned.Load(), Queued: c.queued.Load(), Raced: c.raced.Load(), RuleErrors: c.ruleErrors.Load(),
		Escalations: c.escalations.Load(), NoAnswer: c.noAnswer.Load(), Rerouted: c.rerouted.Load(), Forced: c.forced.Load(),
		TracesDropped: c.dropped.Load(), WriteErrors: c.writeErrors.Load()}
}

// record is one row for the trace writer.
type record struct {
	trace  *Trace
	shadow *ShadowResult
}

func (e *Engine) emit(r record) {
	select {
	case e.out <- r:
	default:
		e.stats.dropped.Add(1)
	}
}

// Run writes buffered traces and shadow results every FlushEvery until ctx ends, then writes what is
// left. The caller runs it on a goroutine it owns. Writes are not cut short by ctx: a batch taken from
// the buffer is written (within 5 seconds) or counted as a write error.
//
// While it runs, Run also serves the queues of shops where a session closed (see Closed).
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(e.cfg.FlushEvery)
	defer t.Stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.drainLoop(ctx)
	}()
	defer func() { <-done }()
	flush := func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := e.Flush(fctx); err != nil {
			e.cfg.Logger.Warn("write routing traces", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			flush()
			return nil
		case <-t.C:
			flush()
		}
	}
}

// drainLoop serves the shops whose drains were requested, until ctx ends.
func (e *Engine) drainLoop(ctx context.Context) {
	e.running.Store(true)
	defer e.running.Store(false)
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
		}
		e.drainMu.Lock()
		shops := make([]int64, 0, len(e.pending))
		for id := range e.pending {
			shops = append(shops, id)
		}
		clear(e.pending)
		e.drainMu.Unlock()
		for _, id := range shops {
			if _, err := e.drain(ctx, id, e.now(), false); err != nil && ctx.Err() == nil {
				e.cfg.Logger.Warn("drain after a release", "shop", id, "err", err)
			}
		}
	}
}

// requestDrain asks Run to serve the shop's queue; false when Run is not running, and the caller
// must drain itself.
func (e *Engine) requestDrain(shopID int64) bool {
	if !e.running.Load() {
		return false
	}
	e.drainMu.Lock()
	e.pending[shopID] = true
	e.drainMu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default: // a kick is pending already: it will see this shop
	}
	return true
}

// Flush writes every buffered trace and shadow result now, in batches.
func (e *Engine) Flush(ctx context.Context) error {
	const batch = 500
	var firstErr error
	for {
		var traces []Trace
		var shadows []ShadowResult
	collect:
		for len(traces)+len(shadows) < batch {
			select {
			case r := <-e.out:
				if r.trace != nil {
					traces = append(traces, *r.trace)
				}
				if r.shadow != nil {
					shadows = append(shadows, *r.shadow)
				}
			default:
				break collect
			}
		}
		if len(traces)+len(shadows) == 0 {
			return firstErr
		}
		err := e.p.Store.SaveTraces(ctx, traces)
		if err == nil {
			err = e.p.Store.SaveShadowResults(ctx, shadows)
		}
		if err != nil {
			e.stats.writeErrors.Add(1)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
}

// RulesChanged drops the shop's cached rules on this node: call it after publishing, rolling back,
// changing schedules or the draft's shadow flag.
func (e *Engine) RulesChanged(shopID int64) { e.shop(shopID).rules.Store(nil) }

// etaWindow keeps the last dequeues of a shop: when and after how long a wait.
type etaWindow struct {
	at   []time.Time
	wait []time.Duration
	next int
}

func (w *etaWindow) add(size int, at time.Time, wait time.Duration) {
	if len(w.at) < size {
		w.at = append(w.at, at)
		w.wait = append(w.wait, wait)
		return
	}
	w.at[w.next], w.wait[w.next] = at, wait
	w.next = (w.next + 1) % size
}

// estimate is the expected wait at position pos: pos times the mean interval between dequeues over the
// window, measured up to now so that a stalled queue's estimate grows; with no dequeue yet, unknown (0).
func (w *etaWindow) estimate(pos int, now time.Time) time.Duration {
	n := len(w.at)
	if n == 0 || pos <= 0 {
		return 0
	}
	first := w.at[0]
	for _, t := range w.at {
		if t.Before(first) {
			first = t
		}
	}
	span := now.Sub(first)
	if span <= 0 {
		var sum time.Duration
		for _, d := range w.wait {
			sum += d
		}
		return sum / time.Duration(n)
	}
	return time.Duration(pos) * (span / time.Duration(n))
}
