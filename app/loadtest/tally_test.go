package loadtest

import (
	"regexp"
	"testing"
	"time"
)

// summaryRE is the BENCH line's grammar: fields in order, integers and two-decimal figures.
var summaryRE = regexp.MustCompile(`^BENCH sent=(\d+) acked=(\d+) delivered=(\d+) lost=(\d+) dup=(\d+) msgs_per_sec=\d+\.\d\d ack_p50_ms=\d+\.\d\d ack_p99_ms=\d+\.\d\d deliver_p99_ms=\d+\.\d\d idle_conns=(\d+) rss_kib_per_idle_conn=-?\d+\.\d\d$`)

func TestSummaryString(t *testing.T) {
	ms := time.Millisecond
	s := newSummary(10, 9, 8, 1, 2, 4*time.Second,
		[]time.Duration{3 * ms, 1 * ms, 2 * ms, 4 * ms}, []time.Duration{5 * ms, 7 * ms}, 100, 150*1024)
	want := "BENCH sent=10 acked=9 delivered=8 lost=1 dup=2 msgs_per_sec=2.00 ack_p50_ms=2.00 ack_p99_ms=4.00 deliver_p99_ms=7.00 idle_conns=100 rss_kib_per_idle_conn=1.50"
	if got := s.String(); got != want {
		t.Errorf("summary\n got %s\nwant %s", got, want)
	}
	if !summaryRE.MatchString(s.String()) {
		t.Errorf("summary does not match its grammar: %s", s)
	}
	if s.ok() {
		t.Error("a summary with losses passed")
	}
	empty := newSummary(0, 0, 0, 0, 0, time.Second, nil, nil, 0, 12345)
	if got := empty.String(); got != "BENCH sent=0 acked=0 delivered=0 lost=0 dup=0 msgs_per_sec=0.00 ack_p50_ms=0.00 ack_p99_ms=0.00 deliver_p99_ms=0.00 idle_conns=0 rss_kib_per_idle_conn=0.00" {
		t.Errorf("empty summary: %s", got)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want float64
	}{{50, 50}, {99, 99}, {100, 100}, {0, 1}, {1, 1}} {
		if got := percentileMs(d, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentileMs([]time.Duration{1500 * time.Microsecond}, 99); got != 1.5 {
		t.Errorf("single sample p99 = %v", got)
	}
}

func TestReceiptsAndLoss(t *testing.T) {
	const conv1, conv2 = 7, 8
	// Device 0 is the agent of both conversations, device 1 the buyer of conv1.
	type arr struct {
		device    int
		conv, seq int64
		want      arrival
	}
	arrivals := []arr{
		{0, conv1, 1, arrivalFirst},
		{0, conv1, 2, arrivalFirst},
		{0, conv1, 2, arrivalDup}, // delivered twice
		{0, conv1, 4, arrivalFirst},
		{0, conv2, 70, arrivalFirst}, // another word of the bitmap
		{0, conv2, 69, arrivalLate},  // after a higher seq: out of order
		{0, conv2, 69, arrivalDup},
		{1, conv1, 2, arrivalFirst}, // the same (conversation, seq) on another device is not a dup
		{1, conv1, 0, arrivalInvalid},
	}
	devices := []receipts{{}, {}}
	var dup, late int
	for i, a := range arrivals {
		got := devices[a.device].observe(a.conv, a.seq)
		if got != a.want {
			t.Errorf("arrival %d (%d,%d) on device %d: got %v, want %v", i, a.conv, a.seq, a.device, got, a.want)
		}
		switch got {
		case arrivalDup:
			dup++
		case arrivalLate:
			late++
		}
	}
	if dup != 2 || late != 1 {
		t.Errorf("dup=%d late=%d, want 2 and 1", dup, late)
	}
	acked := []expected{
		{0, conv1, 1}, {0, conv1, 2}, {0, conv1, 3}, // 3 never arrived
		{0, conv1, 4}, {0, conv2, 69}, {0, conv2, 70},
		{1, conv1, 2},
		{1, conv2, 70}, // arrived at device 0, not at device 1
		{-1, conv1, 1}, // no receiving device known
	}
	if lost := countLost(acked, devices); lost != 3 {
		t.Errorf("lost = %d, want 3", lost)
	}
}

func TestParseMsgID(t *testing.T) {
	for _, tc := range []struct {
		in     string
		ok     bool
		device int
		at     time.Duration
	}{
		{"3.17.123456789", true, 3, 123456789},
		{"0.1.0", true, 0, 0},
		{"open-3", false, 0, 0},
		{"sys-assigned-20260101T000000.000000000", false, 0, 0},
		{"1.2", false, 0, 0},
		{"1.2.3.4", false, 0, 0},
		{"1..3", false, 0, 0},
		{"", false, 0, 0},
		{"1.2.99999999999999999999", false, 0, 0},
	} {
		id, ok := parseMsgID(tc.in)
		if ok != tc.ok || (ok && (id.device != tc.device || id.sentAt != tc.at)) {
			t.Errorf("parseMsgID(%q) = %+v, %v", tc.in, id, ok)
		}
	}
}

func TestParseAddrsLoopbackOnly(t *testing.T) {
	good := "http://127.0.0.1:8080, http://localhost:9000/,http://[::1]:8081,http://127.3.4.5:1"
	us, err := parseAddrs(good)
	if err != nil || len(us) != 4 || us[1].String() != "http://localhost:9000" {
		t.Fatalf("parseAddrs(%q) = %v, %v", good, us, err)
	}
	for _, bad := range []string{"http://10.0.0.1:8080", "http://192.168.1.2:80", "http://example.com:80",
		"http://127.0.0.1:8080,http://8.8.8.8:80", "127.0.0.1:8080", "http://127.0.0.1", "ftp://127.0.0.1:21", ""} {
		if _, err := parseAddrs(bad); err == nil {
			t.Errorf("parseAddrs(%q) accepted", bad)
		}
	}
}

func TestOptions(t *testing.T) {
	var sink discard
	if _, err := parseOptions([]string{"--scenario", "storm"}, sink); err == nil || !regexp.MustCompile(`unknown scenario "storm"`).MatchString(err.Error()) {
		t.Errorf("unknown scenario: %v", err)
	}
	if _, err := parseOptions([]string{"--addr", "http://10.1.2.3:8080"}, sink); err == nil {
		t.Error("a private address was accepted")
	}
	o, err := parseOptions(nil, sink)
	if err != nil || o.scenario != "chat" || o.drain != 10*time.Second || len(o.addrs) != 1 {
		t.Errorf("defaults: %+v, %v", o, err)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestLatencyHistogramP99(t *testing.T) {
	var h latencyHistogram
	if got := h.takeP99(); got != 0 {
		t.Fatalf("empty: %v", got)
	}
	for range 990 {
		h.add(3 * time.Millisecond) // bucket below 4,096 µs
	}
	for range 10 {
		h.add(100 * time.Millisecond) // bucket below 131,072 µs
	}
	if got := h.takeP99(); got != 4096*time.Microsecond {
		t.Fatalf("p99 of 990 fast and 10 slow: %v", got)
	}
	h.add(100 * time.Millisecond)
	if got := h.takeP99(); got != 131072*time.Microsecond {
		t.Fatalf("after a reset, one slow: %v", got)
	}
}
