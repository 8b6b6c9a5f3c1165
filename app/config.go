package app

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is every setting of a node. Each field is a flag --x-y and an environment variable
// SHOPDESK_X_Y; the flag wins.
type Config struct {
	Addr            string
	PublicURL       string
	Data            string
	MySQLDSN        string
	RedisAddr       string
	MySQLMaxConns   int
	RedisPassword   string
	RedisPrefix     string
	OperatorToken   string
	BlobDir         string
	Demo            bool
	NodeID          string
	PresenceTimeout time.Duration
	RerouteGrace    time.Duration
	SessionIdle     time.Duration
	FlushSchedule   string
	TrimSchedule    string
	HotKeepMessages int
	HotKeepHours    int
	ShutdownGrace   time.Duration
	MaxTextBytes    int
	UploadMax       int64
	FrameRate       int
	LogLevel        string
	LogFormat       string
	BcryptCost      int
	S3Endpoint      string
	S3Bucket        string
	S3AccessKey     string
	S3SecretKey     string
	S3Region        string
	ArchiveDays     int
	ArchiveSchedule string
	ColdCacheMB     int
	IndexSchedule   string
	ESURL           string
	ESAnalyzer      string
	DebugAddr       string
	// RetentionSchedule is when the retention job deletes history past each shop's retention.
	RetentionSchedule string
}

// setting describes one configuration entry for flags, the environment and the README.
type setting struct {
	name, help string
	ptr        any
	def        string
}

func (c *Config) settings() []setting {
	return []setting{
		{"addr", "listen address", &c.Addr, ":8080"},
		{"public-url", "URL clients reach this node at (default: http://127.0.0.1 and the listening port)", &c.PublicURL, ""},
		{"data", "directory for the embedded store, blobs and the operator token", &c.Data, "./data"},
		{"mysql-dsn", "MySQL/MariaDB DSN (go-sql-driver syntax); set with redis-addr for production", &c.MySQLDSN, ""},
		{"mysql-max-conns", "most MySQL connections this node opens (times the nodes, under the server's max_connections)", &c.MySQLMaxConns, "64"},
		{"redis-addr", "Redis host:port; needs mysql-dsn too", &c.RedisAddr, ""},
		{"redis-password", "Redis password", &c.RedisPassword, ""},
		{"redis-prefix", "prefix of every Redis key (lets several clusters share one Redis)", &c.RedisPrefix, "sd:"},
		{"operator-token", "platform operator token (default: generated into operator.token in the data directory)", &c.OperatorToken, ""},
		{"blob-dir", "directory for uploads and cold history when no S3 endpoint is set (default: blobs in the data directory; a cluster needs a shared one)", &c.BlobDir, ""},
		{"s3-endpoint", "S3-compatible object storage (host:port or an http(s) URL) for uploads and cold history, instead of blob-dir", &c.S3Endpoint, ""},
		{"s3-bucket", "the S3 bucket (created when missing)", &c.S3Bucket, "shopdesk"},
		{"s3-access-key", "S3 access key", &c.S3AccessKey, ""},
		{"s3-secret-key", "S3 secret key", &c.S3SecretKey, ""},
		{"s3-region", "S3 region (AWS needs the bucket's)", &c.S3Region, ""},
		{"flush-schedule", "when the flush job moves the hot tier (Redis) to the warm store (cron with seconds, or @every; a second at the finest)", &c.FlushSchedule, "@every 1s"},
		{"trim-schedule", "when the trim job drops warm messages from the hot tier (cron with seconds, or @every)", &c.TrimSchedule, "0 * * * * *"},
		{"hot-keep-messages", "the trim job keeps each conversation's newest this many messages in Redis", &c.HotKeepMessages, "200"},
		{"hot-keep-hours", "the trim job keeps messages younger than this many hours in Redis (a message goes once it is outside both limits and flushed)", &c.HotKeepHours, "24"},
		{"archive-days", "messages older than this many days move from the warm store to cold segments", &c.ArchiveDays, "90"},
		{"archive-schedule", "when the archive job runs (cron with seconds, or @every/@daily)", &c.ArchiveSchedule, "0 30 3 * * *"},
		{"cold-cache-mb", "memory for decoded cold segments, per node", &c.ColdCacheMB, "64"},
		{"index-schedule", "when the search index job brings new messages into the index (cron with seconds)", &c.IndexSchedule, "*/5 * * * * *"},
		{"retention-schedule", "when the retention job deletes history older than each shop's retention days from every tier (cron with seconds)", &c.RetentionSchedule, "0 15 4 * * *"},
		{"es-url", "Elasticsearch 7 URLs, comma-separated, for search (default: the embedded index in the data directory)", &c.ESURL, ""},
		{"es-analyzer", "Elasticsearch analyzer: ik (IK plugin: ik_max_word to index, ik_smart to search), cjk (built-in bigrams), or empty/auto: IK when every node has it, else cjk", &c.ESAnalyzer, ""},
		{"demo", "seed a demo shop with a manager and agents (password demo)", &c.Demo, "false"},
		{"node-id", "this node's id in the cluster (default: random)", &c.NodeID, ""},
		{"presence-timeout", "an agent without a heartbeat for this long goes offline", &c.PresenceTimeout, "30s"},
		{"reroute-grace", "how long an agent may be offline or away before their open sessions go to others", &c.RerouteGrace, "1m"},
		{"session-idle", "a session with no message for this long is closed", &c.SessionIdle, "30m"},
		{"shutdown-grace", "how long SIGTERM waits for requests and the last flush", &c.ShutdownGrace, "10s"},
		{"max-text-bytes", "largest text message", &c.MaxTextBytes, "4096"},
		{"upload-max", "largest upload in bytes", &c.UploadMax, "10485760"},
		{"frame-rate", "frames per second allowed per connection (bursts of twice that)", &c.FrameRate, "200"},
		{"log-level", "debug, info, warn or error", &c.LogLevel, "info"},
		{"log-format", "text or json", &c.LogFormat, "text"},
		{"debug-addr", "address for Go's profiling handlers (/debug/pprof/); keep it on loopback (empty: off)", &c.DebugAddr, ""},
		{"bcrypt-cost", "bcrypt cost of new password hashes (4-31)", &c.BcryptCost, "10"},
	}
}

// EnvName returns the environment variable of a flag: addr → SHOPDESK_ADDR.
func EnvName(flagName string) string {
	return "SHOPDESK_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ParseConfig reads flags from args over the environment over the defaults.
func ParseConfig(name string, args []string, getenv func(string) string) (Config, error) {
	return parseConfig(flag.NewFlagSet(name, flag.ContinueOnError), args, getenv)
}

// parseConfig is ParseConfig on a flag set that may carry a command's own flags too.
func parseConfig(fs *flag.FlagSet, args []string, getenv func(string) string) (Config, error) {
	var c Config
	for _, s := range c.settings() {
		def := s.def
		if v := getenv(EnvName(s.name)); v != "" {
			def = v
		}
		var err error
		switch p := s.ptr.(type) {
		case *string:
			fs.StringVar(p, s.name, def, s.help)
		case *bool:
			var v bool
			v, err = strconv.ParseBool(def)
			fs.BoolVar(p, s.name, v, s.help)
		case *int:
			var v int
			v, err = strconv.Atoi(def)
			fs.IntVar(p, s.name, v, s.help)
		case *int64:
			var v int64
			v, err = strconv.ParseInt(def, 10, 64)
			fs.Int64Var(p, s.name, v, s.help)
		case *time.Duration:
			var v time.Duration
			v, err = time.ParseDuration(def)
			fs.DurationVar(p, s.name, v, s.help)
		}
		if err != nil {
			return c, fmt.Errorf("%s=%q is not a valid %s: %w", EnvName(s.name), def, kindOf(s.ptr), err)
		}
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	return c, c.check()
}

func kindOf(p any) string {
	switch p.(type) {
	case *bool:
		return "boolean"
	case *int, *int64:
		return "integer"
	case *time.Duration:
		return "duration (e.g. 30s)"
	}
	return "value"
}

// Mode is which backends a configuration selects.
type Mode string

// Modes.
const (
	ModeEmbedded   Mode = "embedded"
	ModeMySQL      Mode = "mysql"
	ModeProduction Mode = "production"
)

// Mode returns the backend mode: embedded with neither server, production with both.
func (c Config) Mode() Mode {
	switch {
	case c.MySQLDSN != "" && c.RedisAddr != "":
		return ModeProduction
	case c.MySQLDSN != "":
		return ModeMySQL
	}
	return ModeEmbedded
}

func (c Config) check() error {
	if c.RedisAddr != "" && c.MySQLDSN == "" {
		return fmt.Errorf("SHOPDESK_REDIS_ADDR is set but SHOPDESK_MYSQL_DSN is not: Redis holds only the hot tier, so production mode needs MySQL as the warm store too (unset SHOPDESK_REDIS_ADDR for embedded mode)")
	}
	if c.PresenceTimeout < time.Second || c.SessionIdle < time.Second || c.RerouteGrace < time.Second {
		return fmt.Errorf("presence-timeout, reroute-grace and session-idle must be at least 1s")
	}
	if c.MySQLMaxConns < 1 {
		return fmt.Errorf("mysql-max-conns must be at least 1")
	}
	if c.HotKeepMessages < 0 || c.HotKeepHours < 0 {
		return fmt.Errorf("hot-keep-messages and hot-keep-hours must not be negative")
	}
	if c.ArchiveDays < 1 || c.ColdCacheMB < 1 {
		return fmt.Errorf("archive-days and cold-cache-mb must be at least 1")
	}
	if c.BcryptCost < 4 || c.BcryptCost > 31 {
		return fmt.Errorf("bcrypt-cost must be 4-31")
	}
	if c.MaxTextBytes <= 0 || c.UploadMax <= 0 || c.FrameRate <= 0 {
		return fmt.Errorf("max-text-bytes, upload-max and frame-rate must be positive")
	}
	return nil
}

// ConfigReference returns the configuration table of the README: flag, variable, default, meaning.
func ConfigReference() string {
	var c Config
	var b strings.Builder
	b.WriteString("| flag | environment | default | meaning |\n| --- | --- | --- | --- |\n")
	for _, s := range c.settings() {
		def := "`" + s.def + "`"
		if s.def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(&b, "| `--%s` | `%s` | %s | %s |\n", s.name, EnvName(s.name), def, s.help)
	}
	return b.String()
}

// Getenv is os.Getenv, named so that only app reads the environment.
var Getenv = os.Getenv
