package routing

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/shopdesk/shopdesk/migrations/testdb"
	"github.com/shopdesk/shopdesk/rules"
	"github.com/shopdesk/shopdesk/session"
)

func storeBackends() map[string]func(t *testing.T) *gorm.DB {
	return map[string]func(t *testing.T) *gorm.DB{
		"sqlite": func(t *testing.T) *gorm.DB { return testdb.SQLite(t) },
		"mysql":  func(t *testing.T) *gorm.DB { return testdb.MySQL(t) },
	}
}

func TestStoreConformance(t *testing.T) {
	ctx := context.Background()
	for name, open := range storeBackends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := NewStore(open(t))
			now := time.Date(2025, 3, 10, 10, 0, 0, 0, time.UTC)
			s.Now = func() time.Time { return now }

			t.Run("versions", func(t *testing.T) {
				if n, err := s.Active(ctx, 1); err != nil || n != 0 {
					t.Fatalf("Active of a new shop = %d %v", n, err)
				}
				if v, err := s.Version(ctx, 1, 0); err != nil || len(v.RuleSet.Rules) != 2 {
					t.Fatalf("version 0 = %+v %v", v, err)
				}
				rs := rules.DefaultRuleSet()
				v1, err := s.SaveVersion(ctx, 1, rs, 7, "first")
				if err != nil || v1.Number != 1 {
					t.Fatalf("SaveVersion = %+v %v", v1, err)
				}
				rs.Rules[0].Priority = 5
				v2, err := s.SaveVersion(ctx, 1, rs, 8, "second")
				if err != nil || v2.Number != 2 {
					t.Fatalf("SaveVersion = %+v %v", v2, err)
				}
				if v, err := s.SaveVersion(ctx, 2, rs, 9, ""); err != nil || v.Number != 1 {
					t.Fatalf("another shop's numbers start at 1: %+v %v", v, err)
				}
				bad := rules.DefaultRuleSet()
				bad.Rules[0].Target = `agent.sttus == "online"`
				_, err = s.SaveVersion(ctx, 1, bad, 7, "broken")
				var ve *rules.ValidationError
				if !errors.As(err, &ve) || ve.Errors[0].Field != rules.FieldTarget {
					t.Fatalf("broken rule set: %v", err)
				}
				vs, err := s.Versions(ctx, 1, 10)
				if err != nil || len(vs) != 2 || vs[0].Number != 2 || vs[0].Author != 8 || vs[0].Comment != "second" ||
					vs[0].RuleSet.Rules[0].Priority != 5 || !vs[0].CreatedAt.Equal(now) {
					t.Fatalf("Versions = %+v %v", vs, err)
				}
				if lines := rules.Diff(vs[1].RuleSet, vs[0].RuleSet); len(lines) != 1 {
					t.Fatalf("diff %v", lines)
				}
				if _, err := s.Version(ctx, 1, 3); session.ErrorCode(err) != session.ENOTFOUND {
					t.Fatalf("missing version: %v", err)
				}
			})

			t.Run("concurrent saves number apart", func(t *testing.T) {
				var wg sync.WaitGroup
				nums := make(chan int, 8)
				for i := 0; i < 8; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						v, err := s.SaveVersion(ctx, 50, rules.DefaultRuleSet(), 1, "")
						if err != nil {
							t.Error(err)
							return
						}
						nums <- v.Number
					}()
				}
				wg.Wait()
				close(nums)
				seen := map[int]bool{}
				for n := range nums {
					if seen[n] {
						t.Fatalf("number %d given twice", n)
					}
					seen[n] = true
				}
				if len(seen) != 8 {
					t.Fatalf("%d versions saved", len(seen))
				}
			})

			t.Run("publish, rollback, audit", func(t *testing.T) {
				if err := s.Publish(ctx, 1, 9, 7, ""); session.ErrorCode(err) != session.ENOTFOUND {
					t.Fatalf("publish of a missing version: %v", err)
				}
				if err := s.Publish(ctx, 1, 1, 7, "go"); err != nil {
					t.Fatal(err)
				}
				if err := s.Publish(ctx, 1, 2, 8, ""); err != nil {
					t.Fatal(err)
				}
				if err := s.Rollback(ctx, 1, 2, 8, ""); session.ErrorCode(err) != session.EINVALID {
					t.Fatalf("rollback to the current version: %v", err)
				}
				if err := s.Rollback(ctx, 1, 1, 9, "oops"); err != nil {
					t.Fatal(err)
				}
				if n, err := s.Active(ctx, 1); err != nil || n != 1 {
					t.Fatalf("Active = %d %v", n, err)
				}
				log, err := s.Audit(ctx, 1, 10)
				if err != nil || len(log) != 3 {
					t.Fatalf("Audit = %+v %v", log, err)
				}
				if a := log[0]; a.Action != ActionRollback || a.Version != 1 || a.Previous != 2 || a.Actor != 9 || a.Note != "oops" {
					t.Fatalf("last audit entry %+v", a)
				}
				if a := log[2]; a.Action != ActionPublish || a.Version != 1 || a.Previous != 0 || a.Actor != 7 {
					t.Fatalf("first audit entry %+v", a)
				}
			})

			t.Run("drafts", func(t *testing.T) {
				if _, err := s.Draft(ctx, 1); session.ErrorCode(err) != session.ENOTFOUND {
					t.Fatalf("no draft: %v", err)
				}
				bad := rules.DefaultRuleSet()
				bad.Default.Target = "agent.load +"
				problems, err := s.SaveDraft(ctx, 1, bad, 7, false)
				if err != nil || len(problems) == 0 {
					t.Fatalf("an invalid draft is kept with its problems: %v %v", problems, err)
				}
				if _, err := s.SaveDraft(ctx, 1, bad, 7, true); err == nil {
					t.Fatal("an invalid draft was put in shadow")
				}
				if d, err := s.Draft(ctx, 1); err != nil || d.Shadow || d.RuleSet.Default.Target != "agent.load +" {
					t.Fatalf("Draft = %+v %v", d, err)
				}
				if _, err := s.SaveDraft(ctx, 1, rules.DefaultRuleSet(), 8, true); err != nil {
					t.Fatal(err)
				}
				if d, err := s.Draft(ctx, 1); err != nil || !d.Shadow || d.Author != 8 {
					t.Fatalf("Draft = %+v %v", d, err)
				}
				if err := s.DeleteDraft(ctx, 1); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Draft(ctx, 1); session.ErrorCode(err) != session.ENOTFOUND {
					t.Fatalf("deleted draft: %v", err)
				}
			})

			t.Run("schedules", func(t *testing.T) {
				good := []rules.Schedule{{Version: 2, TimeZone: "Asia/Shanghai", Cron: "0 22 * * *", Duration: "8h"}}
				if err := s.SetSchedules(ctx, 1, good, 7, now); err != nil {
					t.Fatal(err)
				}
				got, err := s.Schedules(ctx, 1)
				if err != nil || len(got) != 1 || got[0] != good[0] {
					t.Fatalf("Schedules = %+v %v", got, err)
				}
				err = s.SetSchedules(ctx, 1, []rules.Schedule{{Version: 42, TimeZone: "UTC", Start: "2025-04-01T00:00", End: "2025-04-02T00:00"}}, 7, now)
				var se *ScheduleErrors
				if !errors.As(err, &se) || session.ErrorCode(err) != session.EINVALID {
					t.Fatalf("a schedule of an unsaved version: %v", err)
				}
				if got, _ := s.Schedules(ctx, 1); len(got) != 1 {
					t.Fatal("a refused change changed the schedules")
				}
				if log, _ := s.Audit(ctx, 1, 1); len(log) != 1 || log[0].Action != ActionSchedule {
					t.Fatalf("schedule change not audited: %+v", log)
				}
			})

			t.Run("traces and shadow results", func(t *testing.T) {
				old := Trace{ShopID: 1, SessionID: 5, At: now.Add(-31 * 24 * time.Hour), Cause: CauseOpened, Outcome: OutcomeQueued}
				recent := Trace{ShopID: 1, SessionID: 5, At: now, Cause: CauseQueue, RuleName: "presale", Outcome: OutcomeAssigned, AgentID: 3,
					Filters: []FilterCount{{Filter: FilterOffline, Removed: 2}}, Top: []CandidateTrace{{AgentID: 3, Keys: []float64{0.5}}}}
				if err := s.SaveTraces(ctx, []Trace{old, recent, {ShopID: 2, SessionID: 5, At: now}}); err != nil {
					t.Fatal(err)
				}
				ts, err := s.Traces(ctx, 1, 5)
				if err != nil || len(ts) != 2 || ts[0].AgentID != 3 || ts[0].Filters[0].Removed != 2 || ts[0].Top[0].Keys[0] != 0.5 {
					t.Fatalf("Traces = %+v %v", ts, err)
				}
				results := []ShadowResult{
					{ShopID: 1, SessionID: 5, At: now, LiveAgent: 3, ShadowAgent: 4, Differs: true},
					{ShopID: 1, SessionID: 6, At: now, LiveAgent: 3, ShadowAgent: 3},
					{ShopID: 1, SessionID: 7, At: now.Add(-40 * 24 * time.Hour), Differs: true},
				}
				if err := s.SaveShadowResults(ctx, results); err != nil {
					t.Fatal(err)
				}
				rs, total, differ, err := s.ShadowResults(ctx, 1, now.Add(-time.Hour), 10)
				if err != nil || total != 2 || differ != 1 || len(rs) != 2 || rs[0].SessionID != 6 {
					t.Fatalf("ShadowResults = %+v %d %d %v", rs, total, differ, err)
				}
				n, err := s.Prune(ctx, now.Add(-TraceRetention))
				if err != nil || n != 2 {
					t.Fatalf("Prune = %d %v", n, err)
				}
				if ts, _ := s.Traces(ctx, 1, 5); len(ts) != 1 {
					t.Fatalf("after prune %d traces", len(ts))
				}
			})
		})
	}
}
