package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// errNotLoopback is the workplace rule: a bench only loads servers on this machine.
var errNotLoopback = errors.New("bench only dials loopback addresses (127.0.0.0/8, ::1, localhost)")

// parseAddrs reads --addr: one base URL or a comma-separated list, each http(s)://host:port on loopback.
func parseAddrs(s string) ([]*url.URL, error) {
	var out []*url.URL
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		u, err := url.Parse(part)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--addr %q: want http://host:port", part)
		}
		if u.Port() == "" {
			return nil, fmt.Errorf("--addr %q: the port is required", part)
		}
		host := u.Hostname()
		if ip := net.ParseIP(host); !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("--addr %q: refused: %w", part, errNotLoopback)
		}
		u.Path, u.RawQuery, u.Fragment = strings.TrimRight(u.Path, "/"), "", ""
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, errors.New("--addr is required")
	}
	return out, nil
}

// loopbackDialer refuses, at connect time, any address that is not loopback: a name such as localhost
// is only trusted for what it resolves to.
var loopbackDialer = &net.Dialer{
	Timeout: 10 * time.Second,
	Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("dial %s refused: %w", address, errNotLoopback)
		}
		return nil
	},
}

func dialLoopback(ctx context.Context, network, addr string) (net.Conn, error) {
	return loopbackDialer.DialContext(ctx, network, addr)
}

// newHTTPClient returns a client that never uses a proxy, never follows redirects and dials loopback only.
func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialLoopback,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
