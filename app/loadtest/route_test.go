package loadtest

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/routing"
)

var routeRE = regexp.MustCompile(`^ROUTE sessions=(\d+) assigned=(\d+) queued=(\d+) over_capacity=(\d+) stranded=(\d+) assign_per_sec=(\d+\.\d\d) assign_p99_ms=(\d+\.\d\d) queue_wait_after_free_p99_ms=(\d+\.\d\d)$`)

// TestBenchRouteAgainstEmbeddedNode runs the route scenario small, with more buyers than the agents
// have room for, so that sessions queue and drain while agents flap.
func TestBenchRouteAgainstEmbeddedNode(t *testing.T) {
	// The lowest bcrypt cost: creating and logging in 20 agents under -race takes minutes otherwise.
	url := startNode(t, "--bcrypt-cost=4")
	code, lines, stderr := bench(t, "--scenario", "route", "--addr", url, "--operator-token", "tok", "--agents", "20", "--rules", "5",
		"--capacity", "2", "--buyers", "60", "--hold", "300ms", "--flap", "0.2", "--flap-period", "500ms", "--duration", "3s", "--drain", "5s")
	t.Logf("stderr:\n%s", stderr)
	if len(lines) != 1 {
		t.Fatalf("stdout should be exactly the summary line, got %q", lines)
	}
	m := routeRE.FindStringSubmatch(lines[0])
	if m == nil {
		t.Fatalf("summary line does not match: %q", lines[0])
	}
	n := func(i int) int64 { v, _ := strconv.ParseInt(m[i], 10, 64); return v }
	sessions, assigned, queued, over, stranded := n(1), n(2), n(3), n(4), n(5)
	if sessions == 0 || assigned == 0 || over != 0 || stranded != 0 {
		t.Errorf("want sessions>0, assigned>0, over_capacity=0, stranded=0: %s", lines[0])
	}
	if queued == 0 {
		t.Errorf("60 buyers and 40 slots should queue sessions: %s", lines[0])
	}
	if code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

func TestBenchRouteRefusals(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--scenario", "route", "--flap", "0.7"}, "--flap must be between 0 and 0.5"},
		{[]string{"--scenario", "route", "--flap", "NaN"}, "--flap must be between 0 and 0.5"},
		{[]string{"--scenario", "route", "--flap-period", "0"}, "--flap-period must be positive"},
		{[]string{"--scenario", "route", "--rules", "0"}, "--rules must be between 1 and 200"},
		{[]string{"--scenario", "route", "--rules", "201"}, "--rules must be between 1 and 200"},
		{[]string{"--scenario", "route", "--capacity", "0"}, "--capacity must be between 1 and 1000"},
		{[]string{"--scenario", "route", "--buyers", "0"}, "--buyers and --agents must be at least 1"},
		{[]string{"--scenario", "route", "--hold", "-1s"}, "--hold and --drain must not be negative"},
		{[]string{"--scenario", "route", "--duration", "0s"}, "--duration must be positive"},
		{[]string{"--scenario", "route", "--rate", "100"}, "--rate belongs to the chat scenario"},
		{[]string{"--scenario", "route", "--idle-conns", "5"}, "--idle-conns belongs to the chat scenario"},
		{[]string{"--hold", "1s"}, "--hold belongs to the route scenario"},
		{[]string{"--scenario", "chat", "--flap", "0.1"}, "--flap belongs to the route scenario"},
		{[]string{"--scenario", "route", "--addr", "http://10.0.0.1:8080"}, "loopback"},
	} {
		code, lines, stderr := bench(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || lines[0] != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.args, code, lines, stderr)
		}
	}
}

func TestBenchRouteUsageDefinesTheFields(t *testing.T) {
	_, _, stderr := bench(t, "-h")
	for _, field := range []string{"sessions", "assigned", "queued", "over_capacity", "stranded", "assign_per_sec",
		"assign_p99_ms", "queue_wait_after_free_p99_ms", "--flap-period", "--hold"} {
		if !strings.Contains(stderr, field) {
			t.Errorf("-h does not explain %s", field)
		}
	}
}

func TestQueueWaitsAfterFree(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	frees := []freeEvent{{ms(100), 0}, {ms(300), 1}, {ms(500), 0}, {ms(900), 2}}
	for _, tc := range []struct {
		name string
		rec  sessionRecord
		want []time.Duration
	}{
		{"assigned at once: not counted", sessionRecord{category: 0, sent: ms(0), assigned: ms(600), seen: true, by: "routing"}, nil},
		{"queued in group 0: latest group-0 free before assignment", sessionRecord{category: 0, sent: ms(50), assigned: ms(600), seen: true, by: assignedByQueue}, []time.Duration{ms(100)}},
		{"frees of other groups do not count", sessionRecord{category: 10, sent: ms(50), assigned: ms(450), seen: true, queueEvent: true}, []time.Duration{ms(350)}},
		{"no free since it was sent: from the send", sessionRecord{category: 1, sent: ms(400), assigned: ms(700), seen: true, by: assignedByQueue}, []time.Duration{ms(300)}},
		{"default rule: any group's free", sessionRecord{category: 22, sent: ms(0), assigned: ms(950), seen: true, by: assignedByQueue}, []time.Duration{ms(50)}},
		{"a free at the assignment instant is not before it", sessionRecord{category: 2, sent: ms(0), assigned: ms(900), seen: true, by: assignedByQueue}, []time.Duration{ms(900)}},
		{"never assigned: no wait", sessionRecord{category: 0, sent: ms(0)}, nil},
	} {
		got := queueWaitsAfterFree([]*sessionRecord{&tc.rec}, frees, 20)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCountStranded(t *testing.T) {
	agents := []agentView{
		{ID: 1, Status: "online", Active: true, Heartbeat: true, Groups: []string{"g0"}, Capacity: 2, Load: 2},
		{ID: 2, Status: "online", Active: true, Heartbeat: false, Groups: []string{"g1"}, Capacity: 2, Load: 0},
		{ID: 3, Status: "offline", Active: true, Heartbeat: true, Groups: []string{"g2"}, Capacity: 2, Load: 0},
		{ID: 4, Status: "online", Active: true, Heartbeat: true, Groups: []string{"g3"}, Capacity: 2, Load: 1},
		{ID: 5, Status: "online", Active: false, Heartbeat: true, Groups: []string{"g4"}, Capacity: 2, Load: 0},
	}
	for _, tc := range []struct {
		cats []int
		want int64
	}{
		{[]int{0}, 0},         // g0's only agent is full
		{[]int{1}, 0},         // g1's agent has no heartbeat
		{[]int{2}, 0},         // g2's agent is offline
		{[]int{3, 13}, 2},     // g3's agent has room (rules 3 and 13)
		{[]int{4}, 0},         // g4's agent is deactivated
		{[]int{21, 0, 23}, 2}, // the default rule takes anyone with room: agent 4
		{[]int{}, 0},
	} {
		if got := countStranded(tc.cats, agents, 20); got != tc.want {
			t.Errorf("%v: got %d, want %d", tc.cats, got, tc.want)
		}
	}
}

func TestRouteSummaryLine(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	recs := []*sessionRecord{
		{category: 0, id: 1, sent: ms(1000), assigned: ms(1010), seen: true, by: "routing"},
		{category: 0, id: 2, sent: ms(1500), assigned: ms(2500), seen: true, by: assignedByQueue},
		{category: 1, id: 3, sent: ms(2900), assigned: ms(3100), seen: true, queueEvent: true, by: assignedByQueue}, // after the window
		{category: 1, id: 4, sent: ms(2950)}, // never assigned
		{category: 2},                        // opened nothing the bench saw
	}
	frees := []freeEvent{{ms(2400), 0}, {ms(3000), 1}}
	s, f := newRouteSummary(recs, frees, 20, ms(1000), ms(3000), 0, 1)
	want := "ROUTE sessions=4 assigned=3 queued=3 over_capacity=0 stranded=1 assign_per_sec=1.00 assign_p99_ms=1000.00 queue_wait_after_free_p99_ms=100.00"
	if s.String() != want || f.assignedInLoad != 2 {
		t.Errorf("got %s (%d in the window), want %s", s, f.assignedInLoad, want)
	}
	if !routeRE.MatchString(s.String()) {
		t.Errorf("the line does not match its own pattern: %s", s)
	}
}

func TestUnclaimed(t *testing.T) {
	claims := []routing.ClaimEvent{
		{Op: routing.OpClaim, SessionID: 1, AgentID: 10},
		{Op: routing.OpRelease, SessionID: 1, AgentID: 10},
		{Op: routing.OpClaim, SessionID: 2, AgentID: 11},
		{Op: routing.OpForce, SessionID: 3, AgentID: 12},
	}
	recs := []*sessionRecord{
		{id: 1, agent: 10, lostPush: true}, // claimed (and released): not counted
		{id: 2, agent: 12, lostPush: true}, // claimed at another agent: counted
		{id: 3, agent: 12, lostPush: true}, // forced claim: not counted
		{id: 4, agent: 13, lostPush: true}, // never claimed: counted
		{id: 5, agent: 14, seen: true},     // its push came: not looked at
	}
	if got := unclaimed(recs, claims); got != 2 {
		t.Errorf("unclaimed = %d, want 2", got)
	}
}
