package loadtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sync/errgroup"

	"github.com/shopdesk/shopdesk/app"
)

func init() { app.BenchMain = Main }

const (
	// dialWorkers bounds concurrent WebSocket handshakes, so the listen backlog never overflows.
	dialWorkers = 64
	// fdMargin is the open files the bench needs besides its WebSockets: stdio, REST, metrics.
	fdMargin = 64
	// cacheSettle lets every node see the assignments: a node trusts its view of a session for 1 s.
	cacheSettle = 1100 * time.Millisecond
	// heartbeatSlices is how many groups the heartbeat pings in turn within one pingEvery.
	heartbeatSlices = 50
	// progressEvery is how often a running bench reports on stderr.
	progressEvery = 2 * time.Second
)

// options are the flags of `shopdesk bench`.
type options struct {
	scenario      string
	addrs         []*url.URL
	buyers        int
	agents        int
	rate          float64
	duration      time.Duration
	drain         time.Duration
	idleConns     int
	idleSettle    time.Duration
	window        int
	data          string
	operatorToken string

	// The route scenario's flags; see routeFlags.
	rules      int
	capacity   int
	hold       time.Duration
	flap       float64
	flapPeriod time.Duration
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	var addrs string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.scenario, "scenario", "chat", "load scenario: chat (buyers and agents write into assigned conversations; BENCH line), route (buyers open sessions that the node's routing assigns; ROUTE line), archive or search (in-process Store Scheduler and search figures; see --scenario archive -h)")
	fs.StringVar(&addrs, "addr", "http://127.0.0.1:8080", "base URL of a node, or a comma-separated list (loopback only)")
	fs.IntVar(&o.buyers, "buyers", 100, fmt.Sprintf("chat: buyers, each with one conversation; route: the buyer pool, each buyer looping send → assigned → --hold → close, %d unless given", defaultRouteBuyers))
	fs.IntVar(&o.agents, "agents", 10, "agents; chat: conversations are assigned to them round-robin; route: agent j has capacity --capacity and group g<j%10>")
	fs.Float64Var(&o.rate, "rate", 1000, "messages per second in total, half from buyers and half from agents; 0 = as fast as the window allows")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long senders send, or buyers open sessions (the measured window)")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "how long to wait afterwards: chat, for outstanding acks and deliveries; route, for waiting sessions to be assigned and held ones to close")
	fs.IntVar(&o.idleConns, "idle-conns", 0, "extra idle, heartbeating buyer connections for the memory figure")
	fs.DurationVar(&o.idleSettle, "idle-settle", 30*time.Second, "how long idle connections settle before the server's memory is read again")
	fs.IntVar(&o.window, "window", 16, "sends each sender may have outstanding (un-acked)")
	fs.StringVar(&o.data, "data", "./data", "the node's data directory, for operator.token")
	fs.StringVar(&o.operatorToken, "operator-token", "", "operator token (default: $SHOPDESK_OPERATOR_TOKEN, then <data>/operator.token)")
	routeFlags(fs, &o)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	switch o.scenario {
	case "chat":
		for _, name := range routeOnlyFlags {
			if given[name] {
				return o, fmt.Errorf("--%s belongs to the route scenario", name)
			}
		}
	case "route":
		if !given["buyers"] {
			o.buyers = defaultRouteBuyers
		}
		if err := o.checkRoute(given); err != nil {
			return o, err
		}
	default:
		return o, fmt.Errorf("unknown scenario %q (known: chat, route, archive, search)", o.scenario)
	}
	var err error
	if o.addrs, err = parseAddrs(addrs); err != nil {
		return o, err
	}
	switch {
	case o.buyers < 1 || o.agents < 1:
		return o, errors.New("--buyers and --agents must be at least 1")
	case o.rate < 0 || o.duration <= 0 || o.drain < 0 || o.idleConns < 0 || o.idleSettle < 0:
		return o, errors.New("--rate, --drain, --idle-conns and --idle-settle must not be negative, --duration must be positive")
	case o.window < 1:
		return o, errors.New("--window must be at least 1")
	}
	return o, nil
}

// findOperatorToken finds the token: the flag, then SHOPDESK_OPERATOR_TOKEN, then <data>/operator.token.
func (o options) findOperatorToken() (string, error) {
	if o.operatorToken != "" {
		return o.operatorToken, nil
	}
	if t := app.Getenv(app.EnvName("operator-token")); t != "" {
		return t, nil
	}
	path := filepath.Join(o.data, "operator.token")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no operator token: set --operator-token or SHOPDESK_OPERATOR_TOKEN, or point --data at the node's data directory (%w)", err)
	}
	if t := strings.TrimSpace(string(b)); t != "" {
		return t, nil
	}
	return "", fmt.Errorf("%s is empty", path)
}

// Main runs `shopdesk bench` and returns its exit status: 0 when the scenario's checks hold (chat: every
// send was acked and every acked message reached the other side exactly once and in order; route: see
// benchRoute; archive and search: see archiveMain and searchMain), 1 when not or when the run failed,
// 2 for bad flags. The last line of stdout is the summary (BENCH, ROUTE, ARCHIVE or SEARCH);
// everything else goes to stderr.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	switch scenarioOf(args) {
	case "archive":
		return archiveMain(ctx, args, stdout, stderr)
	case "search":
		return searchMain(ctx, args, stdout, stderr)
	}
	o, err := parseOptions(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "shopdesk bench:", err)
		}
		return 2
	}
	log := &logger{w: stderr}
	var s fmt.Stringer
	var pass bool
	if o.scenario == "route" {
		var rs routeSummary
		rs, pass, err = benchRoute(ctx, o, log)
		s = rs
	} else {
		var cs summary
		cs, pass, err = benchChat(ctx, o, log)
		s = cs
	}
	if err != nil {
		fmt.Fprintln(stderr, "shopdesk bench:", err)
		return 1
	}
	fmt.Fprintln(stdout, s)
	if !pass {
		return 1
	}
	return 0
}

// benchChat runs the chat scenario: setup, connections, the idle-memory figure, the load, the drain
// and the accounting.
func benchChat(ctx context.Context, o options, log *logger) (summary, bool, error) {
	opTok, err := o.findOperatorToken()
	if err != nil {
		return summary{}, false, err
	}
	if err := raiseNoFile(uint64(o.buyers + o.agents + o.idleConns + fdMargin)); err != nil {
		return summary{}, false, err
	}
	hc := newHTTPClient()
	defer hc.CloseIdleConnections()
	nodes := make([]*api, len(o.addrs))
	for i, u := range o.addrs {
		nodes[i] = &api{hc: hc, base: u.String()}
	}

	began := time.Now()
	fx, err := createFixture(ctx, nodes, opTok, o.buyers, o.agents, log)
	if err != nil {
		return summary{}, false, err
	}
	log.printf("%d agents and %d buyers with assigned conversations ready in %s", o.agents, o.buyers, time.Since(began).Round(time.Millisecond))

	r := &run{base: time.Now(), log: log, pairs: make(map[int64]pair, o.buyers)}
	devices := make([]*device, 0, o.buyers+o.agents)
	for i, b := range fx.buyers {
		d := newDevice(r, i, fmt.Sprintf("buyer %d", i), false, o.window)
		d.convs = []int64{b.conv}
		devices = append(devices, d)
		r.pairs[b.conv] = pair{buyer: i, agent: o.buyers + b.agent}
	}
	for j := range fx.agents {
		devices = append(devices, newDevice(r, o.buyers+j, fmt.Sprintf("agent %d", j), true, o.window))
	}
	for _, b := range fx.buyers {
		a := devices[o.buyers+b.agent]
		a.convs = append(a.convs, b.conv)
	}
	var idle []*device
	var idleMu sync.Mutex
	hbCtx, stopHeartbeat := context.WithCancel(context.Background())
	var hb sync.WaitGroup
	// finish stops the heartbeat and closes every connection; the readers have returned after it, so
	// their records may be read.
	finish := sync.OnceFunc(func() {
		stopHeartbeat()
		hb.Wait()
		closeAll(r, devices, idle)
	})
	defer finish()

	dialer := &websocket.Dialer{NetDialContext: dialLoopback, HandshakeTimeout: 10 * time.Second, ReadBufferSize: 16 << 10, WriteBufferSize: 4 << 10}
	err = connectAll(ctx, devices, func(d *device) (string, credential, error) {
		if d.agent {
			j := d.idx - o.buyers
			return wsURL(o.addrs[j%len(o.addrs)]), credential{token: fx.agents[j].token}, nil
		}
		return wsURL(o.addrs[d.idx%len(o.addrs)]), credential{token: fx.buyers[d.idx].token, shop: fx.shopID}, nil
	}, dialer, func(*device) {})
	if err != nil {
		return summary{}, false, err
	}
	log.printf("%d devices connected over %d node(s)", len(devices), len(o.addrs))

	hb.Add(1)
	go func() {
		defer hb.Done()
		heartbeat(hbCtx, func() []*device {
			idleMu.Lock()
			defer idleMu.Unlock()
			if len(idle) == 0 {
				return devices
			}
			return append(devices[:len(devices):len(devices)], idle...)
		})
	}()

	var rssGrowth float64
	if o.idleConns > 0 {
		if rssGrowth, err = idleMemory(ctx, o, fx, nodes, r, log, func(d *device) {
			idleMu.Lock()
			idle = append(idle, d)
			idleMu.Unlock()
		}); err != nil {
			return summary{}, false, err
		}
	}

	if wait := time.Until(fx.assignedAt.Add(cacheSettle)); wait > 0 {
		if err := sleep(ctx, wait); err != nil {
			return summary{}, false, err
		}
	}
	load(ctx, o, r, devices)
	if ctx.Err() != nil {
		return summary{}, false, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	finish()
	return account(o, r, devices, rssGrowth)
}

// connectAll connects every device, a bounded number at a time, and hands each to connected as soon
// as its hello arrived.
func connectAll(ctx context.Context, devices []*device, target func(*device) (string, credential, error),
	dialer *websocket.Dialer, connected func(*device)) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(dialWorkers)
	for _, d := range devices {
		g.Go(func() error {
			url, who, err := target(d)
			if err != nil {
				return err
			}
			if err := d.connect(gctx, dialer, url, who); err != nil {
				return err
			}
			connected(d)
			return nil
		})
	}
	return g.Wait()
}

// heartbeat pings every device every pingEvery until ctx ends: the server drops silent connections.
// The pings are spread over the interval in heartbeatSlices, so that thousands of idle connections
// do not hit the server in one burst and show up in the latencies of the load.
func heartbeat(ctx context.Context, devices func() []*device) {
	t := time.NewTicker(pingEvery / heartbeatSlices)
	defer t.Stop()
	for slice := 0; ; slice = (slice + 1) % heartbeatSlices {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		all := devices()
		for i := slice; i < len(all); i += heartbeatSlices {
			if ctx.Err() != nil {
				return
			}
			if d := all[i]; d.ws != nil && !d.dead.Load() {
				_ = d.ping() // a failed write marks the device dead; its reader reports why
			}
		}
	}
}

// idleMemory reads the nodes' resident memory, opens the idle connections, lets them settle and reads
// it again; it returns the growth in bytes.
func idleMemory(ctx context.Context, o options, fx *fixture, nodes []*api, r *run, log *logger, keep func(*device)) (float64, error) {
	before, err := residentBytes(ctx, nodes)
	if err != nil {
		return 0, err
	}
	dialer := &websocket.Dialer{NetDialContext: dialLoopback, HandshakeTimeout: 10 * time.Second,
		ReadBufferSize: 512, WriteBufferSize: 512, WriteBufferPool: &sync.Pool{}}
	idle := make([]*device, o.idleConns)
	for i := range idle {
		idle[i] = newDevice(r, i, fmt.Sprintf("idle %d", i), false, 0)
	}
	began := time.Now()
	err = connectAll(ctx, idle, func(d *device) (string, credential, error) {
		tok, err := buyerToken(fx, fmt.Sprintf("bench-idle-%d", d.idx))
		return wsURL(o.addrs[d.idx%len(o.addrs)]), credential{token: tok, shop: fx.shopID}, err
	}, dialer, keep)
	if err != nil {
		return 0, fmt.Errorf("idle connections: %w", err)
	}
	log.printf("%d idle connections open in %s; settling %s", o.idleConns, time.Since(began).Round(time.Millisecond), o.idleSettle)
	if err := sleep(ctx, o.idleSettle); err != nil {
		return 0, err
	}
	after, err := residentBytes(ctx, nodes)
	if err != nil {
		return 0, err
	}
	log.printf("server resident memory %.1f MiB before the idle connections, %.1f MiB after", before/(1<<20), after/(1<<20))
	if after <= before {
		log.printf("the server's memory did not grow: it reused memory it already held; the figure means something only against a freshly started server")
	}
	return after - before, nil
}

// load runs the senders for the duration, then waits up to the drain for outstanding acks and
// deliveries, reporting progress on stderr.
func load(ctx context.Context, o options, r *run, devices []*device) {
	var buyerEvery, agentEvery time.Duration
	if o.rate > 0 {
		half := o.rate / 2
		buyerEvery = time.Duration(float64(o.buyers) / half * float64(time.Second))
		agentEvery = time.Duration(float64(o.agents) / half * float64(time.Second))
		r.log.printf("sending %.0f msgs/s for %s: each buyer every %s, each agent every %s", o.rate, o.duration, buyerEvery, agentEvery)
	} else {
		r.log.printf("sending as fast as possible for %s, at most %d un-acked sends per sender", o.duration, o.window)
	}
	if o.agents > o.buyers {
		r.log.printf("%d agents have no conversation and will not send", o.agents-o.buyers)
	}
	start := time.Now()
	runCtx, stop := context.WithTimeout(ctx, o.duration)
	defer stop()
	var senders sync.WaitGroup
	for _, d := range devices {
		every, k, n := buyerEvery, d.idx, o.buyers
		if d.agent {
			every, k, n = agentEvery, d.idx-o.buyers, o.agents
		}
		senders.Add(1)
		// Spreading first sends over one interval keeps the senders from beating in step.
		go d.sendLoop(runCtx, start, every, every*time.Duration(k)/time.Duration(n), senders.Done)
	}
	progress := time.NewTicker(progressEvery)
	defer progress.Stop()
	for waiting := true; waiting; {
		select {
		case <-runCtx.Done():
			waiting = false
		case <-progress.C:
			r.log.printf("%5.1fs sent=%d acked=%d delivered=%d ack_p99_ms<=%g over the last %s", time.Since(start).Seconds(),
				r.sent.Load(), r.acked.Load(), r.delivered.Load(), r.recentAcks.takeP99().Seconds()*1000, progressEvery)
		}
	}
	senders.Wait()
	took := time.Since(start)
	r.log.printf("senders stopped after %s: sent=%d (%.0f msgs/s) acked=%d delivered=%d; draining up to %s",
		took.Round(time.Millisecond), r.sent.Load(), float64(r.sent.Load())/took.Seconds(), r.acked.Load(), r.delivered.Load(), o.drain)
	deadline := time.Now().Add(o.drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		sent, acked := r.sent.Load(), r.acked.Load()
		if acked+r.failed.Load()+r.rejected.Load() >= sent && r.delivered.Load() >= acked {
			break
		}
		_ = sleep(ctx, 20*time.Millisecond)
	}
}

// closeAll closes every connection and waits for the readers, so their records can be read.
func closeAll(r *run, devices, idle []*device) {
	r.closing.Store(true)
	for _, d := range devices {
		d.close()
	}
	for _, d := range idle {
		d.close()
	}
	r.readers.Wait()
}

// account turns the records of the devices, whose readers have returned, into the summary.
func account(o options, r *run, devices []*device, rssGrowth float64) (summary, bool, error) {
	var acked []expected
	var ackLat, deliverLat []time.Duration
	recv := make([]receipts, len(devices))
	var dup, late, dupAcks, bad, broken int64
	var lateExamples []string
	for i, d := range devices {
		if d.lateExample != "" && len(lateExamples) < 3 {
			lateExamples = append(lateExamples, d.lateExample)
		}
		acked = append(acked, d.expect...)
		ackLat = append(ackLat, d.ackLat...)
		deliverLat = append(deliverLat, d.deliverLat...)
		recv[i] = d.recv
		dup += d.dup
		late += d.late
		dupAcks += d.dupAcks
		bad += d.badFrames
		if d.readErr != nil {
			broken++
		}
	}
	lost := countLost(acked, recv)
	s := newSummary(r.sent.Load(), int64(len(acked)), r.delivered.Load(), lost, dup, o.duration, ackLat, deliverLat, o.idleConns, rssGrowth)
	pass := s.ok()
	if f, rej := r.failed.Load(), r.rejected.Load(); f+rej > 0 {
		r.log.printf("%d sends refused with an error frame, %d frames refused for the server's frame rate (ERATE)", f, rej)
		if rej > 0 {
			r.log.printf("the server limits frames per connection: start it with a higher --frame-rate, or lower --rate")
		}
	}
	if late > 0 {
		// The BENCH line and its exit rule have no field for order; this line is the record of it.
		r.log.printf("ORDER VIOLATION: out_of_order=%d messages reached a device after a higher seq of the same conversation; e.g. %s",
			late, strings.Join(lateExamples, "; "))
	}
	if dupAcks > 0 {
		r.log.printf("%d acks said dup=true for a client_msg_id sent once", dupAcks)
	}
	if bad > 0 {
		r.log.printf("%d frames could not be decoded or had no seq", bad)
	}
	if broken > 0 {
		r.log.printf("%d connections were lost during the run", broken)
	}
	if s.sent == 0 {
		r.log.printf("FAIL: nothing was sent")
		pass = false
	}
	return s, pass, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
