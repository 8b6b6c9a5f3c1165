package archive

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestRunLog: the run log keeps the newest runs of each job, bounded, and answers the last run of
// every job, in SQLite and MariaDB.
func TestRunLog(t *testing.T) {
	for _, tr := range tiers() {
		t.Run(tr.name, func(t *testing.T) {
			ctx := context.Background()
			l := NewRunLog(tr.db(t), 5)
			start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
			for i := 0; i < 23; i++ {
				job := "flush"
				if i%2 == 1 {
					job = "trim"
				}
				r := RunRecord{Job: job, Node: "n1", StartedAt: start.Add(time.Duration(i) * time.Second),
					EndedAt: start.Add(time.Duration(i)*time.Second + 500*time.Millisecond), Processed: int64(i)}
				if i == 21 {
					r.Error, r.Errors = strings.Repeat("x", 3000), 1
				}
				if err := l.Record(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			last, err := l.Last(ctx)
			if err != nil || len(last) != 2 {
				t.Fatalf("last: %+v %v", last, err)
			}
			if f := last[0]; f.Job != "flush" || f.Processed != 22 || f.Node != "n1" || f.Seconds() != 0.5 || !f.StartedAt.Equal(start.Add(22*time.Second)) {
				t.Fatalf("last flush: %+v", f)
			}
			if tr := last[1]; tr.Job != "trim" || tr.Processed != 21 || tr.Errors != 1 || len(tr.Error) > maxErrorText+len("…") {
				t.Fatalf("last trim: %+v (error of %d bytes)", tr, len(tr.Error))
			}
			// 12 flush runs were written; pruning at the 1st and 11th record leaves at most keep+9.
			recent, err := l.Recent(ctx, "flush", 100)
			if err != nil || len(recent) < 5 || len(recent) >= 12 || recent[0].Processed != 22 {
				t.Fatalf("recent flush runs: %d %v", len(recent), err)
			}
		})
	}
}

// memRecorder keeps recorded runs in memory.
type memRecorder struct{ runs chan RunRecord }

func (m memRecorder) Record(_ context.Context, r RunRecord) error {
	m.runs <- r
	return nil
}

// TestSchedulerRecordsRuns: runs that did something, failed or were run by hand are recorded with
// the node's name; idle scheduled runs at most once a minute; a scope a job does not take is refused.
func TestSchedulerRecordsRuns(t *testing.T) {
	ctx := context.Background()
	s := NewScheduler(&LocalLocker{}, quiet)
	stopScheduler(t, s)
	rec := memRecorder{runs: make(chan RunRecord, 100)}
	s.RecordRuns(rec, "node-a")
	results := make(chan JobResult, 100)
	failing := errors.New("warm store down")
	var scope Scope
	if err := s.Add(Job{Name: "work", Spec: "@every 1h", Takes: ScopeShop, Run: func(ctx context.Context) (JobResult, error) {
		scope = ScopeFrom(ctx)
		r := <-results
		if r.Errors > 0 {
			return r, failing
		}
		return r, nil
	}}); err != nil {
		t.Fatal(err)
	}
	st := s.jobs["work"]
	run := func(r JobResult) {
		results <- r
		s.run(ctx, st, false)
	}
	run(JobResult{})                        // idle, but the first: recorded
	run(JobResult{})                        // idle within a minute: not recorded
	run(JobResult{Processed: 3, Moved: 3})  // did something
	run(JobResult{Processed: 1, Errors: 1}) // failed
	results <- JobResult{}                  // by hand, idle: recorded
	if _, err := s.RunNow(WithScope(ctx, Scope{ShopID: 7}), "work"); err != nil || scope.ShopID != 7 {
		t.Fatalf("run by hand: %v, scope %+v", err, scope)
	}
	want := []JobResult{{}, {Processed: 3, Moved: 3}, {Processed: 1, Errors: 1}, {}}
	for i, w := range want {
		r := <-rec.runs
		if r.Job != "work" || r.Node != "node-a" || (JobResult{r.Processed, r.Moved, r.Deleted, r.Errors}) != w || r.EndedAt.Before(r.StartedAt) {
			t.Fatalf("record %d: %+v, want %+v", i, r, w)
		}
		if (i == 2) != (r.Error == failing.Error()) {
			t.Fatalf("record %d error %q", i, r.Error)
		}
	}
	select {
	case r := <-rec.runs:
		t.Fatalf("an extra record: %+v", r)
	default:
	}
	if _, err := s.RunNow(WithScope(ctx, Scope{Until: time.Now()}), "work"); err == nil || !strings.Contains(err.Error(), "--until") {
		t.Fatalf("a scope the job does not take: %v", err)
	}
	if names := s.Names(); len(names) != 1 || names[0] != "work" {
		t.Fatalf("names: %v", names)
	}
}
