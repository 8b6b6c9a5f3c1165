package routing

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/rules"
	"github.com/shopdesk/shopdesk/session"
)

// Values of session.Session.AssignedBy the engine writes. Only sessions assigned by routing
// (prefix "routing") are re-assigned when their agent does not answer.
const (
	AssignedByRouting  = "routing"
	AssignedByQueue    = "routing:queue"
	AssignedByReroute  = "routing:reroute"
	AssignedByNoAnswer = "routing:noanswer"
	AssignedByTransfer = "transfer"
	AssignedByManual   = "manual"
)

// errClosed reports a session that closed while it was being routed.
var errClosed = errorf(session.ECONFLICT, "the session closed while it was being routed")

// routeOpts says what a live routing is for and what to do when no agent can take the session.
type routeOpts struct {
	cause   string
	exclude []int64
	waited  time.Duration
	by      string
	// queue: when no one can take the session, queue it at enqueuedAt; otherwise it stays as it is
	// (with its current agent).
	queue      bool
	enqueuedAt time.Time
	now        time.Time
}

// Opened routes a session that just opened: it is assigned to the best eligible agent at once, or
// queued with its rule's priority and stays in state queued. It implements session.Router.
func (e *Engine) Opened(ctx context.Context, s *session.Session) error {
	if s == nil || s.State == session.StateClosed {
		return nil
	}
	now := e.now()
	_, err := e.route(ctx, s, routeOpts{cause: CauseOpened, by: AssignedByRouting, queue: true, enqueuedAt: s.OpenedAt, now: now})
	if err != nil {
		// Whatever failed (a backend, the caller's deadline), the session must not wait unseen until
		// the next rebuild of the queue: queue it where every drain finds it. Its rule's priority is
		// restored by the first drain that finds no room, or by the rebuild.
		qctx, cancel := session.AfterCommit(ctx)
		defer cancel()
		if qerr := e.push(qctx, e.shop(s.ShopID), s.ID, 0, s.OpenedAt); qerr != nil {
			e.cfg.Logger.Warn("queue a session whose routing failed", "session", s.ID, "err", qerr)
		} else {
			e.queued(qctx, s)
		}
	}
	return err
}

// queued tells Config.Queued, if any, that s waits in the queue.
func (e *Engine) queued(ctx context.Context, s *session.Session) {
	if e.cfg.Queued != nil {
		e.cfg.Queued(ctx, s)
	}
}

// Closed releases the session's slot, takes it out of the queue, and drains the shop's queue into the
// freed capacity: on Run's goroutine when Run is running (the close does not wait for it), here
// otherwise. It implements session.Router.
func (e *Engine) Closed(ctx context.Context, s *session.Session) error {
	if s == nil {
		return nil
	}
	slot, released, err := e.p.Slots.Release(ctx, s.ShopID, 0, s.ID)
	if err != nil {
		return err
	}
	sh := e.shop(s.ShopID)
	if released {
		sh.adjustLoad(slot.AgentID, -slot.Units)
	}
	if _, err := e.p.Queue.Remove(ctx, s.ShopID, s.ID); err != nil {
		return err
	}
	e.mu.Lock()
	delete(e.excluded, s.ID)
	delete(e.noAnswer, s.ID)
	e.mu.Unlock()
	if !released || e.requestDrain(s.ShopID) {
		return nil
	}
	_, err = e.drain(ctx, s.ShopID, e.now(), false)
	return err
}

// route decides for s with the rules in force, claims the first agent that still has room and assigns
// the session; when no one can take it, it queues it or leaves it as it is (routeOpts.queue).
func (e *Engine) route(ctx context.Context, s *session.Session, o routeOpts) (*Trace, error) {
	sh := e.shop(s.ShopID)
	snap, err := e.snapshot(ctx, sh, o.now)
	if err != nil {
		return nil, err
	}
	cv, rs, err := e.activeRules(ctx, sh, o.now)
	if err != nil {
		return nil, err
	}
	env, err := e.sessionEnv(ctx, sh, snap, s, o.now, cv, rs.shadow)
	if err != nil {
		return nil, err
	}
	// First with the node's load cache; when it finds no one, or everyone it found was taken
	// meanwhile, once more with loads read from Slots, before queueing.
	opts := decideOpts{cause: o.cause, exclude: o.exclude, waited: o.waited, session: s, now: o.now}
	var d, shadow *decision
	var agentID int64
	var raced []int64
	for {
		if d, err = e.decide(ctx, sh, snap, cv, env, opts); err != nil {
			return nil, err
		}
		if len(d.cands) == 0 && !opts.fresh {
			opts.fresh = true
			continue
		}
		if shadow == nil && o.cause == CauseOpened {
			shadow = e.shadowRun(ctx, sh, snap, rs, env, d, s, o)
		}
		d.tr.Raced = append(raced, d.tr.Raced...)
		agentID, err = e.commit(ctx, sh, d, s, o.by, o.now)
		if err == nil && agentID == 0 && len(d.cands) > 0 && !opts.fresh {
			opts.fresh, raced = true, d.tr.Raced
			continue
		}
		break
	}
	switch {
	case errors.Is(err, errClosed):
		d.tr.Outcome = OutcomeClosed
		e.emit(record{trace: d.tr})
		return d.tr, nil
	case err != nil:
		return nil, err
	case agentID != 0:
		if o.cause == CauseReroute {
			e.stats.rerouted.Add(1)
		}
	case o.queue:
		if err := e.push(ctx, sh, s.ID, d.rule.Priority(), o.enqueuedAt); err != nil {
			return nil, err
		}
		e.stats.queued.Add(1)
		d.tr.Outcome = OutcomeQueued
		e.queued(ctx, s)
	default:
		d.tr.Outcome = OutcomeKept
	}
	e.emit(record{trace: d.tr, shadow: shadowResult(d, shadow)})
	return d.tr, nil
}

// commit claims the decision's candidates in order until one claim succeeds (a failed claim means
// another decision took the agent's last units first) and assigns the session to that agent. It
// returns 0 when every claim failed.
func (e *Engine) commit(ctx context.Context, sh *shopState, d *decision, s *session.Session, by string, now time.Time) (int64, error) {
	var prev Holding
	var hadPrev bool
	if s.AgentID != 0 {
		var err error
		if prev, hadPrev, err = e.p.Slots.Held(ctx, s.ShopID, s.ID); err != nil {
			return 0, err
		}
	}
	for _, c := range d.cands {
		st := d.snap.staff[c.i]
		// The filters put only the shop's online agents here; this keeps the invariants local.
		if st.ShopID != s.ShopID || st.Status != agent.StatusOnline || !st.Active {
			continue
		}
		ok, err := e.p.Slots.Claim(ctx, s.ShopID, st.ID, s.ID, d.weight, st.Capacity)
		if err != nil {
			return 0, err
		}
		if !ok {
			d.tr.Raced = append(d.tr.Raced, st.ID)
			e.stats.raced.Add(1)
			sh.setLoad(st.ID, st.Capacity)
			continue
		}
		moved := hadPrev && prev.AgentID != st.ID
		if moved {
			sh.adjustLoad(prev.AgentID, -prev.Units)
		}
		if !hadPrev || moved {
			sh.adjustLoad(st.ID, d.weight)
		}
		if _, err := e.p.Sessions.AssignTo(ctx, s, st.ID, by); err != nil {
			// The claim must be undone, or kept, whatever became of ctx.
			uctx, cancel := session.AfterCommit(ctx)
			defer cancel()
			code := errorCode(err)
			closed := code == session.ECONFLICT
			if code == session.ENOTFOUND || code == session.EINVALID { // the agent was removed or deactivated, or the session is gone
				cur, gerr := e.p.Sessions.Session(uctx, s.ID)
				closed = gerr != nil || cur.State == session.StateClosed
			} else if !closed {
				// A timeout may come after the store recorded the assignment: then it stands, and so
				// does its claim; but nobody has been told, so it is announced again (AssignTo is
				// idempotent for the same agent), on a deadline of its own.
				if cur, gerr := e.p.Sessions.Session(uctx, s.ID); gerr == nil && cur.State == session.StateOpen && cur.AgentID == st.ID {
					if _, aerr := e.p.Sessions.AssignTo(uctx, cur, st.ID, by); aerr != nil {
						e.cfg.Logger.Warn("announce an assignment recorded before a timeout", "session", s.ID, "agent", st.ID, "err", aerr)
					}
					e.noteAssigned(sh, d, st.ID, now)
					d.tr.Outcome, d.tr.AgentID = OutcomeAssigned, st.ID
					return st.ID, nil
				}
			}
			e.undoClaim(uctx, sh, d.snap, s, st.ID, prev, hadPrev, !closed)
			switch {
			case closed:
				return 0, errClosed
			case code == session.ENOTFOUND || code == session.EINVALID:
				continue
			}
			return 0, err
		}
		e.noteAssigned(sh, d, st.ID, now)
		d.tr.Outcome, d.tr.AgentID = OutcomeAssigned, st.ID
		return st.ID, nil
	}
	return 0, nil
}

// undoClaim gives back a claim whose assignment failed and, with restore, when the claim had moved the
// session's slot from its previous agent, gives that slot back (logged as forced: it is not a new
// decision). A claim that found the session already with agentID changed nothing and is kept.
func (e *Engine) undoClaim(ctx context.Context, sh *shopState, snap *snapshot, s *session.Session, agentID int64, prev Holding, hadPrev, restore bool) {
	if hadPrev && prev.AgentID == agentID {
		return
	}
	if slot, released, err := e.p.Slots.Release(ctx, s.ShopID, agentID, s.ID); err != nil {
		e.cfg.Logger.Warn("release slot after failed assignment", "session", s.ID, "agent", agentID, "err", err)
	} else if released {
		sh.adjustLoad(agentID, -slot.Units)
	}
	if restore && hadPrev {
		capacity := prev.Units
		if i, ok := snap.byID[prev.AgentID]; ok {
			capacity = snap.staff[i].Capacity
		}
		if _, err := e.p.Slots.ForceClaim(ctx, s.ShopID, prev.AgentID, s.ID, prev.Units, capacity); err != nil {
			e.cfg.Logger.Warn("restore slot after failed assignment", "session", s.ID, "agent", prev.AgentID, "err", err)
		} else {
			sh.adjustLoad(prev.AgentID, prev.Units)
		}
	}
}

// noteAssigned updates the routing memory the preferences read.
func (e *Engine) noteAssigned(sh *shopState, d *decision, agentID int64, now time.Time) {
	sh.mu.Lock()
	sh.lastAssigned[agentID] = now
	sh.assigned[agentID]++
	sh.rr[[2]int{d.cv.number, d.idx}] = agentID
	sh.mu.Unlock()
	e.stats.assigned.Add(1)
	if d.tr.Escalations > 0 {
		e.stats.escalations.Add(1)
	}
}

// push queues a session and tells this node's drains that the queue is no longer known empty.
func (e *Engine) push(ctx context.Context, sh *shopState, sessionID int64, priority int, at time.Time) error {
	if err := e.p.Queue.Push(ctx, sh.id, sessionID, priority, at); err != nil {
		return err
	}
	sh.mu.Lock()
	sh.queueEmptyAt = time.Time{}
	sh.queueLenAt = time.Time{}
	sh.mu.Unlock()
	return nil
}

// drain assigns the shop's queued sessions, in queue order, to eligible agents with room. With tick,
// it also moves escalated sessions to their new rule's priority even when no one has room.
//
// Decisions are made one after the other, in queue order, each seeing the units the ones before it
// are about to take; the claims and assignments that follow (round trips to Slots and the session
// store) run DrainParallel at a time. A claim that finds its agent full moves on to the decision's next
// candidate, and a session none of them can take goes back to the queue in its place.
//
// A drain after a release is skipped while this node saw the queue empty less than CacheTTL ago and
// has queued nothing since: a session another node queued meanwhile waits for the next drain after
// that, or for Tick.
func (e *Engine) drain(ctx context.Context, shopID int64, now time.Time, tick bool) (int, error) {
	// A session whose claims all raced (another drain of the shop, here or on another node, took
	// the room it was decided for) went back to the queue while room may be left elsewhere: drain
	// again at once, a bounded number of times, instead of leaving it for the next release or tick.
	total := 0
	for pass := 0; ; pass++ {
		n, raced, err := e.drainPass(ctx, shopID, now, tick)
		total += n
		if err != nil || raced == 0 || pass == drainPasses-1 {
			return total, err
		}
	}
}

// drainPasses bounds the passes of one drain.
const drainPasses = 3

// drainPass is one pass of drain over the head of the queue: how many it assigned, and how many went
// back to the queue after their claims raced.
func (e *Engine) drainPass(ctx context.Context, shopID int64, now time.Time, tick bool) (int, int, error) {
	sh := e.shop(shopID)
	if !tick {
		sh.mu.Lock()
		empty := fresh(sh.queueEmptyAt, now, e.cfg.CacheTTL)
		sh.mu.Unlock()
		if empty {
			return 0, 0, nil
		}
	}
	entries, err := e.p.Queue.Ordered(ctx, shopID, e.cfg.DrainBatch)
	if err != nil {
		return 0, 0, err
	}
	if len(entries) == 0 {
		sh.mu.Lock()
		sh.queueEmptyAt = now
		sh.mu.Unlock()
		return 0, 0, nil
	}
	snap, err := e.snapshot(ctx, sh, now)
	if err != nil {
		return 0, 0, err
	}
	cv, rs, err := e.activeRules(ctx, sh, now)
	if err != nil {
		return 0, 0, err
	}
	loads, err := e.loadsOf(ctx, sh, snap.onlineIDs, true, now)
	if err != nil {
		return 0, 0, err
	}
	roomy := func() bool {
		for k, i := range snap.online {
			if snap.staff[i].Capacity > loads[k] {
				return true
			}
		}
		return false
	}
	hasRoom := roomy()
	if !hasRoom && !tick {
		return 0, 0, nil
	}
	sessions, err := e.queuedSessions(ctx, shopID, entries)
	if err != nil {
		return 0, 0, err
	}
	w := &drainWork{sem: make(chan struct{}, e.cfg.DrainParallel)}
	// full remembers, within this drain, the rules (and weights) whose group had no one with room: a
	// plain group target gives every session of the rule the same agents.
	full := map[[2]int]bool{}
	for _, en := range entries {
		if w.failed() {
			break
		}
		s := sessions[en.SessionID]
		if s == nil || s.State == session.StateClosed {
			if _, err := e.p.Queue.Remove(ctx, shopID, en.SessionID); err != nil {
				w.fail(err)
			}
			continue
		}
		cause, by := CauseQueue, AssignedByQueue
		var exclude []int64
		if s.State == session.StateOpen && s.AgentID != 0 {
			// A re-route: the session waits with its agent, who went away. Back, they keep it.
			if i, ok := snap.byID[s.AgentID]; ok && (snap.reason[i] < 0 || snap.reason[i] == fBusy) {
				if _, err := e.p.Queue.Remove(ctx, shopID, s.ID); err != nil {
					w.fail(err)
				}
				continue
			}
			exclude, cause, by = []int64{s.AgentID}, CauseReroute, AssignedByReroute
		}
		waited := now.Sub(en.EnqueuedAt)
		env, err := e.sessionEnv(ctx, sh, snap, s, now, cv, rs.shadow)
		if err != nil {
			w.fail(err)
			break
		}
		idx, _, _ := cv.resolve(env, waited.Seconds())
		// requeue moves the session to prio when its (escalated) rule has another priority.
		requeue := func(prio int) bool {
			if prio == en.Priority {
				return true
			}
			if err := e.push(ctx, sh, s.ID, prio, en.EnqueuedAt); err != nil {
				w.fail(err)
				return false
			}
			return true
		}
		if !hasRoom {
			if !requeue(cv.set.Rule(idx).Priority()) {
				break
			}
			continue
		}
		memo := [2]int{idx, 0}
		if wt, err := cv.set.Rule(idx).Weight(env); err == nil && cv.facts(idx).group != "" && exclude == nil {
			memo[1] = wt
		}
		if memo[1] > 0 && full[memo] {
			if !requeue(cv.set.Rule(idx).Priority()) {
				break
			}
			continue
		}
		d, err := e.decide(ctx, sh, snap, cv, env, decideOpts{cause: cause, exclude: exclude, waited: waited, session: s, now: now})
		if err != nil {
			w.fail(err)
			break
		}
		if d.tr.Escalations > 0 && cause == CauseQueue {
			d.tr.Cause = CauseEscalate
		}
		if len(d.cands) == 0 {
			if memo[1] > 0 {
				full[memo] = true
			}
			if !requeue(d.rule.Priority()) {
				break
			}
			continue
		}
		// The first candidate's units count as taken for the decisions that follow, until the commit
		// is done (and has counted whatever it really took).
		first := snap.staff[d.cands[0].i].ID
		sh.adjustLoad(first, d.weight)
		for k, id := range snap.onlineIDs {
			if id == first {
				loads[k] += d.weight
			}
		}
		o := routeOpts{cause: cause, exclude: exclude, waited: waited, by: by, enqueuedAt: en.EnqueuedAt, now: now}
		w.start(func() {
			defer sh.adjustLoad(first, -d.weight)
			e.serveQueued(ctx, sh, snap, rs, env, d, s, o, w)
		})
		if hasRoom = roomy(); !hasRoom && !tick {
			break
		}
	}
	return w.wait()
}

// queuedSessions reads the sessions of a page of the queue at once; a session of another shop is left
// out, as if it did not exist.
func (e *Engine) queuedSessions(ctx context.Context, shopID int64, entries []QueueEntry) (map[int64]*session.Session, error) {
	ids := make([]int64, len(entries))
	for k, en := range entries {
		ids[k] = en.SessionID
	}
	list, err := e.p.Sessions.Sessions(ctx, session.SessionFilter{ShopID: shopID, IDs: ids, Limit: len(ids)})
	if err != nil {
		return nil, err
	}
	out := make(map[int64]*session.Session, len(list))
	for k := range list {
		out[list[k].ID] = &list[k]
	}
	return out, nil
}

// serveQueued takes a decided session out of the queue, claims and assigns it (see commit), and puts it
// back in the queue, with its rule's priority, when no candidate could take it.
func (e *Engine) serveQueued(ctx context.Context, sh *shopState, snap *snapshot, rs *shopRules, env *rules.Session, d *decision, s *session.Session, o routeOpts, w *drainWork) {
	// Take the session out of the queue first: of two drains, only one gets it.
	if removed, err := e.p.Queue.Remove(ctx, sh.id, s.ID); err != nil || !removed {
		w.fail(err)
		return
	}
	shadow := e.shadowRun(ctx, sh, snap, rs, env, d, s, o)
	agentID, err := e.commit(ctx, sh, d, s, o.by, o.now)
	switch {
	case errors.Is(err, errClosed):
		d.tr.Outcome = OutcomeClosed
		e.emit(record{trace: d.tr})
		return
	case err != nil || agentID == 0:
		if perr := e.push(ctx, sh, s.ID, d.rule.Priority(), o.enqueuedAt); perr != nil && err == nil {
			err = perr
		}
		if err == nil {
			w.raced()
		}
		w.fail(err)
		return
	}
	w.done()
	if o.cause == CauseReroute {
		e.stats.rerouted.Add(1)
	}
	sh.mu.Lock()
	sh.eta.add(e.cfg.ETAWindow, o.now, o.waited)
	sh.mu.Unlock()
	e.emit(record{trace: d.tr, shadow: shadowResult(d, shadow)})
}

// drainWork runs a drain's commits, a bounded number at a time, and gathers their outcome.
type drainWork struct {
	sem      chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	assigned int
	requeued int // decided, but every candidate's claim found the agent full
	err      error
}

// raced counts a session put back in the queue because its claims raced.
func (w *drainWork) raced() {
	w.mu.Lock()
	w.requeued++
	w.mu.Unlock()
}

// start runs f on a goroutine of its own once fewer than the bound are running.
func (w *drainWork) start(f func()) {
	w.sem <- struct{}{}
	w.wg.Add(1)
	go func() {
		defer func() {
			<-w.sem
			w.wg.Done()
		}()
		f()
	}()
}

// done counts an assignment.
func (w *drainWork) done() {
	w.mu.Lock()
	w.assigned++
	w.mu.Unlock()
}

// fail records the drain's first error; nil is ignored.
func (w *drainWork) fail(err error) {
	if err == nil {
		return
	}
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

func (w *drainWork) failed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err != nil
}

// wait waits for every commit started and returns how many assigned, how many raced back to the
// queue, and the first error.
func (w *drainWork) wait() (int, int, error) {
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.assigned, w.requeued, w.err
}

// Tick does the engine's timed work for every shop at now: it drains queues (and escalates the
// sessions that waited past their rule's EscalateAfter, re-evaluating them against the following rules
// then the default), re-assigns sessions whose agent did not answer within the rule's NoAnswerAfter,
// re-routes the sessions of agents offline or away for longer than OfflineGrace, and rebuilds queues
// from the sessions table every ReconcileEvery. Run it on one node at a time, every second or so.
func (e *Engine) Tick(ctx context.Context, now time.Time) error {
	shops, err := e.p.Directory.Shops(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, shop := range shops {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := e.tickShop(ctx, shop.ID, now); err != nil {
			errs = append(errs, err)
			e.cfg.Logger.Warn("routing tick", "shop", shop.ID, "err", err)
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) tickShop(ctx context.Context, shopID int64, now time.Time) error {
	e.mu.Lock()
	last, seen := e.reconcile[shopID]
	e.mu.Unlock()
	if !seen || now.Sub(last) >= e.cfg.ReconcileEvery || now.Before(last) {
		if err := e.recoverShop(ctx, shopID, now); err != nil {
			return err
		}
	}
	if _, err := e.drain(ctx, shopID, now, true); err != nil {
		return err
	}
	if err := e.checkNoAnswer(ctx, shopID, now); err != nil {
		return err
	}
	return e.rerouteGone(ctx, shopID, now)
}

// checkNoAnswer re-assigns sessions assigned by routing whose agent has not answered within their
// rule's NoAnswerAfter, to the next candidate, never back to an agent who did not answer. When no one
// else can take it, the session stays and is tried again after another NoAnswerAfter.
func (e *Engine) checkNoAnswer(ctx context.Context, shopID int64, now time.Time) error {
	sh := e.shop(shopID)
	cv, rs, err := e.activeRules(ctx, sh, now)
	if err != nil || !cv.noAnswer {
		return err
	}
	open, err := e.allSessions(ctx, session.SessionFilter{ShopID: shopID, States: []session.State{session.StateOpen}})
	if err != nil {
		return err
	}
	snap, err := e.snapshot(ctx, sh, now)
	if err != nil {
		return err
	}
	for i := range open {
		s := &open[i]
		if s.FirstResponseAt != nil || s.AssignedAt == nil || s.AgentID == 0 || !strings.HasPrefix(s.AssignedBy, AssignedByRouting) {
			continue
		}
		env, err := e.sessionEnv(ctx, sh, snap, s, now, cv, rs.shadow)
		if err != nil {
			return err
		}
		waited := s.AssignedAt.Sub(s.OpenedAt)
		idx, _, _ := cv.resolve(env, waited.Seconds())
		after := cv.set.Rule(idx).NoAnswerAfter()
		if after <= 0 {
			continue
		}
		since := *s.AssignedAt
		e.mu.Lock()
		if t, ok := e.noAnswer[s.ID]; ok && t.After(since) {
			since = t
		}
		exclude := append(append([]int64(nil), e.excluded[s.ID]...), s.AgentID)
		e.mu.Unlock()
		if now.Sub(since) < after {
			continue
		}
		d, err := e.decide(ctx, sh, snap, cv, env, decideOpts{cause: CauseNoAnswer, exclude: exclude, waited: waited, session: s, now: now})
		if err != nil {
			return err
		}
		agentID, err := e.commit(ctx, sh, d, s, AssignedByNoAnswer, now)
		if errors.Is(err, errClosed) {
			continue
		}
		if err != nil {
			return err
		}
		e.mu.Lock()
		if agentID != 0 {
			e.excluded[s.ID] = exclude
			delete(e.noAnswer, s.ID)
		} else {
			e.noAnswer[s.ID] = now
			d.tr.Outcome = OutcomeKept
		}
		e.mu.Unlock()
		if agentID != 0 {
			e.stats.noAnswer.Add(1)
		}
		e.emit(record{trace: d.tr})
	}
	return nil
}

// rerouteGone re-routes the open sessions of agents offline, away, deactivated or without a heartbeat
// for longer than OfflineGrace; busy agents keep theirs. A session no one can take is queued and stays
// with its agent until someone can (or the agent comes back).
func (e *Engine) rerouteGone(ctx context.Context, shopID int64, now time.Time) error {
	sh := e.shop(shopID)
	snap, err := e.snapshot(ctx, sh, now)
	if err != nil {
		return err
	}
	var gone []int64
	e.mu.Lock()
	for i := range snap.staff {
		st := snap.staff[i]
		switch snap.reason[i] {
		case fOffline, fAway, fInactive, fNoHeartbeat:
			gone = append(gone, st.ID)
		default:
			delete(e.offline, [2]int64{shopID, st.ID})
		}
	}
	e.mu.Unlock()
	if len(gone) == 0 {
		return nil
	}
	loads, err := e.p.Slots.Load(ctx, shopID, gone)
	if err != nil {
		return err
	}
	for _, id := range gone {
		if loads[id] == 0 {
			continue
		}
		key := [2]int64{shopID, id}
		e.mu.Lock()
		since, ok := e.offline[key]
		if !ok {
			e.offline[key], since = now, now
		}
		e.mu.Unlock()
		if now.Sub(since) < e.cfg.OfflineGrace {
			continue
		}
		open, err := e.allSessions(ctx, session.SessionFilter{ShopID: shopID, AgentID: id, States: []session.State{session.StateOpen}})
		if err != nil {
			return err
		}
		for i := range open {
			s := &open[i]
			if pos, _, err := e.p.Queue.Position(ctx, shopID, s.ID); err != nil || pos > 0 {
				if err != nil {
					return err
				}
				continue // already waiting for someone
			}
			if _, err := e.route(ctx, s, routeOpts{cause: CauseReroute, exclude: []int64{id}, by: AssignedByReroute,
				queue: true, enqueuedAt: now, now: now}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Recover rebuilds what a restart or a Redis loss may have lost, for every shop: the queue from the
// sessions in state queued (with their rule's priority and their open time), and the slots of open
// sessions that hold none (claimed back as forced: capacities may have changed since). Tick repeats it
// every ReconcileEvery.
func (e *Engine) Recover(ctx context.Context) error {
	shops, err := e.p.Directory.Shops(ctx)
	if err != nil {
		return err
	}
	now := e.now()
	var errs []error
	for _, shop := range shops {
		if err := e.recoverShop(ctx, shop.ID, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) recoverShop(ctx context.Context, shopID int64, now time.Time) error {
	sh := e.shop(shopID)
	snap, err := e.snapshot(ctx, sh, now)
	if err != nil {
		return err
	}
	cv, _, err := e.activeRules(ctx, sh, now)
	if err != nil {
		return err
	}
	queued, err := e.allSessions(ctx, session.SessionFilter{ShopID: shopID, States: []session.State{session.StateQueued}})
	if err != nil {
		return err
	}
	for i := range queued {
		s := &queued[i]
		pos, _, err := e.p.Queue.Position(ctx, shopID, s.ID)
		if err != nil {
			return err
		}
		if pos > 0 {
			continue
		}
		env, err := e.sessionEnv(ctx, sh, snap, s, now, cv)
		if err != nil {
			return err
		}
		idx, _, _ := cv.resolve(env, now.Sub(s.OpenedAt).Seconds())
		if err := e.push(ctx, sh, s.ID, cv.set.Rule(idx).Priority(), s.OpenedAt); err != nil {
			return err
		}
	}
	open, err := e.allSessions(ctx, session.SessionFilter{ShopID: shopID, States: []session.State{session.StateOpen}})
	if err != nil {
		return err
	}
	openAgent := make(map[int64]int64, len(open))
	for i := range open {
		s := &open[i]
		openAgent[s.ID] = s.AgentID
		if s.AgentID == 0 {
			continue
		}
		if s.AssignedAt != nil {
			sh.mu.Lock()
			if s.AssignedAt.After(sh.lastAssigned[s.AgentID]) {
				sh.lastAssigned[s.AgentID] = *s.AssignedAt
			}
			sh.mu.Unlock()
		}
		if _, held, err := e.p.Slots.Held(ctx, shopID, s.ID); err != nil || held {
			if err != nil {
				return err
			}
			continue
		}
		env, err := e.sessionEnv(ctx, sh, snap, s, now, cv)
		if err != nil {
			return err
		}
		idx, _, _ := cv.resolve(env, 0)
		units, werr := cv.set.Rule(idx).Weight(env)
		if werr != nil {
			units = 1
		}
		capacity := 0
		if j, ok := snap.byID[s.AgentID]; ok {
			capacity = snap.staff[j].Capacity
		}
		if _, err := e.p.Slots.ForceClaim(ctx, shopID, s.AgentID, s.ID, units, capacity); err != nil {
			return err
		}
		sh.adjustLoad(s.AgentID, units)
	}
	if err := e.sweepSlots(ctx, sh, snap, openAgent, now); err != nil {
		return err
	}
	e.mu.Lock()
	e.reconcile[shopID] = now
	e.mu.Unlock()
	return nil
}

// sweepSlots releases slots a crash or a lost race left behind: held by a session that is closed, gone
// or of another shop. A slot held at another agent than the session's (a crash between a moving claim
// and the assignment) is moved back to the session's agent, as forced, once the assignment is more
// than a minute old, so that an assignment in flight is not undone.
func (e *Engine) sweepSlots(ctx context.Context, sh *shopState, snap *snapshot, openAgent map[int64]int64, now time.Time) error {
	held, err := e.p.Slots.Holdings(ctx, sh.id)
	if err != nil {
		return err
	}
	for sid, h := range held {
		agentID, known := openAgent[sid]
		var s *session.Session
		if !known {
			if s, err = e.p.Sessions.Session(ctx, sid); err != nil && errorCode(err) != session.ENOTFOUND {
				return err
			}
			if s != nil && s.State == session.StateOpen && s.ShopID == sh.id {
				agentID, known = s.AgentID, true
			}
		}
		switch {
		case !known && (s == nil || s.ShopID != sh.id || s.State == session.StateClosed):
			if slot, released, err := e.p.Slots.Release(ctx, sh.id, h.AgentID, sid); err != nil {
				return err
			} else if released {
				sh.adjustLoad(h.AgentID, -slot.Units)
				e.cfg.Logger.Warn("released a leaked slot", "shop", sh.id, "session", sid, "agent", h.AgentID)
			}
		case known && agentID != 0 && agentID != h.AgentID:
			if s == nil {
				if s, err = e.p.Sessions.Session(ctx, sid); err != nil {
					return err
				}
			}
			if s.AssignedAt != nil && now.Sub(*s.AssignedAt) < time.Minute {
				continue
			}
			capacity := h.Units
			if i, ok := snap.byID[agentID]; ok {
				capacity = snap.staff[i].Capacity
			}
			if _, err := e.p.Slots.ForceClaim(ctx, sh.id, agentID, sid, h.Units, capacity); err != nil {
				return err
			}
			sh.adjustLoad(h.AgentID, -h.Units)
			sh.adjustLoad(agentID, h.Units)
			e.cfg.Logger.Warn("moved a slot back to the session's agent", "shop", sh.id, "session", sid, "from", h.AgentID, "to", agentID)
		}
	}
	return nil
}

// AgentChanged tells the engine that an agent's settings changed (capacity, groups, skills, active):
// the shop's snapshot is reloaded and, capacity having perhaps grown, the queue drained (on Run's
// goroutine when Run is running, as in Closed).
func (e *Engine) AgentChanged(ctx context.Context, shopID, agentID int64) error {
	e.invalidate(shopID)
	if e.requestDrain(shopID) {
		return nil
	}
	_, err := e.drain(ctx, shopID, e.now(), false)
	return err
}

// AgentStatusChanged tells the engine that an agent's status changed at at. Going offline or away
// starts the grace period after which Tick re-routes their sessions (busy keeps them); coming online
// drains the shop's queue.
func (e *Engine) AgentStatusChanged(ctx context.Context, shopID, agentID int64, status agent.Status, at time.Time) error {
	e.patchStatus(e.shop(shopID), agentID, status)
	key := [2]int64{shopID, agentID}
	e.mu.Lock()
	switch status {
	case agent.StatusOffline, agent.StatusAway:
		if _, ok := e.offline[key]; !ok {
			e.offline[key] = at.UTC()
		}
	default:
		delete(e.offline, key)
	}
	e.mu.Unlock()
	if status != agent.StatusOnline || e.requestDrain(shopID) {
		return nil
	}
	_, err := e.drain(ctx, shopID, e.now(), false)
	return err
}

// Position returns a queued session's 1-based place in its shop's queue, the queue's length, and the
// expected wait: the position times the mean interval between the shop's recent dequeues (0 when
// unknown: nothing was dequeued yet). Position 0 means the session is not queued.
func (e *Engine) Position(ctx context.Context, shopID, sessionID int64) (pos, total int, eta time.Duration, err error) {
	pos, total, err = e.p.Queue.Position(ctx, shopID, sessionID)
	if err != nil {
		return 0, 0, 0, err
	}
	sh := e.shop(shopID)
	sh.mu.Lock()
	eta = sh.eta.estimate(pos, e.now())
	sh.mu.Unlock()
	return pos, total, eta, nil
}
