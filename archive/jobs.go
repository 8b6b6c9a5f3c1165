package archive

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/shopdesk/shopdesk/session"
)

// Flusher moves messages from the hot tier to the warm store: session.RedisLog.
type Flusher interface {
	Flush(ctx context.Context, maxMessages int) (session.FlushStats, error)
}

// DefaultFlushBatch is how many messages one Flush call of the flush job moves at most.
const DefaultFlushBatch = 5000

// WarmMarker is a Flusher that keeps a watermark of its tier: every message appended before the
// mark is warm (session.RedisLog). The flush job raises it after each run that drains the tier.
type WarmMarker interface {
	MarkWarmBefore(ctx context.Context, t time.Time) error
}

// ShardedFlusher is a Flusher whose work splits by conversation into shards that may flush at once.
type ShardedFlusher interface {
	Flusher
	FlushShard(ctx context.Context, maxMessages, shard, shards int) (session.FlushStats, error)
}

// FlushShards is how many flushes of a ShardedFlusher the flush job runs at once: each waits on its
// own round trips, so two keep Redis and the warm store busier than one.
const FlushShards = 2

// FlushJob is the flush job hot → warm as a scheduler job: it flushes batches of at most batch
// messages (0: DefaultFlushBatch) until the hot tier is drained, the flush fails or the run's lease
// runs out (the next run goes on; flushing deletes nothing, so the lease only keeps runs from
// piling up). Conflicts (a warm row with another client_msg_id) count as errors to alarm on. A
// ShardedFlusher is flushed FlushShards shards at a time. A run that drains the tier raises a
// WarmMarker's mark to the time it started: what was appended before then is warm now.
func FlushJob(f Flusher, batch int) JobFunc {
	if batch <= 0 {
		batch = DefaultFlushBatch
	}
	type flushFunc = func(context.Context, int) (session.FlushStats, error)
	shards := []flushFunc{f.Flush}
	if sf, ok := f.(ShardedFlusher); ok {
		shards = make([]flushFunc, FlushShards)
		for k := range shards {
			shards[k] = func(ctx context.Context, n int) (session.FlushStats, error) {
				return sf.FlushShard(ctx, n, k, FlushShards)
			}
		}
	}
	return func(ctx context.Context) (JobResult, error) {
		start := time.Now()
		var mu sync.Mutex
		var total JobResult
		report := func(d JobResult) {
			mu.Lock()
			total.Processed += d.Processed
			total.Moved += d.Moved
			total.Errors += d.Errors
			t := total
			mu.Unlock()
			ReportProgress(ctx, Progress{Result: t})
		}
		drained := make([]bool, len(shards))
		errs := make([]error, len(shards))
		var wg sync.WaitGroup
		for k, flush := range shards {
			wg.Add(1)
			go func() {
				defer wg.Done()
				drained[k], errs[k] = flushLoop(ctx, batch, flush, report)
			}()
		}
		wg.Wait()
		err := errors.Join(errs...)
		if m, ok := f.(WarmMarker); ok && err == nil && !slices.Contains(drained, false) {
			err = m.MarkWarmBefore(ctx, start)
		}
		return total, err
	}
}

// flushLoop flushes batches with flush, handing report each batch's figures, until a batch comes
// back short (drained), a flush fails or the lease runs out.
func flushLoop(ctx context.Context, batch int, flush func(context.Context, int) (session.FlushStats, error), report func(JobResult)) (drained bool, err error) {
	lease := LeaseFrom(ctx)
	for ctx.Err() == nil && lease.Held(ctx) {
		st, err := flush(ctx, batch)
		if d := (JobResult{Processed: int64(st.Messages), Moved: int64(st.Messages - st.Conflicts), Errors: int64(st.Conflicts)}); d.Processed > 0 {
			report(d)
		}
		if err != nil {
			return false, err
		}
		if st.Messages < batch {
			return true, nil
		}
	}
	return false, ctx.Err()
}
