package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Locker grants a named lock to one holder at a time for a bounded time, so that a dead holder never
// blocks the others: a Redis lease in a cluster, LocalLocker in one process.
type Locker interface {
	// Acquire takes the lock for ttl; ok is false when someone else holds it. release gives it back
	// early and is safe to call after the lock expired.
	Acquire(ctx context.Context, name string, ttl time.Duration) (release func(), ok bool)
}

// LockerFunc is a function used as a Locker, such as the node's own lease method.
type LockerFunc func(ctx context.Context, name string, ttl time.Duration) (release func(), ok bool)

// Acquire calls f.
func (f LockerFunc) Acquire(ctx context.Context, name string, ttl time.Duration) (func(), bool) {
	return f(ctx, name, ttl)
}

// LocalLocker is a Locker within one process, for embedded mode and tests.
type LocalLocker struct {
	mu    sync.Mutex
	until map[string]time.Time
	gen   map[string]uint64
}

// Acquire takes name unless another holder has it and its ttl has not run out.
func (l *LocalLocker) Acquire(_ context.Context, name string, ttl time.Duration) (func(), bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.until == nil {
		l.until, l.gen = map[string]time.Time{}, map[string]uint64{}
	}
	now := time.Now()
	if now.Before(l.until[name]) {
		return nil, false
	}
	l.until[name] = now.Add(ttl)
	l.gen[name]++
	mine := l.gen[name]
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.gen[name] == mine {
			delete(l.until, name)
		}
	}, true
}

// Lease is a job run's hold on its lock; a job asks it right before anything it deletes.
type Lease interface {
	// Held reports whether the run may still act as the only holder.
	Held(ctx context.Context) bool
}

// ErrLeaseLost is returned by a job that stopped because its lease ran out before it could delete.
var ErrLeaseLost = errors.New("lease lost: stopped before deleting")

// ErrLeaseBusy is returned by RunNow when another node or run holds the job's lease.
var ErrLeaseBusy = errors.New("job is running elsewhere: its lease is held")

type leaseKey struct{}

// WithLease returns a context carrying the run's lease, for jobs run outside a Scheduler.
func WithLease(ctx context.Context, l Lease) context.Context {
	return context.WithValue(ctx, leaseKey{}, l)
}

// LeaseFrom returns the lease of the run that ctx belongs to. Without one (a job called directly,
// with no scheduler and no other node), the run holds everything for as long as ctx lives.
func LeaseFrom(ctx context.Context) Lease {
	if l, ok := ctx.Value(leaseKey{}).(Lease); ok {
		return l
	}
	return ctxLease{}
}

type ctxLease struct{}

func (ctxLease) Held(ctx context.Context) bool { return ctx.Err() == nil }

// timedLease is held until a margin before its ttl runs out, counted from before the lock was
// requested, so it never outlives the lock it stands for (a lock expires ttl after it was set).
type timedLease struct {
	deadline time.Time
	mu       sync.Mutex
	released bool
}

func (l *timedLease) Held(ctx context.Context) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.released && ctx.Err() == nil && time.Now().Before(l.deadline)
}

func (l *timedLease) release() {
	l.mu.Lock()
	l.released = true
	l.mu.Unlock()
}

// JobResult counts what one run of a job did.
type JobResult struct {
	Processed int64 `json:"processed"`
	Moved     int64 `json:"moved"`
	Deleted   int64 `json:"deleted"`
	Errors    int64 `json:"errors"`
}

// JobFunc is one run of a job. It must be safe to rerun after a crash at any point, and must stop
// when ctx is done.
type JobFunc func(ctx context.Context) (JobResult, error)

// Job is a named piece of work the Scheduler runs on a schedule, one node at a time.
type Job struct {
	// Name identifies the job in status, logs, RunNow and its lock: letters, digits, '-' and '_'.
	Name string
	// Spec is a cron schedule with seconds ("*/5 * * * * *", "0 30 3 * * *") or a descriptor
	// ("@every 5s", "@daily").
	Spec string
	// LeaseTTL bounds a run's hold on the lock; default 10 minutes. A run longer than that loses its
	// lease and must stop before deleting anything.
	LeaseTTL time.Duration
	// Takes says which fields of a Scope (WithScope) the job honours; RunNow refuses a scope with
	// others, so that `--shop` is never silently ignored.
	Takes ScopeFields
	Run   JobFunc
}

// ScopeFields is a set of the fields of Scope.
type ScopeFields uint8

// The fields of Scope a job may take.
const (
	ScopeShop ScopeFields = 1 << iota
	ScopeUntil
)

// String names the fields as the command line's flags: "--shop --until".
func (f ScopeFields) String() string {
	var names []string
	if f&ScopeShop != 0 {
		names = append(names, "--shop")
	}
	if f&ScopeUntil != 0 {
		names = append(names, "--until")
	}
	return strings.Join(names, " ")
}

// Fields returns the fields sc sets.
func (sc Scope) Fields() ScopeFields {
	var f ScopeFields
	if sc.ShopID != 0 {
		f |= ScopeShop
	}
	if !sc.Until.IsZero() {
		f |= ScopeUntil
	}
	return f
}

// JobStatus is what the Scheduler knows of a job: its schedule and its last run.
type JobStatus struct {
	Name       string    `json:"name"`
	Spec       string    `json:"spec"`
	Running    bool      `json:"running"`
	Next       time.Time `json:"next,omitzero"`
	LastStart  time.Time `json:"last_start,omitzero"`
	LastEnd    time.Time `json:"last_end,omitzero"`
	LastResult JobResult `json:"last_result"`
	LastError  string    `json:"last_error,omitempty"`
	Runs       int64     `json:"runs"`
	Failures   int64     `json:"failures"`
	// Skipped counts scheduled runs left out because another node held the lease.
	Skipped int64 `json:"skipped"`
}

const defaultLeaseTTL = 10 * time.Minute

var jobName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

type jobState struct {
	job     Job
	entry   cron.EntryID
	running sync.Mutex // one run of a job at a time in this process: cron's and RunNow's
	status  JobStatus
	// recorded is when an idle run of the job was last written to the run log.
	recorded time.Time
}

// idleRecordEvery is how often a run that found nothing to do is written to the run log: a flush
// every second on an idle cluster must not write a row a second.
const idleRecordEvery = time.Minute

// Scheduler runs jobs on cron schedules (with seconds), one run of a job at a time across every
// node sharing the Locker, and remembers each job's last run.
type Scheduler struct {
	cron   *cron.Cron
	locker Locker
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // runs started by RunNow

	mu       sync.Mutex
	jobs     map[string]*jobState
	started  bool
	stopped  bool
	recorder RunRecorder
	node     string
}

// RecordRuns makes the scheduler write its runs to r as node's: every run that did something or
// failed, every run made by RunNow, and idle runs once a minute per job. Call it before Start.
func (s *Scheduler) RecordRuns(r RunRecorder, node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recorder, s.node = r, node
}

// Job returns the registered job of that name.
func (s *Scheduler) Job(name string) (Job, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.jobs[name]
	if !ok {
		return Job{}, false
	}
	return st.job, true
}

// Names returns the names of the registered jobs, sorted.
func (s *Scheduler) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.jobs))
	for n := range s.jobs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// NewScheduler returns a stopped scheduler that takes its locks from locker and logs to log (nil: the
// default logger).
func NewScheduler(locker Locker, log *slog.Logger) *Scheduler {
	if log == nil {
		log = slog.Default()
	}
	cl := cronLogger{log: log.With("component", "scheduler")}
	ctx, cancel := context.WithCancel(context.Background())
	return &Scheduler{
		cron: cron.New(cron.WithSeconds(), cron.WithLogger(cl),
			cron.WithChain(cron.Recover(cl), cron.SkipIfStillRunning(cl))),
		locker: locker,
		log:    log,
		ctx:    ctx,
		cancel: cancel,
		jobs:   map[string]*jobState{},
	}
}

// Add registers a job; names are unique and a bad spec is refused here, not at run time.
func (s *Scheduler) Add(j Job) error {
	if !jobName.MatchString(j.Name) {
		return fmt.Errorf("job name %q: want 1-64 letters, digits, '-' or '_'", j.Name)
	}
	if j.Run == nil {
		return fmt.Errorf("job %s: no run function", j.Name)
	}
	if j.LeaseTTL < 0 {
		return fmt.Errorf("job %s: negative lease ttl %s", j.Name, j.LeaseTTL)
	}
	if j.LeaseTTL == 0 {
		j.LeaseTTL = defaultLeaseTTL
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("scheduler stopped")
	}
	if _, dup := s.jobs[j.Name]; dup {
		return fmt.Errorf("job %s registered twice", j.Name)
	}
	st := &jobState{job: j, status: JobStatus{Name: j.Name, Spec: j.Spec}}
	id, err := s.cron.AddFunc(j.Spec, func() { s.scheduled(st) })
	if err != nil {
		return fmt.Errorf("job %s: schedule %q: %w", j.Name, j.Spec, err)
	}
	st.entry = id
	s.jobs[j.Name] = st
	return nil
}

// Start begins running jobs on their schedules; it returns at once.
func (s *Scheduler) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return
	}
	s.started = true
	s.cron.Start()
}

// Stop cancels the context of running jobs, stops scheduling and waits for running jobs to return or
// for ctx to end. A stopped scheduler stays stopped.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.cancel()
	cronDone := s.cron.Stop()
	done := make(chan struct{})
	go func() {
		<-cronDone.Done()
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("scheduler stop: jobs still running: %w", ctx.Err())
	}
}

// RunNow runs the named job at once in the caller's goroutine, under its lease, and returns its
// result: the CLI's `shopdesk archive <job>`. A Scope in ctx (WithScope) narrows the run when the job
// takes its fields and is refused otherwise. It fails with ErrLeaseBusy when the job is running here
// or elsewhere.
func (s *Scheduler) RunNow(ctx context.Context, name string) (JobResult, error) {
	s.mu.Lock()
	st, ok := s.jobs[name]
	if ok {
		if extra := ScopeFrom(ctx).Fields() &^ st.job.Takes; extra != 0 {
			s.mu.Unlock()
			return JobResult{}, fmt.Errorf("job %s does not take %s", name, extra)
		}
	}
	if ok && !s.stopped {
		s.wg.Add(1)
	}
	stopped := s.stopped
	s.mu.Unlock()
	if !ok {
		return JobResult{}, fmt.Errorf("no job named %q", name)
	}
	if stopped {
		return JobResult{}, errors.New("scheduler stopped")
	}
	defer s.wg.Done()
	// Stop cancels manual runs too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	res, err, ran := s.run(ctx, st, true)
	if !ran {
		return JobResult{}, ErrLeaseBusy
	}
	return res, err
}

// Hold keeps the named jobs from running, here (their run lock) and on every node sharing the
// Locker (their lease, for at most ttl), until release is called: for work that must not interleave
// with them, such as an erasure, which a flush or index batch that read a message before it was
// erased would write back. It waits for runs under way to end, until ctx is done (ErrLeaseBusy).
// Unknown names are refused. Jobs are taken in the order given: callers use one order.
func (s *Scheduler) Hold(ctx context.Context, ttl time.Duration, names ...string) (release func(), err error) {
	var held []func()
	release = func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i]()
		}
	}
	for _, name := range names {
		s.mu.Lock()
		st, ok := s.jobs[name]
		s.mu.Unlock()
		if !ok {
			release()
			return nil, fmt.Errorf("no job named %q", name)
		}
		for {
			if st.running.TryLock() {
				if free, ok := s.locker.Acquire(ctx, "job:"+name, ttl); ok {
					held = append(held, func() { free(); st.running.Unlock() })
					break
				}
				st.running.Unlock()
			}
			select {
			case <-ctx.Done():
				release()
				return nil, fmt.Errorf("job %s: %w", name, ErrLeaseBusy)
			case <-time.After(holdPoll):
			}
		}
	}
	return release, nil
}

// holdPoll is how often Hold tries again for a job that is running.
const holdPoll = 50 * time.Millisecond

// Status returns every job's status, by name.
func (s *Scheduler) Status() []JobStatus {
	s.mu.Lock()
	states := make([]*jobState, 0, len(s.jobs))
	for _, st := range s.jobs {
		states = append(states, st)
	}
	started := s.started && !s.stopped
	s.mu.Unlock()
	out := make([]JobStatus, 0, len(states))
	for _, st := range states {
		s.mu.Lock()
		js := st.status
		s.mu.Unlock()
		if started {
			js.Next = s.cron.Entry(st.entry).Next
		}
		out = append(out, js)
	}
	slices.SortFunc(out, func(a, b JobStatus) int {
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	return out
}

func (s *Scheduler) scheduled(st *jobState) {
	if _, _, ran := s.run(s.ctx, st, false); !ran {
		s.mu.Lock()
		st.status.Skipped++
		s.mu.Unlock()
	}
}

// run runs one job under its lease and records it; ran is false when the lease or the job was busy.
func (s *Scheduler) run(ctx context.Context, st *jobState, manual bool) (res JobResult, err error, ran bool) {
	if !st.running.TryLock() {
		return JobResult{}, nil, false
	}
	defer st.running.Unlock()
	if ctx.Err() != nil {
		return JobResult{}, ctx.Err(), true
	}
	requested := time.Now()
	release, ok := s.locker.Acquire(ctx, "job:"+st.job.Name, st.job.LeaseTTL)
	if !ok {
		return JobResult{}, nil, false
	}
	lease := &timedLease{deadline: requested.Add(st.job.LeaseTTL - st.job.LeaseTTL/10)}
	defer release()
	defer lease.release()

	s.mu.Lock()
	st.status.Running = true
	st.status.LastStart = time.Now()
	started := st.status.LastStart
	s.mu.Unlock()
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("job %s panicked: %v", st.job.Name, p)
			}
		}()
		res, err = st.job.Run(WithLease(ctx, lease))
	}()
	s.mu.Lock()
	st.status.Running = false
	st.status.LastEnd = time.Now()
	st.status.LastResult = res
	st.status.Runs++
	st.status.LastError = ""
	if err != nil {
		st.status.Failures++
		st.status.LastError = err.Error()
	}
	ended := st.status.LastEnd
	recorder, node := s.recorder, s.node
	record := recorder != nil && (manual || err != nil || res != (JobResult{}) || ended.Sub(st.recorded) >= idleRecordEvery)
	if record && res == (JobResult{}) && err == nil {
		st.recorded = ended
	}
	s.mu.Unlock()
	if record {
		rec := RunRecord{Job: st.job.Name, Node: node, StartedAt: started, EndedAt: ended, Processed: res.Processed,
			Moved: res.Moved, Deleted: res.Deleted, Errors: res.Errors}
		if err != nil {
			rec.Error = err.Error()
		}
		// A run cancelled by shutdown is still recorded, within a bound of its own.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if rerr := recorder.Record(rctx, rec); rerr != nil {
			s.log.Warn("job run not recorded", "job", st.job.Name, "err", rerr)
		}
		cancel()
	}
	attrs := []any{"job", st.job.Name, "processed", res.Processed, "moved", res.Moved, "deleted", res.Deleted,
		"errors", res.Errors, "seconds", time.Since(requested).Seconds()}
	if err != nil {
		s.log.Error("job failed", append(attrs, "err", err)...)
	} else {
		s.log.Debug("job done", attrs...)
	}
	return res, err, true
}

// cronLogger passes cron's own messages to slog.
type cronLogger struct{ log *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.log.Debug(msg, kv...) }

func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.log.Error(msg, append(kv, "err", err)...)
}
