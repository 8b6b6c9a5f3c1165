package routing

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/agent"
)

// TestWithStatusMatchesRebuild: a snapshot patched one status change at a time is what building it
// afresh from the changed staff gives, whatever the changes, and the snapshot it was patched from is
// left as it was (readers may still hold it).
func TestWithStatusMatchesRebuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	statuses := []agent.Status{agent.StatusOnline, agent.StatusBusy, agent.StatusAway, agent.StatusOffline}
	groups := []string{"presale", "aftersale", "vip"}
	at := time.Unix(1_800_000_000, 0)
	for trial := range 60 {
		n := 1 + rng.IntN(25)
		staff := make([]*agent.Staff, n)
		for i := range staff {
			st := &agent.Staff{ID: int64(3*i + 1), ShopID: 7, Capacity: rng.IntN(3), Active: rng.IntN(6) > 0,
				Status: statuses[rng.IntN(len(statuses))]}
			if rng.IntN(12) == 0 {
				st.ShopID = 8 // never routable here, whatever its status
			}
			for range rng.IntN(4) { // a group may come twice
				st.Groups = append(st.Groups, groups[rng.IntN(len(groups))])
			}
			staff[i] = st
		}
		var beating map[int64]bool
		if trial%2 == 1 {
			beating = map[int64]bool{}
			for _, st := range staff {
				if rng.IntN(2) == 0 {
					beating[st.ID] = true
				}
			}
		}
		snap := buildSnapshot(7, nil, staff, beating, at)
		if _, ok := snap.withStatus(1_000_000, agent.StatusOnline); ok {
			t.Fatal("an unknown agent patched")
		}
		for step := range 50 {
			i, status := rng.IntN(n), statuses[rng.IntN(len(statuses))]
			before := rebuild(snap)
			next, ok := snap.withStatus(snap.staff[i].ID, status)
			if !ok {
				t.Fatalf("trial %d step %d: agent %d unknown", trial, step, snap.staff[i].ID)
			}
			if next.staff[i].Status != status {
				t.Fatalf("trial %d step %d: status %q, want %q", trial, step, next.staff[i].Status, status)
			}
			sameSnapshot(t, next, rebuild(next))
			sameSnapshot(t, snap, before)
			snap = next
		}
	}
}

// rebuild builds s again from copies of its staff and its heartbeats.
func rebuild(s *snapshot) *snapshot {
	staff := make([]*agent.Staff, len(s.staff))
	for i, st := range s.staff {
		cp := *st
		staff[i] = &cp
	}
	var beating map[int64]bool
	if s.beating != nil {
		beating = map[int64]bool{}
		for id, b := range s.beating {
			beating[id] = b
		}
	}
	return buildSnapshot(s.shopID, s.shop, staff, beating, s.at)
}

func sameSnapshot(t *testing.T, got, want *snapshot) {
	t.Helper()
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"staff", got.staff, want.staff}, {"reason", got.reason, want.reason}, {"byID", got.byID, want.byID},
		{"online", got.online, want.online}, {"onlineIDs", got.onlineIDs, want.onlineIDs},
		{"byGroup", got.byGroup, want.byGroup}, {"groupIDs", got.groupIDs, want.groupIDs},
		{"ids", got.ids, want.ids}, {"removed", got.removed, want.removed}, {"maxID", got.maxID, want.maxID},
		{"beating", got.beating, want.beating},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Fatalf("%s: %v, rebuilt %v", f.name, f.got, f.want)
		}
	}
}
