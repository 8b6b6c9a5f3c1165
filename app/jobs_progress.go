package app

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/shopdesk/shopdesk/archive"
)

// isTerminal reports whether w is a terminal (a character device), where a progress bar belongs;
// a file or a pipe gets only the summary line.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar draws a job's progress on one terminal line, at most ten times a second.
type progressBar struct {
	w     io.Writer
	job   string
	start time.Time
	now   func() time.Time

	mu    sync.Mutex
	drawn time.Time
}

func newProgressBar(w io.Writer, job string) *progressBar {
	return &progressBar{w: w, job: job, start: time.Now(), now: time.Now}
}

const barWidth = 30

// update redraws the line, unless it was drawn less than 100 ms ago.
func (b *progressBar) update(p archive.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if now.Sub(b.drawn) < 100*time.Millisecond {
		return
	}
	b.drawn = now
	fmt.Fprint(b.w, "\r"+b.line(p, now)+"\x1b[K")
}

// line is the progress line: a bar when the total is known, then the counts and the time so far.
func (b *progressBar) line(p archive.Progress, now time.Time) string {
	var s strings.Builder
	s.WriteString(b.job + " ")
	if p.Total > 0 {
		frac := min(1, float64(p.Result.Processed)/float64(p.Total))
		full := int(frac * barWidth)
		fmt.Fprintf(&s, "[%s%s] %3.0f%% ", strings.Repeat("#", full), strings.Repeat(".", barWidth-full), frac*100)
	}
	r := p.Result
	fmt.Fprintf(&s, "processed=%d moved=%d deleted=%d errors=%d %.1fs", r.Processed, r.Moved, r.Deleted, r.Errors, now.Sub(b.start).Seconds())
	return s.String()
}

// finish clears the line, so the summary that follows starts clean.
func (b *progressBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.drawn.IsZero() {
		fmt.Fprint(b.w, "\r\x1b[K")
	}
}
