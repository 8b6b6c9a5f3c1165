package routing

import (
	"context"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/migrations/testdb"
	"github.com/shopdesk/shopdesk/rules"
	"github.com/shopdesk/shopdesk/session"
)

// clock is an injectable clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 10, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// fakeDir is the agent side: shops, staff and buyers in memory. stray staff, of another shop, is
// returned with every StaffOf, as a broken store would.
type fakeDir struct {
	mu     sync.Mutex
	shops  map[int64]agent.Shop
	staff  map[int64][]agent.Staff
	buyers map[[2]int64]agent.Buyer
	stray  []agent.Staff
}

func newFakeDir() *fakeDir {
	return &fakeDir{shops: map[int64]agent.Shop{}, staff: map[int64][]agent.Staff{}, buyers: map[[2]int64]agent.Buyer{}}
}

func (d *fakeDir) Shops(context.Context) ([]agent.Shop, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []agent.Shop
	for _, s := range d.shops {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (d *fakeDir) Shop(_ context.Context, id int64) (*agent.Shop, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.shops[id]
	if !ok {
		return nil, agent.Errorf(agent.ENOTFOUND, "shop %d not found", id)
	}
	return &s, nil
}

func (d *fakeDir) StaffOf(_ context.Context, shopID int64) ([]agent.Staff, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := append([]agent.Staff(nil), d.staff[shopID]...)
	return append(out, d.stray...), nil
}

func (d *fakeDir) Buyer(_ context.Context, shopID, id int64) (*agent.Buyer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.buyers[[2]int64{shopID, id}]
	if !ok {
		return nil, agent.Errorf(agent.ENOTFOUND, "buyer %d not found", id)
	}
	return &b, nil
}

func (d *fakeDir) addShop(id int64) {
	d.mu.Lock()
	d.shops[id] = agent.Shop{ID: id, Slug: "s", TimeZone: "UTC"}
	d.mu.Unlock()
}

func (d *fakeDir) add(st agent.Staff) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if st.Role == "" {
		st.Role = agent.RoleAgent
	}
	st.Active = true
	d.staff[st.ShopID] = append(d.staff[st.ShopID], st)
}

func (d *fakeDir) update(shopID, id int64, f func(*agent.Staff)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.staff[shopID] {
		if d.staff[shopID][i].ID == id {
			f(&d.staff[shopID][i])
		}
	}
}

func (d *fakeDir) get(shopID, id int64) (agent.Staff, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, st := range d.staff[shopID] {
		if st.ID == id {
			return st, true
		}
	}
	return agent.Staff{}, false
}

// fakeSessions is the session side in memory. check, when set, runs on every AssignTo.
type fakeSessions struct {
	mu     sync.Mutex
	clock  *clock
	byID   map[int64]*session.Session
	first  map[int64]string
	nextID int64
	check  func(s *session.Session, agentID int64, by string)
	// fail, when set, makes AssignTo fail with its error.
	fail func(s *session.Session, agentID int64) error
	// failAfter, when set, makes AssignTo record the assignment and then fail with its error, as a
	// timeout after the store's commit would.
	failAfter func(s *session.Session, agentID int64) error
	// told counts, per session, the assignments AssignTo reported done: the ones both sides hear of.
	told map[int64]int
}

func newFakeSessions(c *clock) *fakeSessions {
	return &fakeSessions{clock: c, byID: map[int64]*session.Session{}, first: map[int64]string{}}
}

func (f *fakeSessions) Session(_ context.Context, id int64) (*session.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.byID[id]
	if !ok {
		return nil, session.Errorf(session.ENOTFOUND, "session %d not found", id)
	}
	cp := *s
	return &cp, nil
}

func (f *fakeSessions) Sessions(_ context.Context, flt session.SessionFilter) ([]session.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []session.Session
	for _, s := range f.byID {
		if s.ShopID != flt.ShopID || (flt.ConversationID != 0 && s.ConversationID != flt.ConversationID) ||
			(flt.AgentID != 0 && s.AgentID != flt.AgentID) || (flt.BeforeID > 0 && s.ID >= flt.BeforeID) ||
			(len(flt.IDs) > 0 && !slices.Contains(flt.IDs, s.ID)) {
			continue
		}
		if len(flt.States) > 0 {
			ok := false
			for _, st := range flt.States {
				ok = ok || st == s.State
			}
			if !ok {
				continue
			}
		}
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	if flt.Limit > 0 && len(out) > flt.Limit {
		out = out[:flt.Limit]
	}
	return out, nil
}

func (f *fakeSessions) AssignTo(_ context.Context, cur *session.Session, agentID int64, by string) (*session.Session, error) {
	shopID, sessionID := cur.ShopID, cur.ID
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.byID[sessionID]
	if !ok || s.ShopID != shopID {
		return nil, session.Errorf(session.ENOTFOUND, "session %d not found", sessionID)
	}
	if s.State == session.StateClosed {
		return nil, session.Errorf(session.ECONFLICT, "session %d is closed", sessionID)
	}
	if f.fail != nil {
		if err := f.fail(s, agentID); err != nil {
			return nil, err
		}
	}
	if f.check != nil {
		f.check(s, agentID, by)
	}
	now := f.clock.Now()
	s.AgentID, s.State, s.AssignedBy, s.AssignedAt = agentID, session.StateOpen, by, &now
	cp := *s
	if f.failAfter != nil {
		if err := f.failAfter(s, agentID); err != nil {
			return nil, err
		}
	}
	if f.told == nil {
		f.told = map[int64]int{}
	}
	f.told[sessionID]++
	return &cp, nil
}

func (f *fakeSessions) FirstMessage(_ context.Context, s *session.Session) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.first[s.ID], nil
}

// open creates a queued session of shop in conversation conv.
func (f *fakeSessions) open(shopID, conv int64, ec session.EntryContext) *session.Session {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	now := f.clock.Now()
	s := &session.Session{ID: f.nextID, ConversationID: conv, ShopID: shopID, BuyerID: conv, Kind: ec.Kind(), Context: ec,
		State: session.StateQueued, OpenedAt: now, LastActivityAt: now}
	f.byID[s.ID] = s
	cp := *s
	return &cp
}

func (f *fakeSessions) close(id int64) *session.Session {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.byID[id]
	now := f.clock.Now()
	s.State, s.ClosedAt = session.StateClosed, &now
	cp := *s
	return &cp
}

func (f *fakeSessions) respond(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock.Now()
	f.byID[id].FirstResponseAt = &now
}

func (f *fakeSessions) get(id int64) session.Session {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.byID[id]
}

// harness is an engine over fakes, a SQLite store and the given slots and queue.
type harness struct {
	t     *testing.T
	ctx   context.Context
	clock *clock
	dir   *fakeDir
	sess  *fakeSessions
	slots Slots
	queue Queue
	store *Store
	eng   *Engine
}

func newHarness(t *testing.T, slots Slots, queue Queue) *harness {
	t.Helper()
	c := newClock()
	h := &harness{t: t, ctx: context.Background(), clock: c, dir: newFakeDir(), sess: newFakeSessions(c), slots: slots, queue: queue}
	h.store = NewStore(testdb.SQLite(t))
	h.store.Now = c.Now
	h.dir.addShop(1)
	h.dir.addShop(2)
	eng, err := New(Ports{Slots: slots, Queue: queue, Store: h.store, Sessions: h.sess, Directory: h.dir},
		Config{Now: c.Now, OfflineGrace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	return h
}

func newMemoryHarness(t *testing.T) *harness {
	return newHarness(t, NewMemorySlots(), NewMemoryQueue())
}

func (h *harness) agent(shopID, id int64, status agent.Status, capacity int, groups ...string) {
	h.dir.add(agent.Staff{ID: id, ShopID: shopID, DisplayName: "agent", Status: status, Capacity: capacity, Groups: groups})
	h.eng.invalidate(shopID)
}

func (h *harness) setStatus(shopID, id int64, status agent.Status) {
	h.t.Helper()
	h.dir.update(shopID, id, func(st *agent.Staff) { st.Status = status })
	if err := h.eng.AgentStatusChanged(h.ctx, shopID, id, status, h.clock.Now()); err != nil {
		h.t.Fatal(err)
	}
}

// publish saves rs as a version of shop and puts it in force.
func (h *harness) publish(shopID int64, rs rules.RuleSet) int {
	h.t.Helper()
	v, err := h.store.SaveVersion(h.ctx, shopID, rs, 1, "")
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.store.Publish(h.ctx, shopID, v.Number, 1, ""); err != nil {
		h.t.Fatal(err)
	}
	h.eng.RulesChanged(shopID)
	return v.Number
}

// open opens a session in a new conversation and routes it.
func (h *harness) open(shopID int64, ec session.EntryContext) session.Session {
	h.t.Helper()
	return h.openIn(shopID, 0, ec)
}

var convSeq struct {
	sync.Mutex
	n int64
}

func (h *harness) openIn(shopID, conv int64, ec session.EntryContext) session.Session {
	h.t.Helper()
	if conv == 0 {
		convSeq.Lock()
		convSeq.n++
		conv = 1000 + convSeq.n
		convSeq.Unlock()
	}
	s := h.sess.open(shopID, conv, ec)
	if err := h.eng.Opened(h.ctx, s); err != nil {
		h.t.Fatalf("Opened: %v", err)
	}
	return h.sess.get(s.ID)
}

func (h *harness) close(id int64) {
	h.t.Helper()
	s := h.sess.close(id)
	if err := h.eng.Closed(h.ctx, s); err != nil {
		h.t.Fatalf("Closed: %v", err)
	}
}

func (h *harness) tick(d time.Duration) {
	h.t.Helper()
	now := h.clock.Add(d)
	if err := h.eng.Tick(h.ctx, now); err != nil {
		h.t.Fatalf("Tick: %v", err)
	}
}

func (h *harness) load(shopID, agentID int64) int {
	h.t.Helper()
	m, err := h.slots.Load(h.ctx, shopID, []int64{agentID})
	if err != nil {
		h.t.Fatal(err)
	}
	return m[agentID]
}

func (h *harness) traces(shopID, sessionID int64) []Trace {
	h.t.Helper()
	if err := h.eng.Flush(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	ts, err := h.store.Traces(h.ctx, shopID, sessionID)
	if err != nil {
		h.t.Fatal(err)
	}
	return ts
}

var (
	presale   = session.EntryContext{ProductID: "p1", Category: "phone"}
	aftersale = session.EntryContext{OrderID: "o1", OrderStatus: "paid"}
	unknown   = session.EntryContext{}
)
