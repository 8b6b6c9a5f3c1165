package archive

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopdesk/shopdesk/migrations/testdb"
)

// redisLocker is the node's Redis lease as app builds it: SET NX PX with a token, released by
// compare-and-delete. The scheduler tests run against it and against LocalLocker.
type redisLocker struct {
	rdb    *redis.Client
	prefix string
	token  string
}

var releaseLease = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

func (l redisLocker) Acquire(ctx context.Context, name string, ttl time.Duration) (func(), bool) {
	key := l.prefix + "lease:" + name
	ok, err := l.rdb.SetNX(ctx, key, l.token, ttl).Result()
	if err != nil || !ok {
		return nil, false
	}
	return func() { releaseLease.Run(context.Background(), l.rdb, []string{key}, l.token) }, true
}

// lockers returns two lockers that share one lock space, as two nodes would.
func lockers(t *testing.T) map[string][2]Locker {
	rdb, prefix := testdb.Redis(t)
	local := &LocalLocker{}
	return map[string][2]Locker{
		"local": {local, local},
		"redis": {redisLocker{rdb, prefix, "node-a"}, redisLocker{rdb, prefix, "node-b"}},
	}
}

// quiet keeps the expected job failures out of the test output.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func stopScheduler(t *testing.T, s *Scheduler) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
}

func TestSchedulerAddRejectsBadJobs(t *testing.T) {
	s := NewScheduler(&LocalLocker{}, quiet)
	stopScheduler(t, s)
	ok := func(context.Context) (JobResult, error) { return JobResult{}, nil }
	if err := s.Add(Job{Name: "flush", Spec: "*/5 * * * * *", Run: ok}); err != nil {
		t.Fatal(err)
	}
	for name, j := range map[string]Job{
		"duplicate":    {Name: "flush", Spec: "@every 1s", Run: ok},
		"empty name":   {Name: "", Spec: "@every 1s", Run: ok},
		"bad name":     {Name: "a b", Spec: "@every 1s", Run: ok},
		"no run":       {Name: "x", Spec: "@every 1s"},
		"bad spec":     {Name: "x", Spec: "every minute", Run: ok},
		"five fields":  {Name: "x", Spec: "*/5 * * * *", Run: ok},
		"negative ttl": {Name: "x", Spec: "@every 1s", Run: ok, LeaseTTL: -time.Second},
	} {
		if err := s.Add(j); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := s.RunNow(context.Background(), "nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("RunNow of an unknown job: %v", err)
	}
}

func TestSchedulerRunNowRecordsStatus(t *testing.T) {
	s := NewScheduler(&LocalLocker{}, quiet)
	stopScheduler(t, s)
	fail := errors.New("warm store down")
	var calls atomic.Int64
	err := s.Add(Job{Name: "archive", Spec: "0 0 3 * * *", Run: func(ctx context.Context) (JobResult, error) {
		if !LeaseFrom(ctx).Held(ctx) {
			t.Error("run does not hold its lease")
		}
		if calls.Add(1) == 2 {
			return JobResult{Processed: 1, Errors: 1}, fail
		}
		return JobResult{Processed: 10, Moved: 9, Deleted: 8}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add(Job{Name: "panics", Spec: "0 0 3 * * *", Run: func(context.Context) (JobResult, error) { panic("boom") }}); err != nil {
		t.Fatal(err)
	}
	s.Start()
	res, err := s.RunNow(context.Background(), "archive")
	if err != nil || res != (JobResult{Processed: 10, Moved: 9, Deleted: 8}) {
		t.Fatalf("first run: %+v %v", res, err)
	}
	if _, err := s.RunNow(context.Background(), "archive"); !errors.Is(err, fail) {
		t.Fatalf("second run: %v", err)
	}
	if _, err := s.RunNow(context.Background(), "panics"); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("panicking run: %v", err)
	}
	st := s.Status()
	if len(st) != 2 || st[0].Name != "archive" || st[1].Name != "panics" {
		t.Fatalf("status: %+v", st)
	}
	a := st[0]
	if a.Runs != 2 || a.Failures != 1 || a.LastError != fail.Error() || a.LastResult.Errors != 1 || a.Running ||
		a.LastStart.IsZero() || a.LastEnd.Before(a.LastStart) || a.Next.IsZero() || a.Spec != "0 0 3 * * *" {
		t.Fatalf("archive status: %+v", a)
	}
	if st[1].Failures != 1 || !strings.Contains(st[1].LastError, "boom") {
		t.Fatalf("panics status: %+v", st[1])
	}
}

// TestSchedulerOneRunAtATime: a job whose lease is held by another node is not run, by the schedule
// or by RunNow, and a release lets it run again.
func TestSchedulerOneRunAtATime(t *testing.T) {
	for name, ls := range lockers(t) {
		t.Run(name, func(t *testing.T) {
			a, b := NewScheduler(ls[0], quiet), NewScheduler(ls[1], quiet)
			stopScheduler(t, a)
			stopScheduler(t, b)
			entered, leave := make(chan struct{}), make(chan struct{})
			var running, most atomic.Int64
			job := func(ctx context.Context) (JobResult, error) {
				n := running.Add(1)
				defer running.Add(-1)
				if n > most.Load() {
					most.Store(n)
				}
				select {
				case entered <- struct{}{}:
				default:
				}
				select {
				case <-leave:
				case <-ctx.Done():
				}
				return JobResult{Processed: 1}, nil
			}
			for _, s := range []*Scheduler{a, b} {
				if err := s.Add(Job{Name: "trim", Spec: "* * * * * *", Run: job, LeaseTTL: time.Minute}); err != nil {
					t.Fatal(err)
				}
				s.Start()
			}
			<-entered // one node runs it; the other's ticks and RunNow find the lease held
			if _, err := b.RunNow(context.Background(), "trim"); !errors.Is(err, ErrLeaseBusy) {
				t.Fatalf("RunNow while held: %v", err)
			}
			if _, err := a.RunNow(context.Background(), "trim"); !errors.Is(err, ErrLeaseBusy) {
				t.Fatalf("RunNow while held: %v", err)
			}
			close(leave)
			for {
				var runs int64
				for _, s := range []*Scheduler{a, b} {
					runs += s.Status()[0].Runs
				}
				if runs >= 2 {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if most.Load() != 1 {
				t.Fatalf("%d runs at once", most.Load())
			}
		})
	}
}

// TestSchedulerLeaseRunsOut: a run longer than its lease sees Held turn false.
func TestSchedulerLeaseRunsOut(t *testing.T) {
	s := NewScheduler(&LocalLocker{}, quiet)
	stopScheduler(t, s)
	err := s.Add(Job{Name: "slow", Spec: "0 0 3 * * *", LeaseTTL: 200 * time.Millisecond, Run: func(ctx context.Context) (JobResult, error) {
		l := LeaseFrom(ctx)
		if !l.Held(ctx) {
			return JobResult{}, errors.New("not held at start")
		}
		for l.Held(ctx) {
			time.Sleep(10 * time.Millisecond)
		}
		return JobResult{}, ErrLeaseLost
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RunNow(context.Background(), "slow"); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("slow run: %v", err)
	}
}

// TestSchedulerStopWaits: Stop cancels running jobs' context and returns after they have returned.
func TestSchedulerStopWaits(t *testing.T) {
	s := NewScheduler(&LocalLocker{}, quiet)
	entered := make(chan struct{}, 2)
	var finished atomic.Int64
	job := func(ctx context.Context) (JobResult, error) {
		entered <- struct{}{}
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // a job finishing its batch after cancellation
		finished.Add(1)
		return JobResult{}, ctx.Err()
	}
	for _, name := range []string{"scheduled", "manual"} {
		if err := s.Add(Job{Name: name, Spec: "* * * * * *", Run: job}); err != nil {
			t.Fatal(err)
		}
	}
	manualDone := make(chan error, 1)
	go func() {
		_, err := s.RunNow(context.Background(), "manual")
		manualDone <- err
	}()
	s.Start()
	<-entered
	<-entered
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if finished.Load() != 2 {
		t.Fatalf("Stop returned with %d of 2 jobs finished", finished.Load())
	}
	if err := <-manualDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("manual run: %v", err)
	}
	if _, err := s.RunNow(context.Background(), "manual"); err == nil {
		t.Fatal("RunNow after Stop ran")
	}
	if err := s.Add(Job{Name: "late", Spec: "@every 1s", Run: job}); err == nil {
		t.Fatal("Add after Stop accepted")
	}
}

// TestSchedulerHold: Hold waits for a run under way (giving up when its context ends), then keeps
// the job from running on this node and on another sharing the locks until released.
func TestSchedulerHold(t *testing.T) {
	for name, ls := range lockers(t) {
		t.Run(name, func(t *testing.T) {
			a, b := NewScheduler(ls[0], quiet), NewScheduler(ls[1], quiet)
			stopScheduler(t, a)
			stopScheduler(t, b)
			entered, leave := make(chan struct{}, 1), make(chan struct{})
			block := true
			job := func(ctx context.Context) (JobResult, error) {
				if block {
					entered <- struct{}{}
					<-leave
				}
				return JobResult{Processed: 1}, nil
			}
			for _, s := range []*Scheduler{a, b} {
				if err := s.Add(Job{Name: "index", Spec: "0 0 0 1 1 *", Run: job, LeaseTTL: time.Minute}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := a.Hold(context.Background(), time.Minute, "index", "nope"); err == nil {
				t.Fatal("an unknown job held")
			}
			done := make(chan error, 1)
			go func() {
				_, err := a.RunNow(context.Background(), "index")
				done <- err
			}()
			<-entered
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			for _, s := range []*Scheduler{a, b} {
				if _, err := s.Hold(ctx, time.Minute, "index"); !errors.Is(err, ErrLeaseBusy) {
					t.Fatalf("hold during a run: %v", err)
				}
			}
			close(leave)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			block = false
			release, err := b.Hold(context.Background(), time.Minute, "index")
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []*Scheduler{a, b} {
				if _, err := s.RunNow(context.Background(), "index"); !errors.Is(err, ErrLeaseBusy) {
					t.Fatalf("run while held: %v", err)
				}
			}
			release()
			for _, s := range []*Scheduler{a, b} {
				if res, err := s.RunNow(context.Background(), "index"); err != nil || res.Processed != 1 {
					t.Fatalf("run after the release: %+v %v", res, err)
				}
			}
		})
	}
}
