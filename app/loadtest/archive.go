package loadtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/klauspost/compress/zstd"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"

	"github.com/shopdesk/shopdesk/app"
	"github.com/shopdesk/shopdesk/archive"
	"github.com/shopdesk/shopdesk/archive/search"
	"github.com/shopdesk/shopdesk/migrations"
	"github.com/shopdesk/shopdesk/session"
)

const (
	// pageSize is the history page the read figures time, the size the workspace asks for.
	pageSize = 50
	// prefillWorkers append concurrently, so the hot log's script pipe sends them in pipelines as it
	// does for the devices of a busy node.
	prefillWorkers = 64
)

// archiveOptions are the flags of `shopdesk bench --scenario archive`.
type archiveOptions struct {
	messages        int
	perConversation int
	shops           int
	pages           int
	blobs           []string
	mysqlDSN        string
	redisAddr       string
	redisPassword   string
	seed            uint64
	cpuProfile      string
	partMessages    int
}

func parseArchiveOptions(args []string, stderr io.Writer) (archiveOptions, error) {
	var o archiveOptions
	var scenario, blobs string
	fs := flag.NewFlagSet("bench --scenario archive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&scenario, "scenario", "archive", "archive: pre-fill a hot backlog and time the Store Scheduler's jobs and history reads (ARCHIVE line)")
	fs.IntVar(&o.messages, "messages", 1_000_000, "messages of the backlog")
	fs.IntVar(&o.perConversation, "per-conversation", 100, "messages per conversation (at least the page of 50)")
	fs.IntVar(&o.shops, "shops", 20, "shops the conversations are spread over")
	fs.IntVar(&o.pages, "pages", 500, "history pages of 50 timed for each page figure")
	fs.StringVar(&blobs, "blobs", "local,s3", "cold stores to run against, in order, one ARCHIVE line each: local (a temporary directory), s3 (gofakes3 in this process over HTTP)")
	fs.StringVar(&o.mysqlDSN, "mysql-dsn", app.Getenv(app.EnvName("mysql-dsn")), "MySQL/MariaDB server DSN, as for serve; the bench creates a database of its own there and drops it afterwards")
	fs.StringVar(&o.redisAddr, "redis-addr", app.Getenv(app.EnvName("redis-addr")), "Redis host:port, as for serve; the bench writes under a key prefix of its own and deletes it afterwards")
	fs.StringVar(&o.redisPassword, "redis-password", app.Getenv(app.EnvName("redis-password")), "Redis password")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the generated messages and of the pages read")
	fs.IntVar(&o.partMessages, "part-messages", 0, fmt.Sprintf("messages per cold segment part (0: the archive job's default, %d)", archive.DefaultPartMessages))
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, b := range strings.Split(blobs, ",") {
		switch b = strings.TrimSpace(b); b {
		case "local", "s3":
			o.blobs = append(o.blobs, b)
		default:
			return o, fmt.Errorf("--blobs: unknown cold store %q (want local, s3 or both)", b)
		}
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.mysqlDSN == "" || o.redisAddr == "":
		return o, errors.New("the archive scenario measures the flush Redis → MySQL: give --mysql-dsn and --redis-addr (or SHOPDESK_MYSQL_DSN and SHOPDESK_REDIS_ADDR)")
	case o.perConversation < pageSize:
		return o, fmt.Errorf("--per-conversation must be at least %d, the page size", pageSize)
	case o.messages < o.perConversation:
		return o, errors.New("--messages must be at least --per-conversation")
	case o.shops < 1 || o.pages < 1:
		return o, errors.New("--shops and --pages must be at least 1")
	case o.partMessages < 0:
		return o, errors.New("--part-messages must not be negative")
	}
	cfg, err := mysql.ParseDSN(o.mysqlDSN)
	if err != nil {
		return o, fmt.Errorf("--mysql-dsn: %w", err)
	}
	if cfg.Net != "unix" {
		if err := checkLoopback("--mysql-dsn", cfg.Addr); err != nil {
			return o, err
		}
	}
	return o, checkLoopback("--redis-addr", o.redisAddr)
}

// checkLoopback refuses a host:port that is not on this machine, the package's rule; the dialers
// check again what a name resolves to.
func checkLoopback(flagName, hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("%s %q: want host:port", flagName, hostport)
	}
	if ip := net.ParseIP(host); !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s %q: refused: %w", flagName, hostport, errNotLoopback)
	}
	return nil
}

// loopbackNet is the go-sql-driver network name of a TCP dial through the loopback-only dialer.
const loopbackNet = "shopdesk-bench-loopback"

var registerLoopbackNet sync.Once

// archiveMain runs `shopdesk bench --scenario archive` once per cold store in --blobs, each on a
// fresh database and key prefix, and prints one ARCHIVE line each: 0 when every message went hot →
// warm → cold exactly once and every page read back right, 1 otherwise, 2 for bad flags.
func archiveMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseArchiveOptions(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "shopdesk bench:", err)
		}
		return 2
	}
	log := &logger{w: stderr}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "shopdesk bench: --cpuprofile:", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	for _, blobs := range o.blobs {
		log.printf("cold store %s: %d messages, %d per conversation, %d shops", blobs, o.messages, o.perConversation, o.shops)
		res, err := benchArchive(ctx, o, blobs, log)
		if err != nil {
			fmt.Fprintf(stderr, "shopdesk bench: cold store %s: %v\n", blobs, err)
			return 1
		}
		log.printf("cold store %s: %s", blobs, res.detail())
		fmt.Fprintln(stdout, res)
	}
	return 0
}

// archiveResult is what one run of the archive scenario measured.
type archiveResult struct {
	messages                                int
	flush, archive, delete                  time.Duration
	deleted                                 int64
	segments                                int
	compressed, decoded, maxSegment         int64
	warmPage, coldPage, coldCachedPage      []time.Duration
	warmPageP50, coldPageP50, coldCachedP50 float64
	warmPageP99, coldPageP99, coldCachedP99 float64
	prefill                                 time.Duration
}

// String is the scenario's summary line.
func (r archiveResult) String() string {
	return fmt.Sprintf("ARCHIVE flush_per_sec=%.0f archive_per_sec=%.0f delete_per_sec=%.0f compression_ratio=%.2f warm_page_p99_ms=%.2f cold_page_p99_ms=%.2f cold_page_cached_p99_ms=%.3f",
		perSec(int64(r.messages), r.flush), perSec(int64(r.messages), r.archive), perSec(r.deleted, r.delete),
		float64(r.decoded)/float64(max(r.compressed, 1)), r.warmPageP99, r.coldPageP99, r.coldCachedP99)
}

// detail is what the summary line leaves out, for stderr.
func (r archiveResult) detail() string {
	return fmt.Sprintf("pre-fill %s; flush %s; archive %s + delete %s; %d segments, %.1f MiB compressed, %.1f MiB decoded, largest %.2f MiB compressed; page p50 warm %.2f ms, cold %.2f ms, cached %.3f ms",
		r.prefill.Round(time.Millisecond), r.flush.Round(time.Millisecond), r.archive.Round(time.Millisecond), r.delete.Round(time.Millisecond),
		r.segments, mib(r.compressed), mib(r.decoded), mib(r.maxSegment), r.warmPageP50, r.coldPageP50, r.coldCachedP50)
}

func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// archiveEnv is one run's stores: a database and a Redis key prefix of its own and a cold store.
type archiveEnv struct {
	name  string // of the database, and the Redis key prefix with a colon
	db    *gorm.DB
	rdb   *redis.Client
	hot   *session.RedisLog
	warm  *session.SQLLog
	blobs archive.Blobs
	close []func()
}

func (e *archiveEnv) cleanup() {
	for i := len(e.close) - 1; i >= 0; i-- {
		e.close[i]()
	}
}

// openArchiveEnv creates the run's database, key prefix and cold store; cleanup removes all three.
func openArchiveEnv(ctx context.Context, o archiveOptions, blobs string) (*archiveEnv, error) {
	e := &archiveEnv{}
	cfg, err := mysql.ParseDSN(o.mysqlDSN)
	if err != nil {
		return nil, err
	}
	if cfg.Net == "tcp" {
		registerLoopbackNet.Do(func() {
			mysql.RegisterDialContext(loopbackNet, func(ctx context.Context, addr string) (net.Conn, error) {
				return dialLoopback(ctx, "tcp", addr)
			})
		})
		cfg.Net = loopbackNet
	}
	name := "shopdesk_bench_" + randomHex(6)
	e.name = name
	cfg.DBName = ""
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	e.close = append(e.close, func() { admin.Close() })
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		e.cleanup()
		return nil, fmt.Errorf("create the bench's database: %w", err)
	}
	e.close = append(e.close, func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS " + name) })
	cfg.DBName = name
	if e.db, err = migrations.OpenMySQL(ctx, cfg.FormatDSN()); err != nil {
		e.cleanup()
		return nil, err
	}
	e.close = append(e.close, func() {
		if s, err := e.db.DB(); err == nil {
			s.Close()
		}
	})
	e.rdb = redis.NewClient(&redis.Options{Addr: o.redisAddr, Password: o.redisPassword, PoolSize: prefillWorkers + 8, Dialer: dialLoopback})
	prefix := name + ":"
	e.close = append(e.close, func() {
		deletePrefix(context.Background(), e.rdb, prefix)
		e.rdb.Close()
	})
	if err := e.rdb.Ping(ctx).Err(); err != nil {
		e.cleanup()
		return nil, fmt.Errorf("redis at %s: %w", o.redisAddr, err)
	}
	e.warm = session.NewSQLLog(e.db)
	e.hot = session.NewRedisLog(e.rdb, prefix, e.warm)
	switch blobs {
	case "local":
		dir, err := os.MkdirTemp("", "shopdesk-bench-cold-")
		if err != nil {
			e.cleanup()
			return nil, err
		}
		e.close = append(e.close, func() { _ = os.RemoveAll(dir) })
		e.blobs, err = archive.NewLocalDir(dir)
		if err != nil {
			e.cleanup()
			return nil, err
		}
	case "s3":
		srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
		e.close = append(e.close, srv.Close)
		e.blobs, err = archive.NewS3(ctx, archive.S3Config{Endpoint: srv.URL, Bucket: "shopdesk-bench", AccessKey: "bench", SecretKey: "benchsecret", Region: "us-east-1"})
		if err != nil {
			e.cleanup()
			return nil, err
		}
	}
	return e, nil
}

// deletePrefix deletes the bench's Redis keys.
func deletePrefix(ctx context.Context, rdb *redis.Client, prefix string) {
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		if keys = append(keys, iter.Val()); len(keys) == 500 {
			rdb.Del(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		rdb.Del(ctx, keys...)
	}
}

// benchArchive runs the scenario against one cold store: pre-fill the hot tier through the append
// path, flush it to the warm store, read warm pages, archive everything into cold segments, read cold
// pages without and with the segment cache, and check every count on the way.
func benchArchive(ctx context.Context, o archiveOptions, blobs string, log *logger) (archiveResult, error) {
	res := archiveResult{messages: o.messages}
	e, err := openArchiveEnv(ctx, o, blobs)
	if err != nil {
		return res, err
	}
	defer e.cleanup()
	log.printf("database %s, Redis key prefix %s (both removed afterwards)", e.name, e.name+":")
	// The messages are the search corpus's (zh/en customer-service text with order numbers, SKUs
	// and phone numbers), so the compression ratio is that of such text, not of repeated filler.
	corpus := search.NewCorpus(search.CorpusConfig{Docs: o.messages, Shops: o.shops, MessagesPerConversation: o.perConversation, Seed: o.seed})
	convs := (o.messages + o.perConversation - 1) / o.perConversation

	if err := createConversations(ctx, e.db, corpus, convs, o.perConversation); err != nil {
		return res, err
	}
	began := time.Now()
	if err := prefill(ctx, e.hot, corpus, convs, o.perConversation, log); err != nil {
		return res, err
	}
	res.prefill = time.Since(began)
	log.printf("pre-filled %d messages into Redis in %s (%.0f/s)", o.messages, res.prefill.Round(time.Millisecond), perSec(int64(o.messages), res.prefill))

	if res.flush, err = flushAll(ctx, e.hot, o.messages, log); err != nil {
		return res, err
	}
	if n, err := countRows(ctx, e.db, "messages"); err != nil || n != int64(o.messages) {
		return res, fmt.Errorf("warm store holds %d messages after the flush, want %d (%v)", n, o.messages, err)
	}

	rng := rand.New(rand.NewPCG(o.seed, 0xa4c))
	// Warm pages are read as the history API reads a conversation whose hot copy is trimmed: from the
	// warm store, under the cold tier's merge (which is not asked while the warm page is whole).
	warmCold := archive.NewCold(e.db, e.blobs, 0)
	if res.warmPage, err = readPages(ctx, archive.NewHistory(e.warm, warmCold), rng, corpus, convs, o.pages, nil); err != nil {
		return res, fmt.Errorf("warm page: %w", err)
	}

	if err := archiveAll(ctx, e, o.messages, o.partMessages, &res, log); err != nil {
		return res, err
	}
	if err := measureSegments(ctx, e, &res); err != nil {
		return res, err
	}

	// Uncached: a cold tier without a cache fetches and decodes the segment for every page.
	uncached := archive.NewHistory(e.warm, archive.NewCold(e.db, e.blobs, -1))
	if res.coldPage, err = readPages(ctx, uncached, rng, corpus, convs, o.pages, nil); err != nil {
		return res, fmt.Errorf("cold page: %w", err)
	}
	// Cached: each page is read once to load its segment, then timed on the second read.
	cached := archive.NewHistory(e.warm, archive.NewCold(e.db, e.blobs, 0))
	if res.coldCachedPage, err = readPages(ctx, cached, rng, corpus, convs, o.pages, cached); err != nil {
		return res, fmt.Errorf("cached cold page: %w", err)
	}
	res.warmPageP50, res.warmPageP99 = pct(res.warmPage)
	res.coldPageP50, res.coldPageP99 = pct(res.coldPage)
	res.coldCachedP50, res.coldCachedP99 = pct(res.coldCachedPage)
	return res, nil
}

func pct(lat []time.Duration) (p50, p99 float64) {
	s := slices.Clone(lat)
	slices.Sort(s)
	return percentileMs(s, 50), percentileMs(s, 99)
}

// createConversations inserts the conversation rows the messages belong to, as opening them would.
func createConversations(ctx context.Context, db *gorm.DB, c *search.Corpus, convs, perConv int) error {
	rows := make([]session.Conversation, 0, convs)
	for i := range convs {
		d := c.Doc(i * perConv)
		rows = append(rows, session.Conversation{ID: d.ConversationID, ShopID: d.ShopID, BuyerID: d.BuyerID, CreatedAt: d.CreatedAt, UpdatedAt: d.CreatedAt})
	}
	return db.WithContext(ctx).CreateInBatches(rows, 1000).Error
}

// message is the i-th message of the backlog.
func message(c *search.Corpus, i int) session.Message {
	d := c.Doc(i)
	return session.Message{ConversationID: d.ConversationID, ClientMsgID: "m" + strconv.Itoa(i), ShopID: d.ShopID,
		SenderKind: d.SenderKind, SenderID: d.SenderID, Body: session.Body{Type: session.TypeText, Text: d.Text}, CreatedAt: d.CreatedAt}
}

// prefill appends every message through RedisLog.Append, the send path's own: each worker writes
// its conversations' messages in order, and the workers' concurrent calls share pipelined round
// trips as a busy node's do. Each conversation's first append re-seeds its counter from the warm
// store, as after a fresh start.
func prefill(ctx context.Context, hot *session.RedisLog, c *search.Corpus, convs, perConv int, log *logger) error {
	var next, done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				log.printf("pre-fill: %d/%d", done.Load(), c.Len())
			}
		}
	}()
	for range prefillWorkers {
		g.Go(func() error {
			for {
				conv := int(next.Add(1)) - 1
				if conv >= convs {
					return nil
				}
				for i := conv * perConv; i < min((conv+1)*perConv, c.Len()); i++ {
					m, dup, err := hot.Append(gctx, message(c, i))
					if err != nil {
						return err
					}
					if want := int64(i%perConv) + 1; dup || m.Seq != want {
						return fmt.Errorf("append of message %d: seq %d dup %v, want seq %d", i, m.Seq, dup, want)
					}
					done.Add(1)
				}
			}
		})
	}
	err := g.Wait()
	close(stop)
	wg.Wait()
	return err
}

// flushAll runs the flush job (archive.FlushJob over session.RedisLog.Flush, batches of
// archive.DefaultFlushBatch until the hot tier is drained, as the scheduler and `shopdesk archive
// flush` run it) and checks that it moved every message once.
func flushAll(ctx context.Context, hot *session.RedisLog, want int, log *logger) (time.Duration, error) {
	last := time.Now()
	ctx = archive.WithProgress(ctx, func(p archive.Progress) {
		if time.Since(last) >= progressEvery {
			last = time.Now()
			log.printf("flush: %d/%d", p.Result.Moved, want)
		}
	})
	began := time.Now()
	r, err := archive.FlushJob(hot, archive.DefaultFlushBatch)(ctx)
	took := time.Since(began)
	if err != nil {
		return 0, fmt.Errorf("flush: %w", err)
	}
	lag, err := hot.Lag(ctx)
	switch {
	case err != nil:
		return 0, err
	case r.Moved != int64(want) || r.Errors != 0 || lag != 0:
		return 0, fmt.Errorf("flush moved %d of %d messages with %d conflicts, %d conversations left unflushed", r.Moved, want, r.Errors, lag)
	}
	log.printf("flushed %d messages to the warm store in %s (%.0f/s)", r.Moved, took.Round(time.Millisecond), perSec(r.Moved, took))
	return took, nil
}

// archiveAll runs the archive job (archive.Archiver, every period that has ended by now) and times
// its deletes of warm rows apart: the archiver's step hook marks when a segment is recorded in the
// manifest (the deletes begin) and when its warm rows are gone.
func archiveAll(ctx context.Context, e *archiveEnv, want, partMessages int, res *archiveResult, log *logger) error {
	var deleting time.Time
	hook := func(name string) error {
		switch name {
		case "archive.after_manifest":
			deleting = time.Now()
		case "archive.after_delete":
			res.delete += time.Since(deleting)
		}
		return nil
	}
	a, err := archive.NewArchiver(e.db, e.blobs, archive.ArchiverConfig{PartMessages: partMessages, CrashPoint: hook})
	if err != nil {
		return err
	}
	began := time.Now()
	r, err := a.Archive(ctx, archive.Scope{Until: time.Now()})
	took := time.Since(began)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	res.archive, res.deleted = took-res.delete, r.Deleted
	if r.Moved != int64(want) || r.Deleted != int64(want) || r.Errors != 0 {
		return fmt.Errorf("archive moved %d and deleted %d of %d messages with %d errors", r.Moved, r.Deleted, want, r.Errors)
	}
	if n, err := countRows(ctx, e.db, "messages"); err != nil || n != 0 {
		return fmt.Errorf("warm store holds %d messages after the archive, want 0 (%v)", n, err)
	}
	log.printf("archived %d messages in %s, of which deleting warm rows %s", r.Moved, took.Round(time.Millisecond), res.delete.Round(time.Millisecond))
	return nil
}

// measureSegments reads every segment the manifest records back from the cold store and sums its
// compressed and decoded sizes.
func measureSegments(ctx context.Context, e *archiveEnv, res *archiveResult) error {
	var recs []archive.SegmentRecord
	if err := e.db.WithContext(ctx).Order("id").Find(&recs).Error; err != nil {
		return err
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		return err
	}
	defer dec.Close()
	var count int64
	for _, rec := range recs {
		r, err := e.blobs.Get(ctx, rec.ObjectKey)
		if err != nil {
			return err
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return err
		}
		if err := dec.Reset(bytes.NewReader(data)); err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, dec)
		if err != nil {
			return fmt.Errorf("segment %s: %w", rec.ObjectKey, err)
		}
		res.compressed += int64(len(data))
		res.decoded += n
		res.maxSegment = max(res.maxSegment, int64(len(data)))
		count += rec.MessageCount
	}
	res.segments = len(recs)
	if count != int64(res.messages) {
		return fmt.Errorf("the manifest records %d messages in %d segments, want %d", count, len(recs), res.messages)
	}
	return nil
}

func countRows(ctx context.Context, db *gorm.DB, table string) (int64, error) {
	var n int64
	err := db.WithContext(ctx).Table(table).Count(&n).Error
	return n, err
}

// readPages times n pages of 50 read backwards from a random seq of a random conversation, and
// checks each page is the 50 messages right below that seq. With warmUp set, each page is read
// through it once untimed first.
func readPages(ctx context.Context, h *archive.History, rng *rand.Rand, c *search.Corpus, convs, n int, warmUp *archive.History) ([]time.Duration, error) {
	perConv := c.Len() / convs
	lat := make([]time.Duration, 0, n)
	for range n {
		conv := rng.IntN(convs)
		// before is in (50, last+1]: a full page always exists below it.
		last := min(perConv, c.Len()-conv*perConv)
		before := int64(pageSize + 1 + rng.IntN(last-pageSize+1))
		convID := c.Doc(conv * perConv).ConversationID
		if warmUp != nil {
			if _, err := warmUp.Before(ctx, convID, before, pageSize); err != nil {
				return nil, err
			}
		}
		start := time.Now()
		page, err := h.Before(ctx, convID, before, pageSize)
		lat = append(lat, time.Since(start))
		if err != nil {
			return nil, err
		}
		if err := checkPage(c, conv*perConv, page, before); err != nil {
			return nil, fmt.Errorf("conversation %d before %d: %w", convID, before, err)
		}
	}
	return lat, nil
}

// checkPage checks that page is messages before-50 … before-1 of the conversation whose first
// message is corpus document first.
func checkPage(c *search.Corpus, first int, page []session.Message, before int64) error {
	if len(page) != pageSize {
		return fmt.Errorf("page of %d messages, want %d", len(page), pageSize)
	}
	for i, m := range page {
		seq := before - pageSize + int64(i)
		want := message(c, first+int(seq)-1)
		if m.Seq != seq || m.ClientMsgID != want.ClientMsgID || m.Body.Text != want.Body.Text {
			return fmt.Errorf("message %d of the page is seq %d %q, want seq %d %q", i, m.Seq, m.ClientMsgID, seq, want.ClientMsgID)
		}
	}
	return nil
}
