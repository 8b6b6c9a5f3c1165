package loadtest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/app"
)

// startNode runs an embedded node in the test process, with extra flags if any, and returns its base URL.
func startNode(t *testing.T, extra ...string) string {
	t.Helper()
	ctx := context.Background()
	args := append([]string{"--addr=127.0.0.1:0", "--data=" + t.TempDir(), "--operator-token=tok", "--frame-rate=100000"}, extra...)
	cfg, err := app.ParseConfig("test", args, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Shutdown(sctx)
	})
	return a.URL()
}

// bench runs the command's entry point and returns its exit status, its BENCH line and its stderr.
func bench(t *testing.T, args ...string) (int, []string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, &stdout, &stderr)
	lines := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
	return code, lines, stderr.String()
}

func TestBenchChatAgainstEmbeddedNode(t *testing.T) {
	url := startNode(t)
	code, lines, stderr := bench(t, "--addr", url, "--operator-token", "tok", "--buyers", "5", "--agents", "2",
		"--rate", "200", "--duration", "2s", "--drain", "2s")
	t.Logf("stderr:\n%s", stderr)
	if len(lines) != 1 {
		t.Fatalf("stdout should be exactly the summary line, got %q", lines)
	}
	m := summaryRE.FindStringSubmatch(lines[0])
	if m == nil {
		t.Fatalf("summary line does not match: %q", lines[0])
	}
	n := func(i int) int64 { v, _ := strconv.ParseInt(m[i], 10, 64); return v }
	sent, acked, delivered, lost, dup, idle := n(1), n(2), n(3), n(4), n(5), n(6)
	if sent == 0 || acked != sent || lost != 0 || dup != 0 || delivered != acked || idle != 0 {
		t.Errorf("want sent=acked=delivered>0 and no loss or dup: %s", lines[0])
	}
	if code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

func TestBenchIdleConnections(t *testing.T) {
	url := startNode(t)
	code, lines, stderr := bench(t, "--addr", url+","+url, "--operator-token", "tok", "--buyers", "2", "--agents", "1",
		"--rate", "0", "--window", "4", "--duration", "500ms", "--drain", "2s", "--idle-conns", "20", "--idle-settle", "100ms")
	t.Logf("stderr:\n%s", stderr)
	m := summaryRE.FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		t.Fatalf("summary line does not match: %q", lines)
	}
	if m[6] != "20" || m[4] != "0" || m[5] != "0" || m[1] != m[2] || code != 0 {
		t.Errorf("exit %d: %s", code, lines[len(lines)-1])
	}
}

func TestBenchRefusals(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--scenario", "storm"}, 2, `unknown scenario "storm"`},
		{[]string{"--addr", "http://192.168.0.10:8080"}, 2, "loopback"},
		{[]string{"--addr", "http://127.0.0.1:1", "--operator-token", "x", "--duration", "1s"}, 1, "create bench shop"},
	} {
		code, lines, stderr := bench(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) || lines[0] != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.args, code, lines, stderr)
		}
	}
}

func TestLoopbackDialerRefusesOtherAddresses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := dialLoopback(ctx, "tcp", "192.0.2.1:80"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("dial of a non-loopback address: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := dialLoopback(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("loopback dial: %v", err)
	}
	c.Close()
}
