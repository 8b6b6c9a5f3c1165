package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/shopdesk/shopdesk/archive"
	"github.com/shopdesk/shopdesk/session"
)

const (
	// trimPerRun bounds the conversations one trim run visits; the next run goes on from there.
	trimPerRun = 10_000
	// hotStatsSample bounds the dirty conversations looked at to measure the flush lag in a report.
	hotStatsSample = 1000
	// lagSample is the same after each flush run, for the metrics: a second's flush must stay cheap.
	lagSample = 100
)

// wireJobs registers the Store Scheduler's jobs (flush, trim, archive, index) and its run log. Every
// job is registered here, before the node starts, so that `shopdesk archive <job>` finds each by
// name; the index job needs the search index, which only a serving node (or that command) opens.
func (a *App) wireJobs() error {
	a.scheduler.RecordRuns(archive.NewRunLog(a.db, archive.DefaultKeepRuns), a.nodeID)
	jobs := []struct {
		flag string
		job  archive.Job
	}{
		// A flush deletes nothing; its short lease only keeps runs from piling up behind a slow one.
		{"flush-schedule", archive.Job{Name: "flush", Spec: a.cfg.FlushSchedule, LeaseTTL: 5 * time.Second, Run: a.flushJob}},
		{"trim-schedule", archive.Job{Name: "trim", Spec: a.cfg.TrimSchedule, LeaseTTL: time.Minute, Run: a.trimJob}},
		{"archive-schedule", archive.Job{Name: "archive", Spec: a.cfg.ArchiveSchedule, LeaseTTL: time.Hour,
			Takes: archive.ScopeShop | archive.ScopeUntil, Run: a.archiver.Run}},
		{"index-schedule", archive.Job{Name: "index", Spec: a.cfg.IndexSchedule, LeaseTTL: 5 * time.Minute,
			Takes: archive.ScopeShop, Run: a.indexJob}},
	}
	for _, j := range jobs {
		if err := a.scheduler.Add(j.job); err != nil {
			return fmt.Errorf("%s: %w", j.flag, err)
		}
	}
	return nil
}

// flushJob moves the hot tier to the warm store (session.RedisLog.Flush, in batches, until drained)
// and updates the flush metrics. Without a hot tier messages are warm when acknowledged: nothing to do.
func (a *App) flushJob(ctx context.Context) (archive.JobResult, error) {
	if a.hotLog == nil {
		return archive.JobResult{}, nil
	}
	if archive.Watched(ctx) {
		if st, err := a.hotLog.HotStats(ctx, hotStatsSample); err == nil {
			ctx = archive.WithTotal(ctx, st.UnflushedMessages)
		}
	}
	res, err := archive.FlushJob(a.hotLog, archive.DefaultFlushBatch)(ctx)
	a.metrics.flushed.Add(float64(res.Processed))
	a.metrics.flushConflicts.Set(float64(a.hotLog.Conflicts()))
	if err != nil {
		a.metrics.flushErrors.Inc()
		return res, err
	}
	if st, err := a.hotLog.HotStats(ctx, lagSample); err == nil {
		a.metrics.flushLag.Set(float64(st.DirtyConversations))
		a.metrics.flushLagMessages.Set(float64(st.UnflushedMessages))
		a.metrics.flushLagSeconds.Set(ageSeconds(st.OldestUnflushed))
	}
	return res, nil
}

// trimJob drops from the hot tier the messages that are warm and outside the kept window
// (--hot-keep-messages, --hot-keep-hours). Processed counts conversations visited, Deleted the
// messages dropped from Redis. Without a hot tier there is nothing to trim.
func (a *App) trimJob(ctx context.Context) (archive.JobResult, error) {
	var res archive.JobResult
	if a.hotLog == nil {
		return res, nil
	}
	lease := archive.LeaseFrom(ctx)
	st, err := a.hotLog.Trim(ctx, session.TrimPolicy{KeepMessages: a.cfg.HotKeepMessages,
		KeepAge: time.Duration(a.cfg.HotKeepHours) * time.Hour}, trimPerRun, lease.Held)
	res.Processed, res.Deleted = int64(st.Conversations), int64(st.Messages)
	if err == nil && st.Stopped {
		err = archive.ErrLeaseLost
	}
	return res, err
}

func ageSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return max(0, time.Since(t).Seconds())
}

// jobsReport is what `shopdesk archive status` and GET /api/operator/jobs report: each tier's size
// and lag, and each job's last run anywhere in the cluster.
type jobsReport struct {
	Mode  Mode        `json:"mode"`
	Node  string      `json:"node"`
	Tiers tiersReport `json:"tiers"`
	Jobs  []jobReport `json:"jobs"`
	// Errors names the parts that could not be measured (a backend down); the others are reported.
	Errors []string `json:"errors,omitempty"`
}

// tiersReport is the size and lag of each tier.
type tiersReport struct {
	// Hot is absent without a hot tier (embedded and MySQL-only modes).
	Hot *hotReport `json:"hot,omitempty"`
	// WarmMessages counts the warm store's message rows (an exact count: a scan of the table).
	WarmMessages int64              `json:"warm_messages"`
	Cold         *archive.ColdStats `json:"cold,omitempty"`
	Index        *indexLag          `json:"index,omitempty"`
}

type hotReport struct {
	session.HotStats
	OldestUnflushedSeconds float64 `json:"oldest_unflushed_seconds"`
}

// indexLag is how far the search index is behind the warm store.
type indexLag struct {
	// PendingMessages counts warm messages after the shops' index cursors.
	PendingMessages int64 `json:"pending_messages"`
	// ShopsBehind counts shops with pending messages.
	ShopsBehind int `json:"shops_behind"`
	// OldestPending is the server time of the oldest message not yet indexed.
	OldestPending        time.Time `json:"oldest_pending,omitzero"`
	OldestPendingSeconds float64   `json:"oldest_pending_seconds"`
}

// jobReport is one job: its schedule, its last run on any node, and this node's own view when it
// serves.
type jobReport struct {
	Name    string             `json:"name"`
	Spec    string             `json:"spec"`
	LastRun *archive.RunRecord `json:"last_run,omitempty"`
	// Seconds is how long the last run took.
	Seconds float64 `json:"seconds,omitempty"`
	// ThisNode is the scheduler's state on the node that answers: running, next run, counts.
	ThisNode *archive.JobStatus `json:"this_node,omitempty"`
}

// jobsReport measures every tier and reads the run log. A part whose backend fails is left out and
// named in Errors, so that the report still says what it can while, say, MySQL is down.
func (a *App) jobsReport(ctx context.Context, serving bool) jobsReport {
	rep := jobsReport{Mode: a.mode, Node: a.nodeID}
	fail := func(what string, err error) { rep.Errors = append(rep.Errors, what+": "+err.Error()) }
	if a.hotLog != nil {
		if st, err := a.hotLog.HotStats(ctx, hotStatsSample); err != nil {
			fail("hot", err)
		} else {
			rep.Tiers.Hot = &hotReport{HotStats: st, OldestUnflushedSeconds: ageSeconds(st.OldestUnflushed)}
		}
	}
	if err := a.db.WithContext(ctx).Table("messages").Count(&rep.Tiers.WarmMessages).Error; err != nil {
		fail("warm", err)
	}
	if cold, err := a.cold.Manifest().Stats(ctx); err != nil {
		fail("cold", err)
	} else {
		rep.Tiers.Cold = &cold
	}
	if lag, err := a.indexLag(ctx); err != nil {
		fail("index", err)
	} else {
		rep.Tiers.Index = &lag
	}
	last, err := archive.NewRunLog(a.db, 0).Last(ctx)
	if err != nil {
		fail("run log", err)
	}
	byName := map[string]archive.RunRecord{}
	for _, r := range last {
		byName[r.Job] = r
	}
	var here map[string]archive.JobStatus
	if serving {
		here = map[string]archive.JobStatus{}
		for _, st := range a.scheduler.Status() {
			here[st.Name] = st
		}
	}
	for _, name := range a.scheduler.Names() {
		j, _ := a.scheduler.Job(name)
		jr := jobReport{Name: name, Spec: j.Spec}
		if r, ok := byName[name]; ok {
			jr.LastRun, jr.Seconds = &r, r.Seconds()
			delete(byName, name)
		}
		if st, ok := here[name]; ok {
			jr.ThisNode = &st
		}
		rep.Jobs = append(rep.Jobs, jr)
	}
	// Runs of jobs this binary does not register (another version's) are still shown.
	for _, r := range last {
		if _, ok := byName[r.Job]; ok {
			jr := jobReport{Name: r.Job, LastRun: &r, Seconds: r.Seconds()}
			rep.Jobs = append(rep.Jobs, jr)
		}
	}
	return rep
}

// indexLag counts, shop by shop, the warm messages after the shop's index cursor: one range scan of
// the (shop_id, created_at) index per shop.
func (a *App) indexLag(ctx context.Context) (indexLag, error) {
	var lag indexLag
	shops, err := a.agents.Store.Shops(ctx)
	if err != nil {
		return lag, err
	}
	var cursors []searchCursor
	if err := a.db.WithContext(ctx).Find(&cursors).Error; err != nil {
		return lag, err
	}
	byShop := map[int64]searchCursor{}
	for _, c := range cursors {
		byShop[c.ShopID] = c
	}
	warm := session.NewSQLLog(a.db)
	for _, sh := range shops {
		cur := byShop[sh.ID]
		n, err := warm.CountMessagesAfter(ctx, sh.ID, cur.at())
		if err != nil {
			return lag, err
		}
		if n == 0 {
			continue
		}
		lag.PendingMessages += n
		lag.ShopsBehind++
		first, err := warm.MessagesAfter(ctx, sh.ID, cur.at(), time.Time{}, 1)
		if err != nil {
			return lag, err
		}
		if len(first) == 1 && (lag.OldestPending.IsZero() || first[0].CreatedAt.Before(lag.OldestPending)) {
			lag.OldestPending = first[0].CreatedAt
		}
	}
	lag.OldestPendingSeconds = ageSeconds(lag.OldestPending)
	return lag, nil
}

// getJobs answers GET /api/operator/jobs: the Store Scheduler's report. It is the platform
// operator's: tier sizes and job runs span every shop.
func (a *App) getJobs(c *gin.Context) {
	c.JSON(http.StatusOK, a.jobsReport(c.Request.Context(), a.listener != nil))
}

// errNoSearch is the index job's error on a node that has not opened the search index.
var errNoSearch = errors.New("the search index is not open on this node")

// indexShops returns the shops the index job visits: every shop, or the one of the run's scope.
func (a *App) indexShops(ctx context.Context) ([]int64, error) {
	if id := archive.ScopeFrom(ctx).ShopID; id != 0 {
		if _, err := a.agents.Store.Shop(ctx, id); err != nil {
			return nil, err
		}
		return []int64{id}, nil
	}
	shops, err := a.agents.Store.Shops(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(shops))
	for i, sh := range shops {
		ids[i] = sh.ID
	}
	return ids, nil
}
