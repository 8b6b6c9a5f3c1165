package app

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/archive"
)

// TestProgressBar: the bar shows the share of the total when it is known and only counts otherwise,
// redraws at most ten times a second, and clears its line at the end.
func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	clock := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	b := newProgressBar(&out, "flush")
	b.start, b.now = clock, func() time.Time { return clock }

	clock = clock.Add(time.Second)
	b.update(archive.Progress{Result: archive.JobResult{Processed: 25, Moved: 25}, Total: 100})
	want := "\rflush [#######.......................]  25% processed=25 moved=25 deleted=0 errors=0 1.0s\x1b[K"
	if out.String() != want {
		t.Fatalf("first draw %q, want %q", out.String(), want)
	}
	out.Reset()
	clock = clock.Add(50 * time.Millisecond)
	b.update(archive.Progress{Result: archive.JobResult{Processed: 30}, Total: 100})
	if out.Len() != 0 {
		t.Fatalf("redrawn after 50 ms: %q", out.String())
	}
	clock = clock.Add(100 * time.Millisecond)
	b.update(archive.Progress{Result: archive.JobResult{Processed: 7, Deleted: 7}})
	if got := out.String(); got != "\rflush processed=7 moved=0 deleted=7 errors=0 1.1s\x1b[K" {
		t.Fatalf("draw without a total: %q", got)
	}
	out.Reset()
	b.finish()
	if out.String() != "\r\x1b[K" {
		t.Fatalf("finish: %q", out.String())
	}

	// A total the run overtakes stays a full bar.
	if l := b.line(archive.Progress{Result: archive.JobResult{Processed: 150}, Total: 100}, clock); !strings.Contains(l, "[##############################] 100%") {
		t.Fatalf("overtaken total: %q", l)
	}
}

// TestIsTerminal: buffers, files and pipes are not terminals, so they get no bar.
func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, out := range map[string]any{"buffer": &bytes.Buffer{}, "file": f, "pipe": w} {
		if isTerminal(out.(interface{ Write([]byte) (int, error) })) {
			t.Errorf("%s taken for a terminal", name)
		}
	}
}
