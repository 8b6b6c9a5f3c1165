package routing

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/rules"
)

// snapshot is a shop's staff as routing sees them at one moment: every staff member with the status
// filter that removes them, and the index of the eligible ones (active, online, with a heartbeat and
// a capacity) by group. Loads are not in it: they are read from Slots at each decision.
type snapshot struct {
	at     time.Time
	shopID int64
	loc    *time.Location
	hours  businessHours
	// staff is shared between snapshots: a patched snapshot copies the slice and the one changed
	// member, never a member in place.
	staff []*agent.Staff
	// reason[i] is the status filter removing staff[i], -1 when it passes them all.
	reason  []filterID
	byID    map[int64]int
	online  []int
	byGroup map[string][]int
	// ids lists the ids of staff, onlineIDs of online, groupIDs of byGroup, index for index.
	ids       []int64
	onlineIDs []int64
	groupIDs  map[string][]int64
	// removed counts the staff each status filter removes.
	removed [nFilters]int
	maxID   int64
	// shop and beating are what the snapshot was built from besides staff, kept to rebuild it with
	// one status changed (withStatus).
	shop    *agent.Shop
	beating map[int64]bool
}

// businessHours is a daily window in minutes of the shop's wall clock; always open when !set.
type businessHours struct {
	set        bool
	start, end int
}

// parseHours reads "09:00-22:00"; an overnight window ("22:00-06:00") wraps. Anything unreadable
// counts as always open: the shop settings validate it when saved.
func parseHours(s string) businessHours {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return businessHours{}
	}
	start, ok1 := minutes(a)
	end, ok2 := minutes(b)
	if !ok1 || !ok2 || start == end {
		return businessHours{}
	}
	return businessHours{set: true, start: start, end: end}
}

func minutes(hhmm string) (int, bool) {
	h, m, ok := strings.Cut(strings.TrimSpace(hhmm), ":")
	if !ok {
		return 0, false
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || hh*60+mm > 24*60 {
		return 0, false
	}
	return hh*60 + mm, true
}

func (h businessHours) contains(c rules.Clock) bool {
	if !h.set {
		return true
	}
	m := c.Hour*60 + c.Minute
	if h.start < h.end {
		return m >= h.start && m < h.end
	}
	return m >= h.start || m < h.end
}

// shopState is what the engine keeps per shop: the cached snapshot and rules, and the small amount of
// routing memory (last assignment times, assignment counts, round-robin pointers, the ETA window). The
// memory is per node: on several nodes, idle times and shares are each node's view.
type shopState struct {
	id      int64
	refresh sync.Mutex // one loader of the snapshot or the rules at a time
	snap    atomic.Pointer[snapshot]
	rules   atomic.Pointer[shopRules]

	// Status changes this node was told of are patched into the snapshot (patchStatus) rather than
	// reloading the whole staff list each time: agents change status far more often than anything
	// else. patchMu orders patches and snapshot reloads; patches keeps the ones made since the last
	// reload began, which a reload that read the staff before them applies again.
	patchMu  sync.Mutex
	patchSeq uint64
	patches  []statusPatch

	// The load cache: every agent's load as Slots last said, kept exact for this node's own claims and
	// releases and re-read whole every LoadCacheTTL (others' changes show up then). It orders
	// candidates; the atomic claim, not the cache, keeps capacities.
	loadRefresh sync.Mutex
	loadMu      sync.RWMutex
	loads       map[int64]int
	loadsAt     time.Time

	mu           sync.Mutex
	lastAssigned map[int64]time.Time
	assigned     map[int64]int
	rr           map[[2]int]int64 // (version, rule) → last agent chosen
	eta          etaWindow
	queueLen     int
	queueLenAt   time.Time
	// queueEmptyAt is when this node last saw the queue empty; a push by this node clears it.
	queueEmptyAt time.Time
	activeAt     time.Time
	active       *compiled
}

// shopRules is the shop's rules state as loaded from the Store.
type shopRules struct {
	at        time.Time
	pointer   int
	schedules []rules.Schedule
	shadow    *compiled
}

func (e *Engine) shop(id int64) *shopState {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.shops[id]
	if s == nil {
		s = &shopState{id: id, lastAssigned: map[int64]time.Time{}, assigned: map[int64]int{}, rr: map[[2]int]int64{}}
		e.shops[id] = s
	}
	return s
}

func fresh(at, now time.Time, ttl time.Duration) bool {
	return !now.Before(at) && now.Sub(at) < ttl
}

// snapshot returns the shop's staff snapshot, reloading it when older than CacheTTL. While one caller
// reloads a stale snapshot, the others go on with the stale one rather than wait behind the reload (it
// waits for the store like everything else under load); a missing snapshot (invalidate) is always
// waited for.
func (e *Engine) snapshot(ctx context.Context, sh *shopState, now time.Time) (*snapshot, error) {
	s := sh.snap.Load()
	if s != nil && fresh(s.at, now, e.cfg.CacheTTL) {
		return s, nil
	}
	if !sh.lockRefresh(s != nil && !now.Before(s.at)) {
		return s, nil
	}
	defer sh.refresh.Unlock()
	if s := sh.snap.Load(); s != nil && fresh(s.at, now, e.cfg.CacheTTL) {
		return s, nil
	}
	sh.patchMu.Lock()
	start := sh.patchSeq
	sh.patchMu.Unlock()
	shop, err := e.p.Directory.Shop(ctx, sh.id)
	if err != nil {
		return nil, err
	}
	staff, err := e.p.Directory.StaffOf(ctx, sh.id)
	if err != nil {
		return nil, err
	}
	var beating map[int64]bool
	if e.p.Presence != nil && e.cfg.PresenceTimeout > 0 {
		ids, err := e.p.Presence.Online(ctx, sh.id, now.Add(-e.cfg.PresenceTimeout))
		if err != nil {
			return nil, unavailable(err, "read presence")
		}
		beating = make(map[int64]bool, len(ids))
		for _, id := range ids {
			beating[id] = true
		}
	}
	members := make([]*agent.Staff, len(staff))
	for i := range staff {
		members[i] = &staff[i]
	}
	s = buildSnapshot(sh.id, shop, members, beating, now)
	sh.patchMu.Lock()
	defer sh.patchMu.Unlock()
	// Changes patched before this reload began were written to the store before it read; later ones
	// may not have been, and are applied again.
	later := sh.patches[:0]
	for _, p := range sh.patches {
		if p.seq > start {
			later = append(later, p)
		}
	}
	sh.patches = later
	for _, p := range later {
		if next, ok := s.withStatus(p.agentID, p.status); ok {
			s = next
		}
	}
	sh.snap.Store(s)
	return s, nil
}

// lockRefresh takes the refresh lock for a reload. With a stale copy to serve (haveStale) it only
// tries, and false means another caller is reloading: serve the stale copy meanwhile.
func (sh *shopState) lockRefresh(haveStale bool) bool {
	if haveStale {
		return sh.refresh.TryLock()
	}
	sh.refresh.Lock()
	return true
}

// statusPatch is a status change patched into the snapshot.
type statusPatch struct {
	seq     uint64
	agentID int64
	status  agent.Status
}

// maxPatches bounds the patches kept between reloads; past it the snapshot is reloaded instead.
const maxPatches = 4096

// patchStatus applies an agent's new status, already written to the store, to the shop's snapshot:
// a copy with that one agent changed replaces it, keeping its age (other nodes' changes still come
// with the next reload). An agent the snapshot does not know makes it reload.
func (e *Engine) patchStatus(sh *shopState, agentID int64, status agent.Status) {
	sh.patchMu.Lock()
	defer sh.patchMu.Unlock()
	sh.patchSeq++
	if len(sh.patches) >= maxPatches {
		sh.patches = sh.patches[:0]
		sh.snap.Store(nil)
		return
	}
	sh.patches = append(sh.patches, statusPatch{seq: sh.patchSeq, agentID: agentID, status: status})
	old := sh.snap.Load()
	if old == nil {
		return
	}
	next, ok := old.withStatus(agentID, status)
	if !ok {
		sh.snap.Store(nil)
		return
	}
	sh.snap.Store(next)
}

// withStatus returns a copy of s in which agentID has status (and, coming online, a heartbeat: the
// status change was one); false when s does not know the agent. It is what buildSnapshot would make
// of the changed staff, made by changing only what the one agent touches: with a flapping share of a
// large shop, rebuilding every index on every change cost more than routing itself.
func (s *snapshot) withStatus(agentID int64, status agent.Status) (*snapshot, bool) {
	i, ok := s.byID[agentID]
	if !ok {
		return nil, false
	}
	n := *s
	if s.beating != nil && status == agent.StatusOnline && !s.beating[agentID] {
		n.beating = maps.Clone(s.beating)
		n.beating[agentID] = true
	}
	st := *s.staff[i]
	st.Status = status
	n.staff = slices.Clone(s.staff)
	n.staff[i] = &st
	old, r := s.reason[i], statusFilter(s.shopID, &st, n.beating)
	if r == old {
		return &n, true
	}
	n.reason = slices.Clone(s.reason)
	n.reason[i] = r
	if old >= 0 {
		n.removed[old]--
	}
	if r >= 0 {
		n.removed[r]++
	}
	if (old < 0) == (r < 0) { // removed before and after, by another filter
		return &n, true
	}
	n.byGroup, n.groupIDs = maps.Clone(s.byGroup), maps.Clone(s.groupIDs)
	if r < 0 {
		n.online, n.onlineIDs = withIndex(s.online, s.onlineIDs, i, st.ID)
		for _, g := range st.Groups {
			n.byGroup[g], n.groupIDs[g] = withIndex(n.byGroup[g], n.groupIDs[g], i, st.ID)
		}
		return &n, true
	}
	n.online, n.onlineIDs = withoutIndex(s.online, s.onlineIDs, i)
	for _, g := range st.Groups {
		n.byGroup[g], n.groupIDs[g] = withoutIndex(n.byGroup[g], n.groupIDs[g], i)
		if len(n.byGroup[g]) == 0 {
			delete(n.byGroup, g)
			delete(n.groupIDs, g)
		}
	}
	return &n, true
}

// withIndex returns copies of the ascending index list idx and its aligned ids with i (and id) in
// place; the lists given are shared with other snapshots and left as they are.
func withIndex(idx []int, ids []int64, i int, id int64) ([]int, []int64) {
	pos, _ := slices.BinarySearch(idx, i)
	return slices.Insert(slices.Clone(idx), pos, i), slices.Insert(slices.Clone(ids), pos, id)
}

// withoutIndex returns copies of idx and ids without the first occurrence of i, nil when empty.
func withoutIndex(idx []int, ids []int64, i int) ([]int, []int64) {
	pos, found := slices.BinarySearch(idx, i)
	if !found {
		return idx, ids
	}
	if len(idx) == 1 {
		return nil, nil
	}
	return slices.Delete(slices.Clone(idx), pos, pos+1), slices.Delete(slices.Clone(ids), pos, pos+1)
}

// statusFilter is the status filter that removes st, -1 when it passes them all.
func statusFilter(shopID int64, st *agent.Staff, beating map[int64]bool) filterID {
	switch {
	case st.ShopID != shopID:
		return fOtherShop
	case !st.Active:
		return fInactive
	case st.Status == agent.StatusBusy:
		return fBusy
	case st.Status == agent.StatusAway:
		return fAway
	case st.Status != agent.StatusOnline:
		return fOffline
	case beating != nil && !beating[st.ID]:
		return fNoHeartbeat
	case st.Capacity <= 0:
		return fNoCapacity
	}
	return -1
}

func buildSnapshot(shopID int64, shop *agent.Shop, staff []*agent.Staff, beating map[int64]bool, now time.Time) *snapshot {
	s := &snapshot{at: now, shopID: shopID, shop: shop, beating: beating, loc: time.UTC, staff: staff, reason: make([]filterID, len(staff)),
		byID: make(map[int64]int, len(staff)), byGroup: map[string][]int{}, ids: make([]int64, len(staff)),
		groupIDs: map[string][]int64{}}
	if shop != nil {
		if shop.TimeZone != "" {
			if loc, err := time.LoadLocation(shop.TimeZone); err == nil {
				s.loc = loc
			}
		}
		s.hours = parseHours(shop.Settings.BusinessHours)
	}
	for i, st := range staff {
		s.byID[st.ID] = i
		s.ids[i] = st.ID
		s.maxID = max(s.maxID, st.ID)
		r := statusFilter(shopID, st, beating)
		s.reason[i] = r
		if r >= 0 {
			s.removed[r]++
			continue
		}
		s.online = append(s.online, i)
		s.onlineIDs = append(s.onlineIDs, st.ID)
		for _, g := range st.Groups {
			s.byGroup[g] = append(s.byGroup[g], i)
			s.groupIDs[g] = append(s.groupIDs[g], st.ID)
		}
	}
	return s
}

// loadsOf returns the loads of ids (aligned with them): from the load cache, refreshed when older than
// LoadCacheTTL, or, with fresh, read from Slots (and written into the cache).
func (e *Engine) loadsOf(ctx context.Context, sh *shopState, ids []int64, fresh bool, now time.Time) ([]int, error) {
	out := make([]int, len(ids))
	if fresh {
		m, err := e.p.Slots.Load(ctx, sh.id, ids)
		if err != nil {
			return nil, err
		}
		sh.loadMu.Lock()
		for k, id := range ids {
			out[k] = m[id]
			if sh.loads != nil {
				if m[id] > 0 {
					sh.loads[id] = m[id]
				} else {
					delete(sh.loads, id)
				}
			}
		}
		sh.loadMu.Unlock()
		return out, nil
	}
	if !e.readLoads(sh, ids, out, now) {
		sh.loadRefresh.Lock()
		if !e.readLoads(sh, ids, out, now) {
			m, err := e.p.Slots.Load(ctx, sh.id, nil)
			if err != nil {
				sh.loadRefresh.Unlock()
				return nil, err
			}
			sh.loadMu.Lock()
			sh.loads, sh.loadsAt = m, now
			sh.loadMu.Unlock()
			e.readLoads(sh, ids, out, now)
		}
		sh.loadRefresh.Unlock()
	}
	return out, nil
}

func (e *Engine) readLoads(sh *shopState, ids []int64, out []int, now time.Time) bool {
	sh.loadMu.RLock()
	defer sh.loadMu.RUnlock()
	if sh.loads == nil || !fresh(sh.loadsAt, now, e.cfg.LoadCacheTTL) {
		return false
	}
	for k, id := range ids {
		out[k] = sh.loads[id]
	}
	return true
}

// adjustLoad applies a change this node made to the load cache.
func (sh *shopState) adjustLoad(agentID int64, delta int) {
	sh.loadMu.Lock()
	if sh.loads != nil {
		if n := sh.loads[agentID] + delta; n > 0 {
			sh.loads[agentID] = n
		} else {
			delete(sh.loads, agentID)
		}
	}
	sh.loadMu.Unlock()
}

// setLoad records a load learnt otherwise (a failed claim: the agent is full).
func (sh *shopState) setLoad(agentID int64, n int) {
	sh.loadMu.Lock()
	if sh.loads != nil {
		sh.loads[agentID] = n
	}
	sh.loadMu.Unlock()
}

// invalidate drops the shop's cached snapshot so that the next decision reloads it.
func (e *Engine) invalidate(shopID int64) { e.shop(shopID).snap.Store(nil) }

// loadRules returns the shop's rules state, reloading it when older than CacheTTL.
func (e *Engine) loadRules(ctx context.Context, sh *shopState, now time.Time) (*shopRules, error) {
	r := sh.rules.Load()
	if r != nil && fresh(r.at, now, e.cfg.CacheTTL) {
		return r, nil
	}
	// As for the snapshot: a stale state serves while one caller reloads; a missing one is waited for.
	if !sh.lockRefresh(r != nil && !now.Before(r.at)) {
		return r, nil
	}
	defer sh.refresh.Unlock()
	if r := sh.rules.Load(); r != nil && fresh(r.at, now, e.cfg.CacheTTL) {
		return r, nil
	}
	pointer, err := e.p.Store.Active(ctx, sh.id)
	if err != nil {
		return nil, err
	}
	scheds, err := e.p.Store.Schedules(ctx, sh.id)
	if err != nil {
		return nil, err
	}
	r = &shopRules{at: now, pointer: pointer, schedules: scheds}
	d, err := e.p.Store.Draft(ctx, sh.id)
	switch {
	case err == nil && d.Shadow:
		if r.shadow, err = compileSet(VersionDraft, d.RuleSet); err != nil {
			e.cfg.Logger.Warn("shadow draft does not compile", "shop", sh.id, "err", err)
			r.shadow = nil
		}
	case err != nil && errorCode(err) != "ENOTFOUND":
		return nil, err
	}
	sh.rules.Store(r)
	return r, nil
}

// activeRules returns the compiled version in force at now: the one a schedule names, else the
// published one, else the built-in default (version 0).
func (e *Engine) activeRules(ctx context.Context, sh *shopState, now time.Time) (*compiled, *shopRules, error) {
	r, err := e.loadRules(ctx, sh, now)
	if err != nil {
		return nil, nil, err
	}
	number := r.pointer
	if len(r.schedules) > 0 {
		// rules.Active parses every schedule; its answer is kept for a second, the schedules' grain
		// being the minute.
		sh.mu.Lock()
		if sh.active != nil && fresh(sh.activeAt, now, time.Second) && !sh.activeAt.Before(r.at) {
			c := sh.active
			sh.mu.Unlock()
			return c, r, nil
		}
		sh.mu.Unlock()
		number = rules.Active(r.schedules, r.pointer, now)
	}
	c, err := e.version(ctx, sh.id, number)
	if err != nil {
		return nil, nil, err
	}
	if len(r.schedules) > 0 {
		sh.mu.Lock()
		sh.active, sh.activeAt = c, now
		sh.mu.Unlock()
	}
	return c, r, nil
}

// version returns a compiled saved version, compiling it once: versions are never edited.
func (e *Engine) version(ctx context.Context, shopID int64, number int) (*compiled, error) {
	key := [2]int64{shopID, int64(number)}
	e.mu.Lock()
	c := e.versions[key]
	e.mu.Unlock()
	if c != nil {
		return c, nil
	}
	v, err := e.p.Store.Version(ctx, shopID, number)
	if err != nil {
		return nil, err
	}
	if c, err = compileSet(number, v.RuleSet); err != nil {
		return nil, err
	}
	e.mu.Lock()
	if len(e.versions) > 10_000 {
		e.versions = map[[2]int64]*compiled{}
	}
	e.versions[key] = c
	e.mu.Unlock()
	return c, nil
}
