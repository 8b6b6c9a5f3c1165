package archive

import (
	"context"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm"
)

// DefaultKeepRuns is how many runs of each job the run log keeps.
const DefaultKeepRuns = 100

// maxErrorText bounds the error text kept with a run: a run that failed on thousands of shops
// must not write a row of megabytes.
const maxErrorText = 2000

// RunRecord is one finished run of a job, as the run log keeps it: which node ran it, when, what it
// did and how it failed.
type RunRecord struct {
	ID        int64     `json:"id" gorm:"primaryKey;autoIncrement"`
	Job       string    `json:"job"`
	Node      string    `json:"node"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	Processed int64     `json:"processed"`
	Moved     int64     `json:"moved"`
	Deleted   int64     `json:"deleted"`
	Errors    int64     `json:"errors"`
	Error     string    `json:"error,omitempty"`
}

// TableName is the run log's table.
func (RunRecord) TableName() string { return "job_runs" }

// Seconds is how long the run took.
func (r RunRecord) Seconds() float64 { return r.EndedAt.Sub(r.StartedAt).Seconds() }

// RunRecorder keeps finished runs; the Scheduler hands it each run it made.
type RunRecorder interface {
	Record(ctx context.Context, r RunRecord) error
}

// RunLog is the run log in the warm store (table job_runs): every node of a cluster writes its runs
// there, so `shopdesk archive status`, run from any machine, sees the last run of every job. It
// keeps about the last Keep runs of each job: older ones are pruned every few records.
type RunLog struct {
	db   *gorm.DB
	keep int

	mu      sync.Mutex
	records map[string]int // records per job since the last prune, in this process
}

// NewRunLog returns the run log in db keeping keep runs per job (DefaultKeepRuns when keep <= 0).
func NewRunLog(db *gorm.DB, keep int) *RunLog {
	if keep <= 0 {
		keep = DefaultKeepRuns
	}
	return &RunLog{db: db, keep: keep, records: map[string]int{}}
}

// Record stores a finished run and, every tenth record of a job, prunes the job's runs beyond Keep.
func (l *RunLog) Record(ctx context.Context, r RunRecord) error {
	r.ID = 0
	r.StartedAt, r.EndedAt = r.StartedAt.UTC(), r.EndedAt.UTC()
	if len(r.Error) > maxErrorText {
		r.Error = r.Error[:maxErrorText] + "…"
	}
	if err := l.db.WithContext(ctx).Create(&r).Error; err != nil {
		return fmt.Errorf("run log: record %s: %w", r.Job, err)
	}
	l.mu.Lock()
	n := l.records[r.Job]
	l.records[r.Job] = (n + 1) % 10
	l.mu.Unlock()
	if n != 0 {
		return nil
	}
	return l.prune(ctx, r.Job)
}

// prune deletes the job's runs older than its Keep newest. The bound is read first: MySQL refuses a
// DELETE whose subquery reads the table it deletes from.
func (l *RunLog) prune(ctx context.Context, job string) error {
	var ids []int64
	err := l.db.WithContext(ctx).Model(&RunRecord{}).Where("job = ?", job).Order("id DESC").
		Offset(l.keep-1).Limit(1).Pluck("id", &ids).Error
	if err != nil {
		return fmt.Errorf("run log: prune %s: %w", job, err)
	}
	if len(ids) == 0 {
		return nil
	}
	if err := l.db.WithContext(ctx).Where("job = ? AND id < ?", job, ids[0]).Delete(&RunRecord{}).Error; err != nil {
		return fmt.Errorf("run log: prune %s: %w", job, err)
	}
	return nil
}

// Last returns the newest run of every job, by job name.
func (l *RunLog) Last(ctx context.Context) ([]RunRecord, error) {
	var out []RunRecord
	newest := l.db.Model(&RunRecord{}).Select("MAX(id)").Group("job")
	if err := l.db.WithContext(ctx).Where("id IN (?)", newest).Order("job").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("run log: last runs: %w", err)
	}
	return out, nil
}

// Recent returns the job's newest runs, newest first, at most limit of them.
func (l *RunLog) Recent(ctx context.Context, job string, limit int) ([]RunRecord, error) {
	var out []RunRecord
	if err := l.db.WithContext(ctx).Where("job = ?", job).Order("id DESC").Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("run log: runs of %s: %w", job, err)
	}
	return out, nil
}

type scopeKey struct{}

// WithScope returns a context narrowing the job run it is passed to: `shopdesk archive <job> --shop
// --until` runs the job through the Scheduler with it. Jobs that take a scope say so in Job.Scopes.
func WithScope(ctx context.Context, s Scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, s)
}

// ScopeFrom returns the scope of the run ctx belongs to: the zero Scope (everything, by each shop's
// own cutoff) when none was given.
func ScopeFrom(ctx context.Context) Scope {
	s, _ := ctx.Value(scopeKey{}).(Scope)
	return s
}

// Progress is how far a run has got: its counts so far and, when the job knows it, how many items it
// expects to process in all (0: unknown).
type Progress struct {
	Result JobResult
	Total  int64
}

type progressKey struct{}

// WithProgress returns a context whose job run reports its progress to f (a progress bar).
func WithProgress(ctx context.Context, f func(Progress)) context.Context {
	return context.WithValue(ctx, progressKey{}, f)
}

type totalKey struct{}

// Watched reports whether someone watches the run's progress: a job measures its total only then.
func Watched(ctx context.Context) bool {
	_, ok := ctx.Value(progressKey{}).(func(Progress))
	return ok
}

// WithTotal returns a context whose progress reports carry total when they have none of their own.
func WithTotal(ctx context.Context, total int64) context.Context {
	return context.WithValue(ctx, totalKey{}, total)
}

// ReportProgress passes a run's progress to whoever watches it; without a watcher it does nothing.
func ReportProgress(ctx context.Context, p Progress) {
	f, ok := ctx.Value(progressKey{}).(func(Progress))
	if !ok {
		return
	}
	if t, ok := ctx.Value(totalKey{}).(int64); ok && p.Total == 0 {
		p.Total = t
	}
	f(p)
}
