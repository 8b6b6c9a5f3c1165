// Package app is the composition root and the transport: configuration, wiring of backends, the gin
// HTTP API, the WebSocket gateway, credentials, metrics and graceful shutdown. It is the only package
// that knows gin and every other package; it holds no business rule.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/archive"
	"github.com/shopdesk/shopdesk/archive/search"
	"github.com/shopdesk/shopdesk/migrations"
	"github.com/shopdesk/shopdesk/routing"
	"github.com/shopdesk/shopdesk/session"
)

// App is one Shopdesk node.
type App struct {
	cfg      Config
	log      *slog.Logger
	nodeID   string
	mode     Mode
	db       *gorm.DB
	rdb      redis.UniversalClient
	agents   *agent.Service
	sessions *session.Service
	presence agent.Presence
	routing  *routing.Engine
	queued   *queueNotifier

	cold      *archive.Cold
	archiver  *archive.Archiver
	scheduler *archive.Scheduler
	search    search.Index
	privacy   *archive.Privacy
	hotLog    *session.RedisLog
	blobs     archive.Blobs
	hub       *Hub
	bus       Bus
	nodes     nodeRegistry
	lease     lease
	auth      *auth
	metrics   *metrics
	redisDur  *durability
	draining  atomic.Bool

	listener net.Listener
	server   *http.Server
	debug    *http.Server // --debug-addr's profiling server, or nil
	// staffNames answers session's questions about staff.
	staffNames *staffDirectory
	publicURL  string
	stopBG     context.CancelFunc
	bg         sync.WaitGroup
	closeOnce  sync.Once
}

// New opens the configured backends, migrates the warm store and wires every package; it starts nothing.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	if log == nil {
		log = slog.Default()
	}
	a := &App{cfg: cfg, log: log, mode: cfg.Mode(), metrics: newMetrics()}
	a.nodeID = cfg.NodeID
	if a.nodeID == "" {
		a.nodeID = randomHex(6)
	}
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	var err error
	switch a.mode {
	case ModeEmbedded:
		a.db, err = migrations.OpenSQLite(ctx, filepath.Join(cfg.Data, "shopdesk.db"))
	default:
		if a.db, err = migrations.OpenMySQL(ctx, cfg.MySQLDSN); err == nil {
			err = setPool(a.db, cfg.MySQLMaxConns)
		}
	}
	if err != nil {
		return nil, err
	}
	key, err := serverKey(ctx, a.db)
	if err != nil {
		a.closeBackends()
		return nil, err
	}
	if err := a.wireBackends(ctx); err != nil {
		a.closeBackends()
		return nil, err
	}
	if err := a.wireBlobs(ctx); err != nil {
		a.closeBackends()
		return nil, err
	}
	a.agents = agent.NewService(agent.NewStore(a.db))
	a.agents.Cost = cfg.BcryptCost
	opTok, err := operatorToken(cfg)
	if err != nil {
		a.closeBackends()
		return nil, err
	}
	a.auth = &auth{key: key, operatorToken: opTok, agents: a.agents, now: time.Now}
	a.hub = newHub(a.nodeID, a.bus, log, a.metrics)
	scfg := session.DefaultConfig()
	scfg.MaxTextBytes = cfg.MaxTextBytes
	a.staffNames = &staffDirectory{store: a.agents.Store}
	a.sessions = &session.Service{Store: session.NewStore(a.db), Push: a.hub, Directory: a.staffNames,
		Uploads: uploads{a.blobs}, Config: scfg, Logger: log}
	if a.hotLog != nil {
		a.sessions.Log = a.hotLog
		a.sessions.Unread = session.NewRedisUnread(a.rdb, cfg.RedisPrefix)
	} else {
		a.sessions.Log = session.NewSQLLog(a.db)
		a.sessions.Unread = session.NewSQLUnread(a.db)
	}
	if err := a.wireArchive(); err != nil {
		a.closeBackends()
		return nil, err
	}
	if err := a.wirePrivacy(); err != nil {
		a.closeBackends()
		return nil, err
	}
	if err := a.wireRouting(); err != nil {
		a.closeBackends()
		return nil, err
	}
	if cfg.Demo {
		if err := a.seedDemo(ctx); err != nil {
			a.closeBackends()
			return nil, fmt.Errorf("seed demo shop: %w", err)
		}
	}
	return a, nil
}

// wireBackends connects Redis in production mode and picks the in-process parts otherwise.
func (a *App) wireBackends(ctx context.Context) error {
	if a.mode != ModeProduction {
		a.presence = agent.NewMemoryPresence()
		a.lease = &localLease{}
		a.nodes = soloRegistry{self: a.selfInfo}
		return nil
	}
	a.rdb = redis.NewClient(&redis.Options{Addr: a.cfg.RedisAddr, Password: a.cfg.RedisPassword,
		PoolSize: 128, MinIdleConns: 8, DialTimeout: 2 * time.Second, ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := a.rdb.Ping(pctx).Err(); err != nil {
		return fmt.Errorf("redis unreachable at %s: %w", a.cfg.RedisAddr, err)
	}
	d, err := readDurability(pctx, a.rdb)
	if err != nil {
		return err
	}
	a.redisDur = &d
	a.metrics.durability.WithLabelValues(d.Mode).Set(1)
	a.log.Info("redis durability", "mode", d.Mode, "promise", d.Promise)
	p := a.cfg.RedisPrefix
	a.hotLog = session.NewRedisLog(a.rdb, p, session.NewSQLLog(a.db))
	a.presence = agent.NewRedisPresence(a.rdb, p)
	a.bus = &redisBus{rdb: a.rdb, channel: p + "bus"}
	a.nodes = &redisRegistry{rdb: a.rdb, prefix: p, ttl: 6 * time.Second}
	a.lease = &redisLease{rdb: a.rdb, prefix: p, token: a.nodeID + "-" + randomHex(4)}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// serverKey returns the cluster's signing key, created once in the warm store so every node shares it.
func serverKey(ctx context.Context, db *gorm.DB) ([]byte, error) {
	type secret struct {
		Name  string `gorm:"primaryKey"`
		Value string
	}
	row := secret{Name: "server-key", Value: randomHex(32)}
	if err := db.WithContext(ctx).Table("secrets").Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error; err != nil {
		return nil, fmt.Errorf("create server key: %w", err)
	}
	if err := db.WithContext(ctx).Table("secrets").Where("name = ?", "server-key").Take(&row).Error; err != nil {
		return nil, fmt.Errorf("read server key: %w", err)
	}
	return hex.DecodeString(row.Value)
}

// operatorToken returns the configured token, or the one in <data>/operator.token, creating it (0600).
// The file is written whole under a temporary name and linked into place, so no node ever reads a
// half-written token; an empty file (left by a crash of an older version) is replaced.
func operatorToken(cfg Config) (string, error) {
	if cfg.OperatorToken != "" {
		return cfg.OperatorToken, nil
	}
	path := filepath.Join(cfg.Data, "operator.token")
	for attempt := 0; attempt < 3; attempt++ {
		if b, err := os.ReadFile(path); err == nil {
			if tok := strings.TrimSpace(string(b)); tok != "" {
				return tok, nil
			}
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("replace empty operator token: %w", err)
			}
		}
		tok := randomHex(24)
		tmp, err := os.CreateTemp(cfg.Data, ".operator.token-*")
		if err != nil {
			return "", fmt.Errorf("write operator token: %w", err)
		}
		_, werr := tmp.WriteString(tok + "\n")
		cerr := tmp.Close()
		if werr == nil {
			werr = cerr
		}
		if werr == nil {
			werr = os.Chmod(tmp.Name(), 0o600)
		}
		if werr == nil {
			werr = os.Link(tmp.Name(), path)
		}
		os.Remove(tmp.Name())
		if werr == nil {
			return tok, nil
		}
		if !errors.Is(werr, os.ErrExist) {
			return "", fmt.Errorf("write operator token: %w", werr)
		}
		// another node on the same data directory won the race: read its token
	}
	return "", fmt.Errorf("operator token at %s could not be read or written", path)
}

// uploads lets session check that a message's blob exists.
type uploads struct{ blobs archive.Blobs }

func (u uploads) UploadExists(ctx context.Context, key string) (bool, error) {
	r, err := u.blobs.Get(ctx, key)
	if errors.Is(err, archive.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, r.Close()
}

// setPool bounds the node's MySQL connections. Every node of a cluster holds up to n, so n times the
// nodes must stay under the server's max_connections.
func setPool(db *gorm.DB, n int) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	sqlDB.SetMaxOpenConns(n)
	sqlDB.SetMaxIdleConns(n)
	return nil
}

// staffDirectory lets session ask about staff without importing agent. Names are kept for
// staffNameTTL: every assignment asks, and a rename or a deactivation reaches this node at once
// (forget) and the others within the TTL. Routing, which picks the agents, never picks a deactivated
// one whatever this cache says: its own staff snapshot is at most a second old.
type staffDirectory struct {
	store *agent.Store
	mu    sync.Mutex
	names map[[2]int64]staffName
}

type staffName struct {
	name   string
	active bool
	at     time.Time
}

// staffNameTTL is how long a staff member's name and active flag are trusted.
const staffNameTTL = 30 * time.Second

func (d *staffDirectory) StaffName(ctx context.Context, shopID, id int64) (string, error) {
	key := [2]int64{shopID, id}
	d.mu.Lock()
	e, ok := d.names[key]
	d.mu.Unlock()
	if !ok || time.Since(e.at) > staffNameTTL {
		st, err := d.store.Staff(ctx, shopID, id)
		if err != nil {
			return "", err
		}
		e = staffName{name: st.DisplayName, active: st.Active, at: time.Now()}
		d.mu.Lock()
		if d.names == nil || len(d.names) > 100000 {
			d.names = map[[2]int64]staffName{}
		}
		d.names[key] = e
		d.mu.Unlock()
	}
	if !e.active {
		return "", session.Errorf(session.EINVALID, "staff %d is deactivated", id)
	}
	return e.name, nil
}

// forget drops what is known of a staff member, after a change on this node.
func (d *staffDirectory) forget(shopID, id int64) {
	d.mu.Lock()
	delete(d.names, [2]int64{shopID, id})
	d.mu.Unlock()
}

func (a *App) selfInfo() nodeInfo {
	return nodeInfo{ID: a.nodeID, URL: a.publicURL, Conns: a.hub.Count()}
}

// Start listens on the configured address and starts the background loops.
func (a *App) Start() error {
	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return err
	}
	a.listener = ln
	a.publicURL = a.cfg.PublicURL
	if a.publicURL == "" {
		port := ln.Addr().(*net.TCPAddr).Port
		a.publicURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	}
	a.publicURL = strings.TrimRight(a.publicURL, "/")
	a.server = &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	if err := a.serveDebug(); err != nil {
		ln.Close()
		return fmt.Errorf("debug-addr: %w", err)
	}
	if err := a.openSearch(context.Background()); err != nil {
		ln.Close()
		return fmt.Errorf("search index: %w", err)
	}
	bg, cancel := context.WithCancel(context.Background())
	a.stopBG = cancel
	if err := a.nodes.register(bg, a.selfInfo()); err != nil {
		a.log.Warn("register node", "err", err)
	}
	a.loops(bg)
	go func() {
		if err := a.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server", "err", err)
		}
	}()
	a.log.Info("shopdesk node started", "node", a.nodeID, "mode", a.mode, "url", a.publicURL)
	return nil
}

// URL is the base URL clients reach this node at.
func (a *App) URL() string { return a.publicURL }

// Mode is the backend mode of the node.
func (a *App) Mode() Mode { return a.mode }

// every runs f every d until ctx ends; f runs on the loop's goroutine, so runs never overlap.
func (a *App) every(ctx context.Context, d time.Duration, f func(context.Context)) {
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f(ctx)
			}
		}
	}()
}

func (a *App) loops(ctx context.Context) {
	a.every(ctx, 2*time.Second, func(ctx context.Context) {
		if a.draining.Load() {
			return // a draining node must not offer itself again
		}
		if err := a.nodes.register(ctx, a.selfInfo()); err != nil {
			a.log.Warn("node heartbeat", "err", err)
		}
	})
	if a.bus != nil {
		a.bg.Add(1)
		go func() {
			defer a.bg.Done()
			_ = a.bus.Run(ctx, a.hub.fromBus)
		}()
	}
	a.startRouting(ctx)
	a.scheduler.Start()
	a.every(ctx, sweepEvery(a.cfg.PresenceTimeout), a.sweepPresence)
	a.every(ctx, sweepEvery(a.cfg.SessionIdle), a.sweepIdle)
}

func sweepEvery(timeout time.Duration) time.Duration {
	d := timeout / 6
	if d < 200*time.Millisecond {
		d = 200 * time.Millisecond
	}
	if d > 10*time.Second {
		d = 10 * time.Second
	}
	return d
}

// sweepPresence marks agents offline whose heartbeat is overdue, whatever their TCP state; one node
// at a time does it.
func (a *App) sweepPresence(ctx context.Context) {
	release, ok := a.lease.acquire(ctx, "presence-sweeper", a.cfg.PresenceTimeout)
	if !ok {
		return
	}
	defer release()
	overdue, err := a.presence.Overdue(ctx, time.Now().Add(-a.cfg.PresenceTimeout), 500)
	if err != nil {
		a.log.Warn("presence sweep", "err", err)
		return
	}
	for _, b := range overdue {
		prev, err := a.agents.SetStatus(ctx, b.ShopID, b.StaffID, agent.StatusOffline)
		if err != nil && agent.ErrorCode(err) != agent.ENOTFOUND {
			a.log.Warn("mark offline", "staff", b.StaffID, "err", err)
			continue
		}
		if err := a.presence.Forget(ctx, b.ShopID, b.StaffID); err != nil {
			a.log.Warn("forget presence", "staff", b.StaffID, "err", err)
			continue
		}
		a.metrics.presenceSwept.Inc()
		a.agentStatusChanged(ctx, b.ShopID, b.StaffID, agent.StatusOffline)
		a.log.Info("agent heartbeat timed out", "shop", b.ShopID, "staff", b.StaffID, "was", prev)
		a.hub.Push(ctx, []session.Party{session.StaffParty(b.StaffID)}, session.Event{Type: "status", Status: string(agent.StatusOffline), Note: "heartbeat timeout"})
	}
}

func (a *App) sweepIdle(ctx context.Context) {
	release, ok := a.lease.acquire(ctx, "idle-sweeper", a.cfg.SessionIdle)
	if !ok {
		return
	}
	defer release()
	shops, err := a.agents.Store.Shops(ctx)
	if err != nil {
		a.log.Warn("idle sweep", "err", err)
		return
	}
	idle := map[int64]time.Duration{}
	shortest := a.cfg.SessionIdle
	for _, sh := range shops {
		if sec := sh.Settings.IdleTimeoutSeconds; sec > 0 {
			idle[sh.ID] = time.Duration(sec) * time.Second
			shortest = min(shortest, idle[sh.ID])
		}
	}
	n, err := a.sessions.SweepIdle(ctx, shortest, func(shopID int64) time.Duration {
		if d, ok := idle[shopID]; ok {
			return d
		}
		return a.cfg.SessionIdle
	})
	if err != nil {
		a.log.Warn("idle sweep", "err", err)
	}
	a.metrics.idleClosed.Add(float64(n))
}

// setStatus changes a staff member's status; going offline forgets their heartbeat.
func (a *App) setStatus(ctx context.Context, id *identity, st agent.Status) (agent.Status, error) {
	if err := a.agents.UpdateStatus(ctx, id.shop.ID, id.staff.ID, st); err != nil {
		return "", err
	}
	if st == agent.StatusOffline {
		if err := a.presence.Forget(ctx, id.shop.ID, id.staff.ID); err != nil {
			return "", err
		}
	} else {
		a.beat(ctx, id)
	}
	a.hub.Push(ctx, []session.Party{id.caller.Party}, session.Event{Type: "status", Status: string(st)})
	a.agentStatusChanged(ctx, id.shop.ID, id.staff.ID, st)
	return st, nil
}

// Shutdown drains the node: it stops offering itself, tells clients to reconnect elsewhere, stops
// accepting, flushes the hot tier one last time and closes the backends.
func (a *App) Shutdown(ctx context.Context) error {
	var err error
	a.closeOnce.Do(func() {
		a.draining.Store(true)
		if a.nodes != nil {
			_ = a.nodes.deregister(ctx, a.nodeID)
		}
		a.hub.closeAll("shutdown")
		if a.server != nil {
			err = a.server.Shutdown(ctx)
		}
		if a.stopBG != nil {
			a.stopBG()
		}
		if err := a.scheduler.Stop(ctx); err != nil {
			a.log.Warn("store scheduler", "err", err)
		}
		a.closeSearch()
		a.closeDebug()
		a.bg.Wait()
		if a.nodes != nil { // a heartbeat that was under way may have registered it again
			_ = a.nodes.deregister(ctx, a.nodeID)
		}
		// The last flush, whatever the flush schedule: the scheduler is stopped, so it runs here.
		if _, err := a.flushJob(ctx); err != nil {
			a.log.Warn("last flush", "err", err)
		}
		a.closeBackends()
	})
	return err
}

// Kill stops the node abruptly, as a crash would: no goodbye frames, no last flush. Tests use it.
func (a *App) Kill() {
	a.closeOnce.Do(func() {
		if a.listener != nil {
			_ = a.server.Close()
		}
		a.hub.closeAllAbruptly()
		if a.stopBG != nil {
			a.stopBG()
		}
		_ = a.scheduler.Stop(context.Background())
		a.closeSearch()
		a.closeDebug()
		a.bg.Wait()
		a.closeBackends()
	})
}

func (a *App) closeSearch() {
	if a.search != nil {
		if err := a.search.Close(); err != nil {
			a.log.Warn("close search index", "err", err)
		}
	}
}

func (a *App) closeBackends() {
	if a.rdb != nil {
		_ = a.rdb.Close()
	}
	if a.db != nil {
		if s, err := a.db.DB(); err == nil {
			_ = s.Close()
		}
	}
}
