package loadtest

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"
)

// arrival classifies one message frame reaching a device.
type arrival int

const (
	arrivalFirst   arrival = iota // a (conversation, seq) the device had not seen, above every seq before it
	arrivalLate                   // not seen before, but below a seq the device already has: out of order
	arrivalDup                    // a second delivery of the same (conversation, seq)
	arrivalInvalid                // no usable seq
)

// maxSeq bounds the seqs receipts tracks, so a broken server cannot make the bench allocate without end.
const maxSeq = 1 << 30

// receipts is what one device has received: per conversation, a bitmap of seqs and the highest seq.
// Only the device's reader goroutine touches it while the run lasts.
type receipts map[int64]*convReceipts

type convReceipts struct {
	last int64
	seen []uint64
}

// observe records that (conv, seq) reached the device and says whether it was new, late or a duplicate.
func (r receipts) observe(conv, seq int64) arrival {
	if seq <= 0 || seq > maxSeq {
		return arrivalInvalid
	}
	c := r[conv]
	if c == nil {
		c = &convReceipts{}
		r[conv] = c
	}
	w, bit := seq/64, uint64(1)<<(seq%64)
	for int64(len(c.seen)) <= w {
		c.seen = append(c.seen, 0)
	}
	if c.seen[w]&bit != 0 {
		return arrivalDup
	}
	c.seen[w] |= bit
	if seq < c.last {
		return arrivalLate
	}
	c.last = seq
	return arrivalFirst
}

// has reports whether (conv, seq) reached the device.
func (r receipts) has(conv, seq int64) bool {
	c := r[conv]
	if c == nil || seq <= 0 {
		return false
	}
	w := seq / 64
	return w < int64(len(c.seen)) && c.seen[w]&(uint64(1)<<(seq%64)) != 0
}

// expected is an acked message and the device of the other side that must receive it (-1: none known).
type expected struct {
	device    int
	conv, seq int64
}

// countLost returns how many acked messages never reached the device that should have received them.
func countLost(acked []expected, devices []receipts) int64 {
	var lost int64
	for _, e := range acked {
		if e.device < 0 || e.device >= len(devices) || !devices[e.device].has(e.conv, e.seq) {
			lost++
		}
	}
	return lost
}

// percentileMs returns the p-th percentile (nearest rank) of sorted durations in milliseconds, 0 when empty.
func percentileMs(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return float64(sorted[rank-1]) / float64(time.Millisecond)
}

// summary is the outcome of a run, printed as the last line of stdout.
type summary struct {
	sent, acked, delivered, lost, dup int64
	msgsPerSec                        float64
	ackP50, ackP99, deliverP99        float64 // milliseconds
	idleConns                         int
	rssKiBPerIdleConn                 float64
}

// newSummary derives the rates and percentiles; ackLat and deliverLat are sorted in place.
func newSummary(sent, acked, delivered, lost, dup int64, measured time.Duration, ackLat, deliverLat []time.Duration,
	idleConns int, rssGrowth float64) summary {
	slices.Sort(ackLat)
	slices.Sort(deliverLat)
	s := summary{sent: sent, acked: acked, delivered: delivered, lost: lost, dup: dup, idleConns: idleConns,
		ackP50: percentileMs(ackLat, 50), ackP99: percentileMs(ackLat, 99), deliverP99: percentileMs(deliverLat, 99)}
	if measured > 0 {
		s.msgsPerSec = float64(delivered) / measured.Seconds()
	}
	if idleConns > 0 {
		s.rssKiBPerIdleConn = rssGrowth / 1024 / float64(idleConns)
	}
	return s
}

// String is the BENCH line; its fields and their order are part of the tool's interface.
func (s summary) String() string {
	return fmt.Sprintf("BENCH sent=%d acked=%d delivered=%d lost=%d dup=%d msgs_per_sec=%.2f ack_p50_ms=%.2f ack_p99_ms=%.2f deliver_p99_ms=%.2f idle_conns=%d rss_kib_per_idle_conn=%.2f",
		s.sent, s.acked, s.delivered, s.lost, s.dup, s.msgsPerSec, s.ackP50, s.ackP99, s.deliverP99, s.idleConns, s.rssKiBPerIdleConn)
}

// ok is the pass condition of the summary line: nothing lost, nothing twice, every send acked.
func (s summary) ok() bool {
	return s.lost == 0 && s.dup == 0 && s.acked == s.sent
}

// latencyHistogram counts latencies in power-of-two buckets of microseconds, from any goroutine, so
// that the progress lines can say how the run goes; takeP99 reads and resets it.
type latencyHistogram struct {
	buckets [40]atomic.Int64 // bucket i: below 2^i µs
}

func (h *latencyHistogram) add(d time.Duration) {
	us := uint64(max(d.Microseconds(), 0))
	h.buckets[min(bits.Len64(us), len(h.buckets)-1)].Add(1)
}

// takeP99 returns the upper bound of the bucket holding the 99th percentile of what was added since
// the last call (0 when nothing was), and starts over.
func (h *latencyHistogram) takeP99() time.Duration {
	var counts [len(h.buckets)]int64
	var total int64
	for i := range h.buckets {
		counts[i] = h.buckets[i].Swap(0)
		total += counts[i]
	}
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(0.99 * float64(total)))
	for i, n := range counts {
		if rank -= n; rank <= 0 {
			return time.Duration(1<<i) * time.Microsecond
		}
	}
	return time.Duration(1<<(len(counts)-1)) * time.Microsecond
}
