package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/migrations"
	"github.com/shopdesk/shopdesk/session/crashpoint"
)

// Version is set at build time with -ldflags "-X github.com/shopdesk/shopdesk/app.Version=…".
var Version = "dev"

// BenchMain runs `shopdesk bench`; the load tool's package sets it, so that app does not import it.
var BenchMain func(ctx context.Context, args []string, stdout, stderr io.Writer) int

const usage = `usage: shopdesk <command> [flags]

commands:
  serve     run a node (embedded defaults; --demo seeds a demo shop)
  migrate   apply the warm store's migrations and print the schema version
  shop      shop create --slug S --name N --manager U --password P [--origins a,b] [--time-zone Z]
  archive   run a Store Scheduler job by hand: archive flush|trim|archive|index|retention|status (see shopdesk archive)
  bench     drive a running node or cluster over WebSockets (see docs/BENCHMARKS.md)
  version   print the version

Every flag of serve is also an environment variable: --redis-addr is SHOPDESK_REDIS_ADDR.
`

// Main runs the shopdesk command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	// Only a binary built with -tags crashpoint (the crash tests') stops at the points named here.
	if err := crashpoint.Arm(Getenv("SHOPDESK_CRASHPOINT")); err != nil {
		fmt.Fprintln(stderr, "SHOPDESK_CRASHPOINT:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "migrate":
		return migrate(ctx, args[1:], stdout, stderr)
	case "shop":
		return shopCmd(ctx, args[1:], stdout, stderr)
	case "archive":
		return archiveCmd(ctx, args[1:], stdout, stderr)
	case "bench":
		if BenchMain == nil {
			fmt.Fprintln(stderr, "bench is not linked into this binary")
			return 2
		}
		return BenchMain(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "shopdesk", Version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
	return 2
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := ParseConfig("serve", args, Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "shopdesk serve:", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	a, err := New(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "shopdesk serve:", err)
		return 1
	}
	if err := a.Start(); err != nil {
		fmt.Fprintln(stderr, "shopdesk serve:", err)
		a.Kill()
		return 1
	}
	if cfg.Demo {
		printDemo(stdout, a)
	}
	<-ctx.Done()
	log.Info("shutting down", "grace", cfg.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	return 0
}

func printDemo(w io.Writer, a *App) {
	u := a.URL()
	fmt.Fprintf(w, `
Shopdesk is running in %s mode at %s

  demo shop:        %s (manager "manager", agents presale1, presale2, aftersale1; password "%s")
  demo store:       %s/   (a buyer: the widget on every page)
  workspace:        %s/app/   (agents and managers)
  health:           %s/healthz   readiness: %s/readyz   metrics: %s/metrics
  gateway:          %s/api/gateway
  operator token:   %s
  try it:           see "Walk-through" in README.md (curl + a WebSocket client)

`, a.Mode(), u, DemoShop, DemoPassword, u, u, u, u, u, u, operatorTokenSource(a.cfg))
}

func operatorTokenSource(cfg Config) string {
	if cfg.OperatorToken != "" {
		return "as configured (--operator-token / SHOPDESK_OPERATOR_TOKEN)"
	}
	return "in " + filepath.Join(cfg.Data, "operator.token")
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := ParseConfig("migrate", args, Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "shopdesk migrate:", err)
		return 2
	}
	var dialect string
	var a *App
	a = &App{cfg: cfg, mode: cfg.Mode()}
	if a.mode == ModeEmbedded {
		dialect = migrations.SQLite
		a.db, err = migrations.OpenSQLite(ctx, filepath.Join(cfg.Data, "shopdesk.db"))
	} else {
		dialect = migrations.MySQL
		a.db, err = migrations.OpenMySQL(ctx, cfg.MySQLDSN)
	}
	if err != nil {
		fmt.Fprintln(stderr, "shopdesk migrate:", err)
		return 1
	}
	defer a.closeBackends()
	sqlDB, _ := a.db.DB()
	cur, latest, err := migrations.Version(ctx, sqlDB, dialect)
	if err != nil {
		fmt.Fprintln(stderr, "shopdesk migrate:", err)
		return 1
	}
	fmt.Fprintf(stdout, "schema version %d (latest %d, %s)\n", cur, latest, dialect)
	return 0
}

func shopCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprintln(stderr, "usage: shopdesk shop create --slug S --manager U --password P [--name N] [--origins a,b] [--time-zone Z] [--json]")
		return 2
	}
	fs := flag.NewFlagSet("shop create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var in agent.NewShop
	var origins string
	var asJSON bool
	fs.StringVar(&in.Slug, "slug", "", "shop slug (login name of the shop)")
	fs.StringVar(&in.Name, "name", "", "display name")
	fs.StringVar(&in.TimeZone, "time-zone", "UTC", "IANA time zone")
	fs.StringVar(&in.ManagerUsername, "manager", "", "first manager's username")
	fs.StringVar(&in.ManagerPassword, "password", "", "first manager's password")
	fs.StringVar(&origins, "origins", "", "comma-separated origins allowed to embed the widget")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	// The storage flags of serve apply too, so the command writes where the node reads.
	rest, storage := splitStorageFlags(args[1:])
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	cfg, err := ParseConfig("shop", storage, Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "shopdesk shop:", err)
		return 2
	}
	if origins != "" {
		in.AllowedOrigins = strings.Split(origins, ",")
	}
	cfg.Demo = false
	a, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fmt.Fprintln(stderr, "shopdesk shop:", err)
		return 1
	}
	defer a.closeBackends()
	shop, mgr, err := a.agents.CreateShop(ctx, in)
	if err != nil {
		fmt.Fprintln(stderr, "shopdesk shop create:", err)
		return 1
	}
	if asJSON {
		_ = json.NewEncoder(stdout).Encode(map[string]any{"shop": shop, "manager": mgr, "buyer_secret": shop.BuyerSecrets[0]})
		return 0
	}
	fmt.Fprintf(stdout, "shop %d %q created; manager %q (id %d); buyer-token secret: %s\n", shop.ID, shop.Slug, mgr.Username, mgr.ID, shop.BuyerSecrets[0])
	return 0
}

// splitStorageFlags separates serve's flags (--data, --mysql-dsn, …) from a subcommand's own.
func splitStorageFlags(args []string) (own, storage []string) {
	known := map[string]bool{}
	var c Config
	for _, s := range c.settings() {
		known[s.name] = true
	}
	for i := 0; i < len(args); i++ {
		name := strings.TrimLeft(args[i], "-")
		if j := strings.IndexByte(name, '='); j >= 0 {
			name = name[:j]
		}
		if strings.HasPrefix(args[i], "-") && known[name] {
			storage = append(storage, args[i])
			if !strings.Contains(args[i], "=") && i+1 < len(args) {
				storage = append(storage, args[i+1])
				i++
			}
			continue
		}
		own = append(own, args[i])
	}
	return own, storage
}
