package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shopdesk/shopdesk/archive"
	"github.com/shopdesk/shopdesk/session/crashpoint"
)

// wireBlobs picks the object store of uploads and cold history: S3 when an endpoint is configured,
// otherwise a local directory.
func (a *App) wireBlobs(ctx context.Context) error {
	if a.cfg.S3Endpoint != "" {
		s3, err := archive.NewS3(ctx, archive.S3Config{Endpoint: a.cfg.S3Endpoint, Bucket: a.cfg.S3Bucket,
			AccessKey: a.cfg.S3AccessKey, SecretKey: a.cfg.S3SecretKey, Region: a.cfg.S3Region})
		if err != nil {
			return err
		}
		a.blobs = s3
		return nil
	}
	dir := a.cfg.BlobDir
	if dir == "" {
		dir = filepath.Join(a.cfg.Data, "blobs")
	}
	var err error
	a.blobs, err = archive.NewLocalDir(dir)
	return err
}

// wireArchive puts the cold tier behind history reads and registers the Store Scheduler's jobs.
func (a *App) wireArchive() error {
	a.cold = archive.NewCold(a.db, a.blobs, int64(a.cfg.ColdCacheMB)<<20)
	a.sessions.Log = archive.NewHistory(a.sessions.Log, a.cold)
	days := a.cfg.ArchiveDays
	archiver, err := archive.NewArchiver(a.db, a.blobs, archive.ArchiverConfig{
		Days: func(context.Context, int64) (int, error) { return days, nil }, Indexed: a.indexedBefore, CrashPoint: crashpoint.Hook})
	if err != nil {
		return err
	}
	a.archiver = archiver
	a.scheduler = archive.NewScheduler(archive.LockerFunc(a.lease.acquire), a.log)
	return a.wireJobs()
}

// archiveUsage is the help of `shopdesk archive`.
const archiveUsage = `usage: shopdesk archive <job> [flags]
       shopdesk archive status [--json] [flags]

jobs (any job the Store Scheduler runs, by name):
  flush      move the hot tier (Redis) into the warm store now
  trim       drop warm messages outside --hot-keep-messages/--hot-keep-hours from Redis
  archive    move warm messages older than --archive-days (or up to --until) into cold segments
  index      bring new warm messages into the search index (stop the node of an embedded index first)
  retention  delete what is past each shop's retention, from every tier
  status     each tier's size and lag, and the last run of each job on any node

flags: every flag of serve (to reach the same stores), plus
  --until RFC3339   jobs that take it (archive, retention): act up to this time instead of the shops' cutoffs
  --shop ID         jobs that take it (archive, index, retention): only this shop
  --json            status: print JSON

A job run by hand takes the job's lease like a scheduled run, so it never overlaps one on another
node; it shows a progress bar when stderr is a terminal and ends with one line
ARCHIVE_JOB job=<s> processed=<n> moved=<n> deleted=<n> errors=<n> seconds=<f>; the exit code is 1
when the run failed or counted errors, 2 for a usage error.
`

// archiveCmd runs one Store Scheduler job by hand, or reports the scheduler's status.
func archiveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, archiveUsage)
		return 2
	}
	job := args[0]
	fs := flag.NewFlagSet("archive "+job, flag.ContinueOnError)
	fs.SetOutput(stderr)
	until := fs.String("until", "", "act up to this RFC 3339 time")
	shop := fs.Int64("shop", 0, "only this shop")
	asJSON := fs.Bool("json", false, "status: print JSON")
	cfg, err := parseConfig(fs, args[1:], Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "shopdesk archive %s: %v\n", job, err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shopdesk archive %s: unexpected argument %q\n", job, fs.Arg(0))
		return 2
	}
	var scope archive.Scope
	if *until != "" {
		if scope.Until, err = time.Parse(time.RFC3339, *until); err != nil {
			fmt.Fprintf(stderr, "shopdesk archive %s: --until %q is not an RFC 3339 time\n", job, *until)
			return 2
		}
	}
	if scope.ShopID = *shop; scope.ShopID < 0 {
		fmt.Fprintf(stderr, "shopdesk archive %s: --shop %d: want a positive id\n", job, scope.ShopID)
		return 2
	}
	if job == "status" && (scope != archive.Scope{}) {
		fmt.Fprintln(stderr, "shopdesk archive status: --until and --shop are for jobs")
		return 2
	}
	if job != "status" && *asJSON {
		fmt.Fprintf(stderr, "shopdesk archive %s: --json is for status\n", job)
		return 2
	}
	cfg.Demo = false
	a, err := New(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		fmt.Fprintln(stderr, "shopdesk archive:", err)
		return 1
	}
	defer a.closeBackends()
	// The run log tells runs by hand from a node's scheduled ones.
	host, _ := os.Hostname()
	a.scheduler.RecordRuns(archive.NewRunLog(a.db, archive.DefaultKeepRuns), truncate("cli@"+host, 64))
	if job == "status" {
		return a.printJobsReport(ctx, stdout, stderr, *asJSON)
	}
	j, ok := a.scheduler.Job(job)
	if !ok {
		fmt.Fprintf(stderr, "shopdesk archive: unknown job %q (jobs: %s)\n\n%s", job, strings.Join(a.scheduler.Names(), ", "), archiveUsage)
		return 2
	}
	if extra := scope.Fields() &^ j.Takes; extra != 0 {
		fmt.Fprintf(stderr, "shopdesk archive %s: the %s job does not take %s\n", job, job, extra)
		return 2
	}
	// Retention with an embedded index leaves the index part pending for the serving node instead.
	if job == "index" || (job == "retention" && a.cfg.ESURL != "") {
		if err := a.openSearchBounded(ctx); err != nil {
			fmt.Fprintf(stderr, "shopdesk archive %s: %v\n", job, err)
			return 1
		}
		defer a.closeSearch()
	}
	return a.runJob(ctx, job, scope, stdout, stderr)
}

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// openSearchBounded opens the search index, giving up after a while: an embedded index is locked by
// the node serving on the same data directory, and opening it would wait for that node to stop.
func (a *App) openSearchBounded(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- a.openSearch(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("the search index stays locked: a node serving on this data directory holds it; let that node's index job run, or stop it first")
	}
}

// runJob runs the job through the scheduler (under its lease, recorded in the run log) and prints
// the summary line.
func (a *App) runJob(ctx context.Context, job string, scope archive.Scope, stdout, stderr io.Writer) int {
	start := time.Now()
	ctx = archive.WithScope(ctx, scope)
	var bar *progressBar
	if isTerminal(stderr) {
		bar = newProgressBar(stderr, job)
		ctx = archive.WithProgress(ctx, bar.update)
	}
	res, err := a.scheduler.RunNow(ctx, job)
	if bar != nil { // cleared before the summary, which may go to the same terminal
		bar.finish()
	}
	fmt.Fprintf(stdout, "ARCHIVE_JOB job=%s processed=%d moved=%d deleted=%d errors=%d seconds=%.3f\n",
		job, res.Processed, res.Moved, res.Deleted, res.Errors, time.Since(start).Seconds())
	if err != nil {
		fmt.Fprintf(stderr, "shopdesk archive %s: %v\n", job, err)
		return 1
	}
	if res.Errors > 0 {
		return 1
	}
	return 0
}

// printJobsReport prints the Store Scheduler's report; a part that could not be measured makes the
// exit code 1.
func (a *App) printJobsReport(ctx context.Context, stdout, stderr io.Writer, asJSON bool) int {
	rep := a.jobsReport(ctx, false)
	code := 0
	if len(rep.Errors) > 0 {
		fmt.Fprintln(stderr, "shopdesk archive status:", strings.Join(rep.Errors, "; "))
		code = 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
		return code
	}
	fmt.Fprintf(stdout, "mode %s\n", rep.Mode)
	t := rep.Tiers
	if h := t.Hot; h != nil {
		fmt.Fprintf(stdout, "hot:   %d messages not yet flushed in %d conversations (oldest %.1fs ago); %d conversations to trim; Redis uses %d bytes\n",
			h.UnflushedMessages, h.DirtyConversations, h.OldestUnflushedSeconds, h.TrimConversations, h.UsedMemoryBytes)
	} else {
		fmt.Fprintln(stdout, "hot:   none (messages are warm when acknowledged)")
	}
	fmt.Fprintf(stdout, "warm:  %d messages\n", t.WarmMessages)
	if c := t.Cold; c != nil {
		fmt.Fprintf(stdout, "cold:  %d messages in %d segments, %d bytes (%d segments pending deletion of warm rows)\n",
			c.Messages, c.Segments, c.Bytes, c.Pending)
	}
	if i := t.Index; i != nil {
		fmt.Fprintf(stdout, "index: %d messages not yet indexed in %d shops (oldest %.1fs ago)\n", i.PendingMessages, i.ShopsBehind, i.OldestPendingSeconds)
	}
	fmt.Fprintln(stdout, "jobs:")
	for _, j := range rep.Jobs {
		r := j.LastRun
		if r == nil {
			fmt.Fprintf(stdout, "  %-10s %-16s never run\n", j.Name, j.Spec)
			continue
		}
		fmt.Fprintf(stdout, "  %-10s %-16s last run %s on %s, %.3fs: processed=%d moved=%d deleted=%d errors=%d",
			j.Name, j.Spec, r.StartedAt.Format(time.RFC3339), r.Node, j.Seconds, r.Processed, r.Moved, r.Deleted, r.Errors)
		if r.Error != "" {
			fmt.Fprintf(stdout, " error: %s", r.Error)
		}
		fmt.Fprintln(stdout)
	}
	return code
}
