package app_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopdesk/shopdesk/app"
	"github.com/shopdesk/shopdesk/migrations/testdb"
)

// privateRedis starts a redis-server of the test's own on a free loopback port with extra settings
// and kills it when the test ends. It returns the address.
func privateRedis(t *testing.T, extra ...string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testdb.Unreachable(t, "redis-server binary", err)
	}
	for attempt := 0; attempt < 3; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		args := append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", t.TempDir(), "--protected-mode", "no"}, extra...)
		cmd := exec.Command(bin, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		up := false
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && !up {
			select {
			case <-exited:
				deadline = time.Now() // the port was taken meanwhile; try another
			default:
				up = rdb.Ping(context.Background()).Err() == nil
				if !up {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}
		rdb.Close()
		if up {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			return addr
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Fatal("could not start a private redis-server")
	return ""
}

func parse(t *testing.T, args []string, env map[string]string) (app.Config, error) {
	t.Helper()
	return app.ParseConfig("test", args, func(k string) string { return env[k] })
}

// TestEvictingRedisRefused: a Redis that may evict keys could drop seq counters and dedupe records,
// so a node refuses to start on one.
func TestEvictingRedisRefused(t *testing.T) {
	t.Parallel()
	addr := privateRedis(t, "--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru")
	cfg, err := parse(t, []string{"--data=" + t.TempDir(), "--mysql-dsn=" + testdb.MySQLDatabase(t), "--redis-addr=" + addr,
		"--operator-token=x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, nil)
	if err == nil {
		_ = a.Shutdown(context.Background())
		t.Fatal("a node started on an evicting Redis")
	}
	if !strings.Contains(err.Error(), "maxmemory-policy") || !strings.Contains(err.Error(), "noeviction") {
		t.Fatalf("error does not name the setting and its required value: %v", err)
	}
}

// TestDurabilityEverysec: /readyz and the metrics report the durability Redis runs with.
func TestDurabilityEverysec(t *testing.T) {
	t.Parallel()
	addr := privateRedis(t, "--appendonly", "yes", "--appendfsync", "everysec")
	env := backendEnv{name: "production", mysqlDSN: testdb.MySQLDatabase(t), redis: addr, prefix: "sd:"}
	node := startNode(t, env, "")
	var ready struct {
		Ready      bool
		Durability struct {
			Mode, Promise, AppendOnly, AppendFsync string
		}
	}
	if st := api(t, "GET", node.URL()+"/readyz", authz{}, nil, &ready); st != http.StatusOK || !ready.Ready {
		t.Fatalf("/readyz: %d %+v", st, ready)
	}
	if ready.Durability.Mode != "everysec" || !strings.Contains(ready.Durability.Promise, "second") {
		t.Fatalf("durability: %+v", ready.Durability)
	}
	_, metrics := fetch(t, "GET", node.URL()+"/metrics", authz{})
	if !strings.Contains(string(metrics), `shopdesk_redis_durability{mode="everysec"} 1`) {
		t.Fatal("/metrics does not report durability mode everysec")
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	c, err := parse(t, []string{"--addr=:2"}, map[string]string{"SHOPDESK_ADDR": ":1"})
	if err != nil || c.Addr != ":2" {
		t.Fatalf("flag over environment: %q %v", c.Addr, err)
	}
	c, err = parse(t, nil, map[string]string{"SHOPDESK_ADDR": ":1", "SHOPDESK_PRESENCE_TIMEOUT": "45s", "SHOPDESK_DEMO": "true"})
	if err != nil || c.Addr != ":1" || c.PresenceTimeout != 45*time.Second || !c.Demo {
		t.Fatalf("environment only: %+v %v", c, err)
	}
	c, err = parse(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8080" || c.Data != "./data" || c.RedisPrefix != "sd:" || c.PresenceTimeout != 30*time.Second || c.Mode() != app.ModeEmbedded {
		t.Fatalf("defaults: %+v", c)
	}
	for name, in := range map[string]struct {
		args []string
		env  map[string]string
	}{
		"flag":        {args: []string{"--redis-addr=127.0.0.1:6379"}},
		"environment": {env: map[string]string{"SHOPDESK_REDIS_ADDR": "127.0.0.1:6379"}},
	} {
		if _, err := parse(t, in.args, in.env); err == nil || !strings.Contains(err.Error(), "SHOPDESK_MYSQL_DSN") {
			t.Errorf("Redis without MySQL by %s: %v", name, err)
		}
	}
	c, err = parse(t, []string{"--redis-addr=r:6379"}, map[string]string{"SHOPDESK_MYSQL_DSN": "u@tcp(m:3306)/d"})
	if err != nil || c.Mode() != app.ModeProduction {
		t.Fatalf("MySQL from the environment, Redis by flag: %v %v", c.Mode(), err)
	}
	if _, err := parse(t, nil, map[string]string{"SHOPDESK_PRESENCE_TIMEOUT": "soon"}); err == nil || !strings.Contains(err.Error(), "SHOPDESK_PRESENCE_TIMEOUT") {
		t.Errorf("a bad environment value must name its variable: %v", err)
	}
}

// TestOperatorTokenFile: without a configured token one is generated into the data directory,
// readable by the owner only, and the next start reuses it.
func TestOperatorTokenFile(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	cfg, err := parse(t, []string{"--data=" + data, "--addr=127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := app.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = first.Shutdown(context.Background())
	path := filepath.Join(data, "operator.token")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no operator token file: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("operator.token mode %v, want 0600", info.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	tok := strings.TrimSpace(string(raw))
	if len(tok) < 32 {
		t.Fatalf("operator token %q is too short", tok)
	}

	second, err := app.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Shutdown(context.Background()) })
	if again, _ := os.ReadFile(path); string(again) != string(raw) {
		t.Fatalf("the second start replaced the token: %q → %q", raw, again)
	}
	if st := api(t, "GET", second.URL()+"/api/operator/shops", authz{token: tok}, nil, nil); st != http.StatusOK {
		t.Fatalf("the generated token is not accepted: %d", st)
	}
	if st := api(t, "GET", second.URL()+"/api/operator/shops", authz{token: tok + "x"}, nil, nil); st != http.StatusUnauthorized {
		t.Fatalf("a wrong operator token: %d", st)
	}
}

// TestParseConfigNumbersFromEnvironment documents a bug: numbers from the environment are read with
// fmt.Sscan, which stops at the first non-digit, so SHOPDESK_UPLOAD_MAX=10MB silently becomes 10
// bytes where the flag --upload-max=10MB is refused.
func TestParseConfigNumbersFromEnvironment(t *testing.T) {
	t.Parallel()
	if _, err := parse(t, []string{"--upload-max=10MB"}, nil); err == nil {
		t.Fatal("the flag accepted 10MB")
	}
	for name, value := range map[string]string{"SHOPDESK_UPLOAD_MAX": "10MB", "SHOPDESK_MAX_TEXT_BYTES": "4k", "SHOPDESK_FRAME_RATE": "2e3"} {
		c, err := parse(t, nil, map[string]string{name: value})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: want an error naming the variable, got upload-max %d, max-text-bytes %d, frame-rate %d",
				name, value, c.UploadMax, c.MaxTextBytes, c.FrameRate)
		}
	}
}

// TestParseConfigBoolsFromEnvironment documents a bug: a boolean from the environment is true only
// when it is exactly "true" or "1"; every other value, also "True" or a typo, is silently false,
// while the flag accepts what strconv.ParseBool accepts and refuses the rest.
func TestParseConfigBoolsFromEnvironment(t *testing.T) {
	t.Parallel()
	if c, err := parse(t, []string{"--demo=True"}, nil); err != nil || !c.Demo {
		t.Fatalf("--demo=True: %v %v", c.Demo, err)
	}
	if c, err := parse(t, nil, map[string]string{"SHOPDESK_DEMO": "True"}); err != nil || !c.Demo {
		t.Errorf("SHOPDESK_DEMO=True: demo %v, err %v; the flag's spelling should work in the environment", c.Demo, err)
	}
	if _, err := parse(t, nil, map[string]string{"SHOPDESK_DEMO": "yes please"}); err == nil || !strings.Contains(err.Error(), "SHOPDESK_DEMO") {
		t.Errorf("SHOPDESK_DEMO=\"yes please\": want an error naming the variable, got %v", err)
	}
}

// TestOperatorTokenFileEmpty documents a bug: an operator.token file that exists but is empty (a
// crash between creating and writing it, or a second node reading it in that moment) makes the node
// start with an empty operator token, which no request can match: the operator is locked out and
// nothing says so. The node should write a fresh token or refuse to start.
func TestOperatorTokenFileEmpty(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	path := filepath.Join(data, "operator.token")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parse(t, []string{"--data=" + data, "--addr=127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	node, err := app.New(context.Background(), cfg, nil)
	if err != nil {
		return // refusing to start with a clear error is a fix too
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Shutdown(context.Background()) })
	raw, _ := os.ReadFile(path)
	tok := strings.TrimSpace(string(raw))
	if tok == "" {
		t.Fatal("the node started with an empty operator token: nobody can use the operator API")
	}
	if st := api(t, "GET", node.URL()+"/api/operator/shops", authz{token: tok}, nil, nil); st != http.StatusOK {
		t.Fatalf("the token in operator.token is not accepted: %d", st)
	}
}
