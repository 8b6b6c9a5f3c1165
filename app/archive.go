package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
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
		Days: func(context.Context, int64) (int, error) { return days, nil }, CrashPoint: crashpoint.Hook})
	if err != nil {
		return err
	}
	a.archiver = archiver
	a.scheduler = archive.NewScheduler(archive.LockerFunc(a.lease.acquire), a.log)
	if err := a.scheduler.Add(archive.Job{Name: "archive", Spec: a.cfg.ArchiveSchedule, LeaseTTL: time.Hour, Run: archiver.Run}); err != nil {
		return fmt.Errorf("archive-schedule: %w", err)
	}
	return nil
}

// archiveUsage is the help of `shopdesk archive`.
const archiveUsage = `usage: shopdesk archive <job> [flags]

jobs:
  archive   move warm messages older than --archive-days (or up to --until) into cold segments
  flush     move the hot tier (Redis) into the warm store now
  status    each tier's size, lag and the last run of each job on this machine

flags: every flag of serve (to reach the same stores), plus
  --until RFC3339   archive: move the periods that end by this time instead of the shops' cutoffs
  --shop ID         archive: only this shop
  --json            status: print JSON
`

// archiveCmd runs one Store Scheduler job by hand and ends with one summary line:
// ARCHIVE_JOB job=<s> processed=<n> moved=<n> deleted=<n> errors=<n> seconds=<f>.
func archiveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, archiveUsage)
		return 2
	}
	job := args[0]
	var until string
	var shop int64
	var asJSON bool
	rest := args[1:]
	// The job's own flags are taken out before the serve flags are parsed.
	own := flag.NewFlagSet("archive "+job, flag.ContinueOnError)
	own.SetOutput(io.Discard)
	own.StringVar(&until, "until", "", "")
	own.Int64Var(&shop, "shop", 0, "")
	own.BoolVar(&asJSON, "json", false, "")
	var serveArgs []string
	for i := 0; i < len(rest); i++ {
		name := strings.TrimLeft(strings.SplitN(rest[i], "=", 2)[0], "-")
		if own.Lookup(name) == nil {
			serveArgs = append(serveArgs, rest[i])
			continue
		}
		pair := []string{rest[i]}
		if !strings.Contains(rest[i], "=") && name != "json" && i+1 < len(rest) {
			pair, i = append(pair, rest[i+1]), i+1
		}
		if err := own.Parse(pair); err != nil {
			fmt.Fprintf(stderr, "shopdesk archive %s: %v\n", job, err)
			return 2
		}
	}
	switch job {
	case "archive", "flush", "status":
	default:
		fmt.Fprintf(stderr, "shopdesk archive: unknown job %q\n\n%s", job, archiveUsage)
		return 2
	}
	var scope archive.Scope
	if until != "" {
		t, err := time.Parse(time.RFC3339, until)
		if err != nil {
			fmt.Fprintf(stderr, "shopdesk archive: --until %q is not an RFC 3339 time\n", until)
			return 2
		}
		scope.Until = t
	}
	scope.ShopID = shop
	cfg, err := ParseConfig("archive "+job, serveArgs, Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "shopdesk archive:", err)
		return 2
	}
	cfg.Demo = false
	a, err := New(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		fmt.Fprintln(stderr, "shopdesk archive:", err)
		return 1
	}
	defer a.closeBackends()
	if job == "status" {
		return a.printArchiveStatus(ctx, stdout, stderr, asJSON)
	}
	start := time.Now()
	var res archive.JobResult
	switch job {
	case "archive":
		res, err = a.archiver.Archive(archive.WithLease(ctx, ctxLease{}), scope)
	case "flush":
		res, err = a.flushAll(ctx)
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

// ctxLease holds as long as the command runs: a job run by hand owns its store.
type ctxLease struct{}

func (ctxLease) Held(ctx context.Context) bool { return ctx.Err() == nil }

// flushAll flushes the hot tier until it is empty.
func (a *App) flushAll(ctx context.Context) (archive.JobResult, error) {
	var res archive.JobResult
	if a.hotLog == nil {
		return res, nil // no hot tier: messages are warm when acknowledged
	}
	job := archive.FlushJob(a.hotLog, 5000)
	for {
		r, err := job(ctx)
		res.Processed += r.Processed
		res.Moved += r.Moved
		res.Errors += r.Errors
		if err != nil || r.Processed < 5000 {
			return res, err
		}
	}
}

// archiveStatus is what `shopdesk archive status` reports.
type archiveStatus struct {
	Mode       Mode                `json:"mode"`
	HotLag     int64               `json:"hot_lag_conversations"`
	WarmRows   int64               `json:"warm_messages"`
	Cold       archive.ColdStats   `json:"cold"`
	Jobs       []archive.JobStatus `json:"jobs"`
	ArchiveJob string              `json:"archive_schedule"`
}

func (a *App) printArchiveStatus(ctx context.Context, stdout, stderr io.Writer, asJSON bool) int {
	st := archiveStatus{Mode: a.mode, ArchiveJob: a.cfg.ArchiveSchedule, Jobs: a.scheduler.Status()}
	var errs []error
	if a.hotLog != nil {
		lag, err := a.hotLog.Lag(ctx)
		st.HotLag, errs = lag, append(errs, err)
	}
	errs = append(errs, a.db.WithContext(ctx).Table("messages").Count(&st.WarmRows).Error)
	cold, err := a.cold.Manifest().Stats(ctx)
	st.Cold, errs = cold, append(errs, err)
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(stderr, "shopdesk archive status:", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
		return 0
	}
	fmt.Fprintf(stdout, "mode %s\nhot:  %d conversations not yet flushed\nwarm: %d messages\ncold: %d messages in %d segments, %d bytes (%d segments pending deletion of warm rows)\narchive job: %s\n",
		st.Mode, st.HotLag, st.WarmRows, st.Cold.Messages, st.Cold.Segments, st.Cold.Bytes, st.Cold.Pending, st.ArchiveJob)
	return 0
}
