package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sync/errgroup"

	"github.com/shopdesk/shopdesk/routing"
	"github.com/shopdesk/shopdesk/rules"
)

const (
	// defaultRouteBuyers is the route scenario's buyer pool when --buyers is not given.
	defaultRouteBuyers = 2000
	// routeCategories is how many product categories sessions are spread over: c0 … c24.
	routeCategories = 25
	// routeGroups is how many agent groups there are: agent j is in g<j%10>.
	routeGroups = 10
	// pollAssigned is how long a buyer waits for its session's push before asking the node: pushes are
	// at most once.
	pollAssigned = 5 * time.Second
	// routeHTTPConns bounds the bench's HTTP connections per node (closes, polls).
	routeHTTPConns = 128
	// statusWait bounds the wait for the node to confirm the agents' first status.
	statusWait = 30 * time.Second
	// setupTimeout bounds the setup: shop, rule set, staff, conversations, connections, first status.
	setupTimeout = 5 * time.Minute
	// accountTimeout bounds what follows the drain: the stranded check, the cleanup, the claim log.
	accountTimeout = 3 * time.Minute
	// cleanupTimeout bounds the closing of the sessions a run leaves live.
	cleanupTimeout = time.Minute
	// maxClaimsBody bounds the claim log read: DefaultClaimLogMax events of about 130 bytes.
	maxClaimsBody = 64 << 20
)

// routeOnlyFlags and chatOnlyFlags are refused in the other scenario.
var (
	routeOnlyFlags = []string{"rules", "capacity", "hold", "flap", "flap-period"}
	chatOnlyFlags  = []string{"rate", "idle-conns", "idle-settle", "window"}
)

// routeUsage is printed after the flags by -h: what the ROUTE line's fields mean.
const routeUsage = `
The route scenario (--scenario route) creates a shop, publishes a rule set of --rules rules (rule i:
when session.product.category == "c<i>", target "g<i%10>" in agent.groups, least load ratio; the
default rule: any online agent), --agents agents (capacity --capacity, agent j in group g<j%10>, all set
online over their WebSockets), and --buyers buyers, buyer i with one conversation of category c<i%25>.
For --duration each buyer loops: send a message (opening a session), wait for the "session" event
with state open, hold it --hold, close it (POST /api/sessions/:id/close). Every --flap-period, a --flap
share of the agents is set offline and those set offline the period before come back online. Then it
stops starting sessions, sets every agent online, and waits up to --drain for waiting sessions to be
assigned and held ones to close. The last line of stdout:

  ROUTE sessions=<n> assigned=<n> queued=<n> over_capacity=<n> stranded=<n> assign_per_sec=<f>
        assign_p99_ms=<f> queue_wait_after_free_p99_ms=<f>

  sessions      sessions the buyers opened during --duration
  assigned      of those, the ones whose buyer got a "session" event with state open (by the drain's end)
  queued        of those, the ones the node did not assign at once: their buyer got a "queue" event,
                or their assigned_by is "routing:queue", or they were never assigned
  over_capacity claims above capacity in routing.ReplayClaims of GET /api/routing/claims, read at the end
  stranded      sessions still queued at the drain's end (GET /api/sessions/:id) while GET
                /api/routing/agents shows an agent online, active, with a heartbeat, in the group the
                session's rule targets (any agent for the default rule) and load+1 <= capacity; both
                looked at twice, 2s apart (a session being assigned at one look is not stranded)
  assign_per_sec  open events buyers received during --duration, divided by --duration
  assign_p99_ms   over assigned sessions: the "session" open event's arrival minus the moment the
                  buyer wrote the message that opened the session (bench clock)
  queue_wait_after_free_p99_ms  over queued sessions that were assigned: the open event's arrival
                  minus the latest capacity-freeing event the bench caused before it that could serve
                  the session (a buyer's close of a session whose agent was online and in the targeted
                  group, or such an agent set online; taken when the bench wrote the request), or
                  minus the session's send time when that is later; 0 when nothing was queued

Exit status 0 when over_capacity=0, stranded=0, sessions>0, the claim log replays without mismatch
and no send or close failed.
`

// routeFlags adds the route scenario's flags.
func routeFlags(fs *flag.FlagSet, o *options) {
	fs.IntVar(&o.rules, "rules", 20, "route: rules in the published rule set (see below)")
	fs.IntVar(&o.capacity, "capacity", 5, "route: each agent's capacity, in sessions")
	fs.DurationVar(&o.hold, "hold", time.Second, "route: how long a buyer keeps an assigned session before closing it")
	fs.Float64Var(&o.flap, "flap", 0.2, "route: share of the agents set offline every --flap-period (at most 0.5); those set offline the period before come back online")
	fs.DurationVar(&o.flapPeriod, "flap-period", 2*time.Second, "route: how often agents flap")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage of shopdesk bench:")
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), routeUsage)
	}
}

// checkRoute validates the route scenario's options; given holds the flags set on the command line.
func (o options) checkRoute(given map[string]bool) error {
	for _, name := range chatOnlyFlags {
		if given[name] {
			return fmt.Errorf("--%s belongs to the chat scenario", name)
		}
	}
	switch {
	case o.buyers < 1 || o.agents < 1:
		return errors.New("--buyers and --agents must be at least 1")
	case o.rules < 1 || o.rules > rules.MaxRules:
		return fmt.Errorf("--rules must be between 1 and %d", rules.MaxRules)
	case o.capacity < 1 || o.capacity > 1000:
		return errors.New("--capacity must be between 1 and 1000")
	case o.hold < 0 || o.drain < 0:
		return errors.New("--hold and --drain must not be negative")
	case o.duration <= 0:
		return errors.New("--duration must be positive")
	case math.IsNaN(o.flap) || o.flap < 0 || o.flap > 0.5:
		return errors.New("--flap must be between 0 and 0.5")
	case o.flap > 0 && o.flapPeriod <= 0:
		return errors.New("--flap-period must be positive")
	}
	return nil
}

// routeAgent is one agent's device and the bench's view of its status.
type routeAgent struct {
	idx    int
	id     int64
	group  int
	conn   *rconn
	online atomic.Bool // as the bench last set it
	node   int
	ref    atomic.Int64
}

// routeRun is the state the goroutines of one route run share.
type routeRun struct {
	o       options
	fx      *routeFixture
	base    time.Time
	log     *logger
	agents  []*routeAgent
	byID    map[int64]*routeAgent // read-only during the run
	readers sync.WaitGroup
	closing atomic.Bool

	mu    sync.Mutex
	frees []freeEvent
	late  []time.Duration // how late the pushes of lostPush sessions came, when they came

	opened, assigned, sendErrors, closeErrors, lostPushes, dropped atomic.Int64
	statusOK, statusErrors, errorLines                             atomic.Int64
}

func (r *routeRun) now() time.Duration { return time.Since(r.base) }

// freed records capacity the bench freed at agent a, when a is online as far as the bench knows.
func (r *routeRun) freed(a *routeAgent, at time.Duration) {
	if a == nil || !a.online.Load() {
		return
	}
	r.mu.Lock()
	r.frees = append(r.frees, freeEvent{at: at, group: a.group})
	r.mu.Unlock()
}

// setStatus sets an agent's status over its WebSocket; setting it online is a capacity-freeing event.
func (r *routeRun) setStatus(a *routeAgent, online bool) {
	status := "offline"
	at := r.now()
	a.online.Store(online)
	if online {
		status = "online"
		r.freed(a, at)
	}
	ref := fmt.Sprintf("st%d.%d", a.idx, a.ref.Add(1))
	if err := a.conn.write([]byte(`{"type":"status","ref":"` + ref + `","status":"` + status + `"}`)); err != nil {
		r.statusErrors.Add(1)
		r.log.printf("%v", err)
	}
}

// routeEvent is a frame a buyer's reader hands to the buyer's loop.
type routeEvent struct {
	at time.Duration
	f  routeFrame
}

// routeBuyer is one buyer of the pool: its device, its conversation and what it saw of its sessions.
type routeBuyer struct {
	idx      int
	category int
	conv     int64
	who      credential
	node     *api
	conn     *rconn
	events   chan routeEvent
	records  []*sessionRecord
	last     int64 // the newest session id the buyer is done with
	counter  int
	closeLat []time.Duration // how long each successful close request took
	// lost holds the sessions the buyer found open by asking, with when it gave up on their event.
	lost map[int64]time.Duration
}

// late records an open event of a session the buyer had given up on: a late push, not a lost one.
func (b *routeBuyer) late(r *routeRun, ev routeEvent) {
	ss := ev.f.Session
	if ss == nil || ss.State != "open" {
		return
	}
	if at, ok := b.lost[ss.ID]; ok {
		delete(b.lost, ss.ID)
		r.mu.Lock()
		r.late = append(r.late, ev.at-at)
		r.mu.Unlock()
	}
}

// benchRoute runs the route scenario (see routeUsage): setup, connections, the load with flapping
// agents, the drain, the stranded check, the claim-log replay.
func benchRoute(ctx context.Context, o options, log *logger) (routeSummary, bool, error) {
	opTok, err := o.findOperatorToken()
	if err != nil {
		return routeSummary{}, false, err
	}
	if err := raiseNoFile(uint64(o.buyers + o.agents + fdMargin + routeHTTPConns*len(o.addrs))); err != nil {
		return routeSummary{}, false, err
	}
	hc := newHTTPClient()
	tr := hc.Transport.(*http.Transport)
	tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost = routeHTTPConns, routeHTTPConns
	defer hc.CloseIdleConnections()
	nodes := make([]*api, len(o.addrs))
	for i, u := range o.addrs {
		nodes[i] = &api{hc: hc, base: u.String()}
	}

	began := time.Now()
	// Every phase but the load, which --duration and --drain bound, has its own bound.
	setupCtx, stopSetup := context.WithTimeout(ctx, setupTimeout)
	defer stopSetup()
	fx, err := createRouteFixture(setupCtx, nodes, opTok, o, log)
	if err != nil {
		return routeSummary{}, false, err
	}
	log.printf("shop ready (rule set of %d rules published, %d agents, %d buyers) in %s", o.rules, o.agents, o.buyers,
		time.Since(began).Round(time.Millisecond))

	r := &routeRun{o: o, fx: fx, base: time.Now(), log: log, byID: make(map[int64]*routeAgent, o.agents)}
	var conns []*rconn
	for j, al := range fx.agents {
		a := &routeAgent{idx: j, id: al.id, group: j % routeGroups, node: j % len(nodes)}
		a.conn = &rconn{wsLink: wsLink{name: fmt.Sprintf("agent %d", j)}, handle: func(_ time.Duration, f *routeFrame) {
			switch f.Type {
			case "ok":
				r.statusOK.Add(1)
			case "error":
				r.statusErrors.Add(1)
			}
		}}
		r.agents = append(r.agents, a)
		r.byID[a.id] = a
		conns = append(conns, a.conn)
	}
	buyers := make([]*routeBuyer, len(fx.buyers))
	for i, bc := range fx.buyers {
		b := &routeBuyer{idx: i, category: bc.category, conv: bc.conv, who: credential{token: bc.token, shop: fx.shopID},
			node: nodes[i%len(nodes)], events: make(chan routeEvent, 256)}
		b.conn = &rconn{wsLink: wsLink{name: fmt.Sprintf("buyer %d", i)}, handle: func(at time.Duration, f *routeFrame) {
			switch f.Type {
			case "ack", "error", "session", "queue":
				select {
				case b.events <- routeEvent{at: at, f: *f}:
				default:
					r.dropped.Add(1)
				}
			}
		}}
		buyers[i] = b
		conns = append(conns, b.conn)
	}

	hbCtx, stopHeartbeat := context.WithCancel(context.Background())
	var hb sync.WaitGroup
	finish := sync.OnceFunc(func() {
		stopHeartbeat()
		hb.Wait()
		r.closing.Store(true)
		for _, c := range conns {
			c.close()
		}
		r.readers.Wait()
	})
	defer finish()

	dialer := &websocket.Dialer{NetDialContext: dialLoopback, HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4 << 10, WriteBufferSize: 1 << 10}
	g, gctx := errgroup.WithContext(setupCtx)
	g.SetLimit(dialWorkers)
	for _, a := range r.agents {
		g.Go(func() error {
			return a.conn.connect(gctx, r, dialer, wsURL(o.addrs[a.node]), credential{token: fx.agents[a.idx].token})
		})
	}
	for _, b := range buyers {
		g.Go(func() error {
			return b.conn.connect(gctx, r, dialer, wsURL(o.addrs[b.idx%len(o.addrs)]), b.who)
		})
	}
	if err := g.Wait(); err != nil {
		return routeSummary{}, false, err
	}
	hb.Add(1)
	go func() {
		defer hb.Done()
		heartbeatConns(hbCtx, conns)
	}()
	for _, a := range r.agents {
		r.setStatus(a, true)
	}
	deadline := time.Now().Add(statusWait)
	for r.statusOK.Load()+r.statusErrors.Load() < int64(len(r.agents)) && time.Now().Before(deadline) {
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return routeSummary{}, false, err
		}
	}
	if n := r.statusOK.Load(); n < int64(len(r.agents)) {
		return routeSummary{}, false, fmt.Errorf("only %d of %d agents' status online was confirmed within %s", n, len(r.agents), statusWait)
	}
	log.printf("%d agents online and %d buyers connected over %d node(s)", len(r.agents), len(buyers), len(nodes))

	loadStart, loadEnd := r.routeLoad(ctx, buyers)
	if ctx.Err() != nil {
		return routeSummary{}, false, fmt.Errorf("interrupted: %w", ctx.Err())
	}

	var recs []*sessionRecord
	for _, b := range buyers {
		recs = append(recs, b.records...)
	}
	afterCtx, stopAfter := context.WithTimeout(ctx, accountTimeout)
	defer stopAfter()
	stranded, err := r.checkStranded(afterCtx, nodes[0], buyers)
	if err != nil {
		return routeSummary{}, false, err
	}
	r.cleanUp(afterCtx, buyers)
	replay, server, claims, err := readClaims(afterCtx, nodes[0], fx.manager)
	if err != nil {
		return routeSummary{}, false, err
	}
	finish()
	for _, b := range buyers {
		for drained := false; !drained; {
			select {
			case ev := <-b.events:
				if ev.f.Type == "session" {
					b.late(r, ev)
				}
			default:
				drained = true
			}
		}
	}

	r.mu.Lock()
	frees := append([]freeEvent(nil), r.frees...)
	r.mu.Unlock()
	s, fig := newRouteSummary(recs, frees, o.rules, loadStart, loadEnd, int64(replay.OverCapacity), stranded)
	log.printf("claim log: %d events, %d claims, %d releases, %d forced, max load %d, %d mismatches (the node's own replay: %d over capacity)",
		replay.Events, replay.Claims, replay.Releases, replay.Forced, replay.MaxLoad, replay.Mismatches, server.OverCapacity)
	log.printf("assign latency p50 %.2f ms, p99 %.2f ms over %d sessions; %d assigned during the load window",
		percentileMs(fig.assignLat, 50), percentileMs(fig.assignLat, 99), len(fig.assignLat), fig.assignedInLoad)
	log.printf("queued sessions: %d assigned, send to assignment p50 %.2f ms, p99 %.2f ms; wait after the last eligible free p50 %.2f ms, p99 %.2f ms; %d capacity-freeing events",
		len(fig.queuedLat), percentileMs(fig.queuedLat, 50), percentileMs(fig.queuedLat, 99), percentileMs(fig.queueWaits, 50),
		percentileMs(fig.queueWaits, 99), len(frees))
	var closeLat []time.Duration
	for _, b := range buyers {
		closeLat = append(closeLat, b.closeLat...)
	}
	slices.Sort(closeLat)
	log.printf("close requests (POST /api/sessions/:id/close, which releases the slot and drains the queue before it answers): %d, p50 %.2f ms, p99 %.2f ms, max %.2f ms",
		len(closeLat), percentileMs(closeLat, 50), percentileMs(closeLat, 99), percentileMs(closeLat, 100))
	pass := s.overCapacity == 0 && s.stranded == 0 && s.sessions > 0 && replay.Mismatches == 0
	if n := r.lostPushes.Load(); n > 0 {
		log.printf("%d sessions were assigned but their buyer got no open event (the node said open when asked, and no event came within %s more); they count as queued and not assigned",
			n, pollAssigned)
		log.printf("%d of them have no claim of their agent's capacity in the claim log: open at an agent without holding a slot",
			unclaimed(recs, claims))
		slices.Sort(r.late)
		log.printf("%d of those events came later (by the end of the run): %.0f ms after the buyer gave up at the median, %.0f ms at most",
			len(r.late), percentileMs(r.late, 50), percentileMs(r.late, 100))
	}
	if n := r.dropped.Load(); n > 0 {
		log.printf("%d frames were dropped by the bench: a buyer's event buffer was full", n)
		pass = false
	}
	if se, ce, st := r.sendErrors.Load(), r.closeErrors.Load(), r.statusErrors.Load(); se+ce+st > 0 {
		log.printf("FAIL: %d sends, %d closes and %d status changes failed", se, ce, st)
		pass = false
	}
	if replay.Mismatches > 0 {
		log.printf("FAIL: the claim log does not replay from empty (trimmed, or a bug): over_capacity is not proven")
	}
	for _, c := range conns {
		if c.readErr != nil {
			pass = false
		}
	}
	if s.sessions == 0 {
		log.printf("FAIL: no session was opened")
	}
	return s, pass, nil
}

// routeLoad runs the buyers for --duration while agents flap, then sets every agent online and waits
// up to --drain for the buyers to finish their sessions. It returns the load window on the bench clock.
func (r *routeRun) routeLoad(ctx context.Context, buyers []*routeBuyer) (time.Duration, time.Duration) {
	o := r.o
	r.log.printf("buyers open sessions for %s (hold %s); %.0f%% of the agents flap every %s", o.duration, o.hold, o.flap*100, o.flapPeriod)
	loadStart := r.now()
	loadCtx, stopLoad := context.WithTimeout(ctx, o.duration)
	defer stopLoad()
	drainCtx, stopDrain := context.WithTimeout(ctx, o.duration+o.drain)
	defer stopDrain()
	var wg sync.WaitGroup
	for _, b := range buyers {
		wg.Add(1)
		// Spreading first sends over a second keeps the buyers from beating in step.
		delay := time.Second * time.Duration(b.idx) / time.Duration(len(buyers))
		go func() {
			defer wg.Done()
			b.loop(loadCtx, drainCtx, r, delay)
		}()
	}
	flapDone := make(chan struct{})
	go func() {
		defer close(flapDone)
		r.flapLoop(loadCtx)
	}()
	progress := time.NewTicker(progressEvery)
	defer progress.Stop()
	var lastAssigned int64
	for waiting := true; waiting; {
		select {
		case <-loadCtx.Done():
			waiting = false
		case <-progress.C:
			a := r.assigned.Load()
			r.log.printf("%5.1fs sessions=%d assigned=%d (%.0f/s over the last %s)", (r.now() - loadStart).Seconds(),
				r.opened.Load(), a, float64(a-lastAssigned)/progressEvery.Seconds(), progressEvery)
			lastAssigned = a
		}
	}
	loadEnd := r.now()
	<-flapDone
	r.log.printf("load stopped after %s: sessions=%d assigned=%d; every agent online again; draining up to %s",
		(loadEnd - loadStart).Round(time.Millisecond), r.opened.Load(), r.assigned.Load(), o.drain)
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-drainCtx.Done():
		<-done
	}
	return loadStart, loadEnd
}

// flapLoop sets a --flap share of the agents offline every --flap-period, bringing those of the
// period before back online, until ctx ends; then it brings every offline agent back online.
func (r *routeRun) flapLoop(ctx context.Context) {
	n := int(math.Round(r.o.flap * float64(len(r.agents))))
	var off []*routeAgent
	defer func() {
		for _, a := range off {
			r.setStatus(a, true)
		}
	}()
	if n == 0 {
		<-ctx.Done()
		return
	}
	rng := rand.New(rand.NewPCG(1, 2))
	t := time.NewTicker(r.o.flapPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var candidates []*routeAgent
		for _, a := range r.agents {
			if a.online.Load() {
				candidates = append(candidates, a)
			}
		}
		rng.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
		next := candidates[:min(n, len(candidates))]
		for _, a := range next {
			r.setStatus(a, false)
		}
		for _, a := range off {
			r.setStatus(a, true)
		}
		off = next
	}
}

// loop is a buyer's life: send, wait for the assignment, hold, close, until loadCtx ends; a session
// under way is finished (or abandoned when drainCtx ends).
func (b *routeBuyer) loop(loadCtx, drainCtx context.Context, r *routeRun, delay time.Duration) {
	if sleep(loadCtx, delay) != nil {
		return
	}
	for loadCtx.Err() == nil {
		s := &sessionRecord{category: b.category}
		b.records = append(b.records, s)
		switch b.open(drainCtx, r, s) {
		case openStop:
			return
		case openClosed:
			continue
		}
		if sleep(drainCtx, r.o.hold) != nil {
			return
		}
		if !b.closeSession(drainCtx, r, s) {
			return
		}
	}
}

type openResult int

const (
	openAssigned openResult = iota
	openClosed              // the node closed the session before assigning it
	openStop                // the bench is done or the send failed
)

// open writes a message that opens a session and waits for the session's open event.
func (b *routeBuyer) open(ctx context.Context, r *routeRun, s *sessionRecord) openResult {
	b.counter++
	ref := fmt.Sprintf("b%d.%d.%d", b.idx, b.counter, time.Now().UnixNano())
	frame := `{"type":"send","ref":"` + ref + `","client_msg_id":"` + ref + `","conversation_id":` + strconv.FormatInt(b.conv, 10) +
		`,"body":{"type":"text","text":"bench: I need help"}}`
	s.sent = r.now()
	if err := b.conn.write([]byte(frame)); err != nil {
		if ctx.Err() == nil {
			r.sendErrors.Add(1)
			r.log.printf("%v; this buyer stops", err)
		}
		return openStop
	}
	poll := time.NewTimer(pollAssigned)
	defer poll.Stop()
	openSince := false
	opened := func(id int64) {
		if s.id == 0 {
			s.id = id
			r.opened.Add(1)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return openStop
		case <-poll.C:
			// Pushes are at most once: ask the node. A session it says is open gets one more
			// pollAssigned for its event (the node records the assignment before it pushes it).
			if live, err := b.liveSession(ctx); err == nil && live != nil && live.ID > b.last {
				opened(live.ID)
				if live.State == "open" && live.AgentID != 0 {
					if openSince {
						s.lostPush, s.agent, s.by = true, live.AgentID, live.AssignedBy
						r.lostPushes.Add(1)
						if b.lost == nil {
							b.lost = map[int64]time.Duration{}
						}
						b.lost[live.ID] = r.now()
						return openAssigned
					}
					openSince = true
				}
			}
			poll.Reset(pollAssigned)
		case ev := <-b.events:
			f := &ev.f
			switch f.Type {
			case "error":
				if f.Ref == ref {
					r.sendErrors.Add(1)
					return openStop
				}
			case "queue":
				if f.Queue != nil && f.Queue.SessionID > b.last {
					s.queueEvent = true
				}
			case "session":
				ss := f.Session
				b.late(r, ev)
				if ss == nil || ss.ID <= b.last {
					continue
				}
				opened(ss.ID)
				switch {
				case ss.State == "open" && ss.AgentID != 0:
					s.assigned, s.seen, s.agent, s.by = ev.at, true, ss.AgentID, ss.AssignedBy
					r.assigned.Add(1)
					return openAssigned
				case ss.State == "closed":
					s.closedByNode = true
					b.last = ss.ID
					r.log.printf("buyer %d: session %d closed before it was assigned", b.idx, ss.ID)
					return openClosed
				}
			}
		}
	}
}

// liveSession asks the node for the buyer's live session (GET /api/conversations), nil when none.
func (b *routeBuyer) liveSession(ctx context.Context) (*wireSession, error) {
	var out struct {
		Conversations []struct {
			ID      int64        `json:"id"`
			Session *wireSession `json:"session"`
		} `json:"conversations"`
	}
	if err := b.node.do(ctx, http.MethodGet, "/api/conversations", b.who, nil, &out); err != nil {
		return nil, err
	}
	for _, c := range out.Conversations {
		if c.ID == b.conv {
			return c.Session, nil
		}
	}
	return nil, nil
}

// closeSession closes the buyer's session; it is a capacity-freeing event when its agent is online.
func (b *routeBuyer) closeSession(ctx context.Context, r *routeRun, s *sessionRecord) bool {
	r.freed(r.byID[s.agent], r.now())
	began := time.Now()
	err := b.node.do(ctx, http.MethodPost, "/api/sessions/"+strconv.FormatInt(s.id, 10)+"/close", b.who, map[string]string{"outcome": "bench"}, nil)
	b.last = s.id
	if err == nil {
		b.closeLat = append(b.closeLat, time.Since(began))
	}
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		if n := r.closeErrors.Add(1); n <= maxErrorLines {
			r.log.printf("buyer %d: close session %d: %v", b.idx, s.id, err)
		}
		return false
	}
	return true
}

// strandedRecheck is how long apart the stranded check looks twice: a session being assigned at the
// moment of one look is queued in the node's records but already out of its queue, and the node's own
// periodic drain runs every second.
const strandedRecheck = 2 * time.Second

// checkStranded finds the sessions the buyers still wait for and looks twice, strandedRecheck apart,
// at their state (GET /api/sessions/:id) and at the agents (GET /api/routing/agents): a session is
// stranded when both looks find it queued while an eligible agent has room.
func (r *routeRun) checkStranded(ctx context.Context, op *api, buyers []*routeBuyer) (int64, error) {
	var wait []*sessionRecord
	for _, b := range buyers {
		n := len(b.records)
		if n == 0 {
			continue
		}
		s := b.records[n-1]
		if s.assignedAny() || s.closedByNode {
			continue
		}
		if s.id == 0 {
			live, err := b.liveSession(ctx)
			if err != nil {
				return 0, fmt.Errorf("stranded check: %w", err)
			}
			if live == nil || live.ID <= b.last {
				r.log.printf("buyer %d: its last message opened no session the node knows of", b.idx)
				continue
			}
			s.id = live.ID
		}
		wait = append(wait, s)
	}
	first, err := r.lookAtWaiting(ctx, op, wait)
	if err != nil {
		return 0, err
	}
	if len(first.queued) > 0 {
		if err := sleep(ctx, strandedRecheck); err != nil {
			return 0, err
		}
	}
	second := first
	if len(first.queued) > 0 {
		if second, err = r.lookAtWaiting(ctx, op, wait); err != nil {
			return 0, err
		}
	}
	var stranded int64
	for i, s := range wait {
		if first.queued[i] && second.queued[i] && countStranded([]int{s.category}, first.agents, r.o.rules) == 1 &&
			countStranded([]int{s.category}, second.agents, r.o.rules) == 1 {
			stranded++
		}
	}
	r.log.printf("after the drain: %d sessions not seen assigned: %d queued (%d of them, %s later, still queued, both times while an eligible agent had room), %d open without an event to the buyer; the node's queue length is %d",
		len(wait), len(first.queued), stranded, strandedRecheck, first.open, first.queueLength)
	return stranded, nil
}

// waitingLook is one look at the sessions the buyers wait for, by their index in the list looked at.
type waitingLook struct {
	queued      map[int]bool
	open        int
	agents      []agentView
	queueLength int
}

func (r *routeRun) lookAtWaiting(ctx context.Context, op *api, wait []*sessionRecord) (waitingLook, error) {
	look := waitingLook{queued: map[int]bool{}}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(setupWorkers)
	for i, s := range wait {
		g.Go(func() error {
			var out struct {
				Session wireSession `json:"session"`
			}
			if err := op.do(gctx, http.MethodGet, "/api/sessions/"+strconv.FormatInt(s.id, 10), r.fx.manager, nil, &out); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			switch out.Session.State {
			case "queued":
				look.queued[i] = true
			case "open":
				look.open++
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return look, fmt.Errorf("stranded check: %w", err)
	}
	var agents struct {
		Agents []agentView `json:"agents"`
	}
	if err := op.do(ctx, http.MethodGet, "/api/routing/agents", r.fx.manager, nil, &agents); err != nil {
		return look, fmt.Errorf("stranded check: %w", err)
	}
	look.agents = r.fx.managerless(agents.Agents)
	var q struct {
		Length int `json:"length"`
	}
	if err := op.do(ctx, http.MethodGet, "/api/routing/queue", r.fx.manager, nil, &q); err != nil {
		return look, fmt.Errorf("stranded check: %w", err)
	}
	look.queueLength = q.Length
	return look, nil
}

// managerless drops the shop's manager, who takes no sessions in this scenario, from agents.
func (fx *routeFixture) managerless(agents []agentView) []agentView {
	ours := make(map[int64]bool, len(fx.agents))
	for _, a := range fx.agents {
		ours[a.id] = true
	}
	out := agents[:0:0]
	for _, a := range agents {
		if ours[a.ID] {
			out = append(out, a)
		}
	}
	return out
}

// cleanUp closes the sessions the run left live, as their buyers, so that the throw-away shop leaves
// nothing waiting on the node. Failures are reported, not fatal: the figures are already taken.
func (r *routeRun) cleanUp(ctx context.Context, buyers []*routeBuyer) {
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	var failed atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(setupWorkers)
	for _, b := range buyers {
		n := len(b.records)
		if n == 0 {
			continue
		}
		s := b.records[n-1]
		if s.id == 0 || s.id <= b.last || s.closedByNode {
			continue
		}
		g.Go(func() error {
			err := b.node.do(gctx, http.MethodPost, "/api/sessions/"+strconv.FormatInt(s.id, 10)+"/close", b.who, map[string]string{"outcome": "bench cleanup"}, nil)
			if err != nil {
				failed.Add(1)
			}
			return nil
		})
	}
	_ = g.Wait()
	if n := failed.Load(); n > 0 {
		r.log.printf("cleanup: %d sessions could not be closed", n)
	}
}

// readClaims reads the shop's claim log and replays it; it also returns the node's own replay and the log.
func readClaims(ctx context.Context, op *api, manager credential) (routing.Replay, routing.Replay, []routing.ClaimEvent, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, op.base+"/api/routing/claims", nil)
	if err != nil {
		return routing.Replay{}, routing.Replay{}, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+manager.token)
	resp, err := op.hc.Do(req)
	if err != nil {
		return routing.Replay{}, routing.Replay{}, nil, fmt.Errorf("claim log: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return routing.Replay{}, routing.Replay{}, nil, fmt.Errorf("claim log: GET /api/routing/claims: %s", resp.Status)
	}
	var out struct {
		Events []routing.ClaimEvent `json:"events"`
		Replay routing.Replay       `json:"replay"`
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxClaimsBody))
	if err := dec.Decode(&out); err != nil {
		return routing.Replay{}, routing.Replay{}, nil, fmt.Errorf("claim log: decode: %w", err)
	}
	return routing.ReplayClaims(out.Events), out.Replay, out.Events, nil
}

// unclaimed counts the sessions found open only by asking (lostPush) for which the claim log has no
// claim or forced claim at the agent the node named.
func unclaimed(recs []*sessionRecord, claims []routing.ClaimEvent) int {
	held := map[[2]int64]bool{}
	for _, ev := range claims {
		if ev.Op == routing.OpClaim || ev.Op == routing.OpForce {
			held[[2]int64{ev.SessionID, ev.AgentID}] = true
		}
	}
	n := 0
	for _, s := range recs {
		if s.lostPush && !held[[2]int64{s.id, s.agent}] {
			n++
		}
	}
	return n
}
