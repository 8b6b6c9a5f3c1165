package loadtest

import (
	"fmt"
	"slices"
	"sort"
	"time"
)

// assignedByQueue is the node's assigned_by for a session its queue drain assigned (routing.AssignedByQueue).
const assignedByQueue = "routing:queue"

// sessionRecord is what the bench saw of one session a buyer opened. Times are on the bench clock.
type sessionRecord struct {
	category int
	sent     time.Duration // the buyer wrote the message that opened the session
	id       int64
	// assigned is when the buyer's "session" event with state open arrived; valid when seen.
	assigned time.Duration
	seen     bool
	agent    int64
	by       string // the session's assigned_by
	// queueEvent: the buyer was told its place in the queue.
	queueEvent bool
	// lostPush: the node says the session is open, but no event said so to the buyer.
	lostPush bool
	// closedByNode: the session was closed before the buyer saw it assigned.
	closedByNode bool
}

// assignedAny reports whether the node assigned the session, whether or not its buyer was told.
func (s *sessionRecord) assignedAny() bool { return s.seen || s.lostPush }

// wasQueued reports whether the node queued the session instead of assigning it at once: its buyer
// got a queue event, or its queue drain assigned it, or it was never assigned.
func (s *sessionRecord) wasQueued() bool {
	return s.queueEvent || s.by == assignedByQueue || !s.assignedAny()
}

// freeEvent is capacity the bench itself freed: a buyer closing a session of an online agent, or an
// agent set online, at the moment the bench wrote the request, for the agents of group.
type freeEvent struct {
	at    time.Duration
	group int
}

// targetGroup is the group the rule for category targets, or -1 for the default rule (any online agent).
func targetGroup(category, nRules int) int {
	if category < nRules {
		return category % routeGroups
	}
	return -1
}

// queueWaitsAfterFree returns, for every queued session its buyer saw assigned, the assignment time
// minus the latest capacity-freeing event before it that could serve the session (of an agent of the
// group its rule targets, or of any agent for the default rule), or minus its send time when that is
// later (a session cannot wait for capacity before it exists).
func queueWaitsAfterFree(recs []*sessionRecord, frees []freeEvent, nRules int) []time.Duration {
	byGroup := make([][]time.Duration, routeGroups)
	all := make([]time.Duration, 0, len(frees))
	for _, f := range frees {
		byGroup[f.group] = append(byGroup[f.group], f.at)
		all = append(all, f.at)
	}
	for _, g := range byGroup {
		slices.Sort(g)
	}
	slices.Sort(all)
	var waits []time.Duration
	for _, s := range recs {
		if !s.seen || !s.wasQueued() {
			continue
		}
		list := all
		if g := targetGroup(s.category, nRules); g >= 0 {
			list = byGroup[g]
		}
		k := sort.Search(len(list), func(i int) bool { return list[i] >= s.assigned })
		from := s.sent
		if k > 0 && list[k-1] > from {
			from = list[k-1]
		}
		waits = append(waits, s.assigned-from)
	}
	return waits
}

// agentView is a staff member as GET /api/routing/agents shows them.
type agentView struct {
	ID        int64    `json:"id"`
	Status    string   `json:"status"`
	Active    bool     `json:"active"`
	Groups    []string `json:"groups"`
	Capacity  int      `json:"capacity"`
	Load      int      `json:"load"`
	Heartbeat bool     `json:"heartbeat"`
}

// roomFor reports whether an agent could take a session of one capacity unit whose rule targets
// group (-1: any agent): online with a heartbeat, active, in the group, load+1 <= capacity.
func roomFor(agents []agentView, group int) bool {
	want := fmt.Sprintf("g%d", group)
	for _, a := range agents {
		if !a.Active || a.Status != "online" || !a.Heartbeat || a.Load+1 > a.Capacity {
			continue
		}
		if group < 0 || slices.Contains(a.Groups, want) {
			return true
		}
	}
	return false
}

// countStranded counts the sessions, given by category, that wait while an eligible agent has room.
func countStranded(waitingCategories []int, agents []agentView, nRules int) int64 {
	var n int64
	for _, c := range waitingCategories {
		if roomFor(agents, targetGroup(c, nRules)) {
			n++
		}
	}
	return n
}

// routeSummary is the outcome of a route run, printed as the last line of stdout.
type routeSummary struct {
	sessions, assigned, queued, overCapacity, stranded int64
	assignPerSec                                       float64
	assignP99, queueWaitP99                            float64 // milliseconds
}

// routeFigures are the summary's inputs besides the records, and what stderr reports beside it.
type routeFigures struct {
	assignLat, queueWaits, queuedLat []time.Duration
	assignedInLoad                   int64
}

// newRouteSummary derives the summary from the records of a load window [loadStart, loadEnd].
func newRouteSummary(recs []*sessionRecord, frees []freeEvent, nRules int, loadStart, loadEnd time.Duration,
	overCapacity, stranded int64) (routeSummary, routeFigures) {
	s := routeSummary{overCapacity: overCapacity, stranded: stranded}
	var f routeFigures
	for _, r := range recs {
		if r.id == 0 && !r.seen {
			continue // the message opened no session the bench could see
		}
		s.sessions++
		if r.seen {
			s.assigned++
			f.assignLat = append(f.assignLat, r.assigned-r.sent)
			if r.assigned >= loadStart && r.assigned <= loadEnd {
				f.assignedInLoad++
			}
		}
		if r.wasQueued() {
			s.queued++
			if r.seen {
				f.queuedLat = append(f.queuedLat, r.assigned-r.sent)
			}
		}
	}
	f.queueWaits = queueWaitsAfterFree(recs, frees, nRules)
	slices.Sort(f.assignLat)
	slices.Sort(f.queueWaits)
	slices.Sort(f.queuedLat)
	if w := loadEnd - loadStart; w > 0 {
		s.assignPerSec = float64(f.assignedInLoad) / w.Seconds()
	}
	s.assignP99 = percentileMs(f.assignLat, 99)
	s.queueWaitP99 = percentileMs(f.queueWaits, 99)
	return s, f
}

// String is the ROUTE line; its fields and their order are part of the tool's interface.
func (s routeSummary) String() string {
	return fmt.Sprintf("ROUTE sessions=%d assigned=%d queued=%d over_capacity=%d stranded=%d assign_per_sec=%.2f assign_p99_ms=%.2f queue_wait_after_free_p99_ms=%.2f",
		s.sessions, s.assigned, s.queued, s.overCapacity, s.stranded, s.assignPerSec, s.assignP99, s.queueWaitP99)
}
