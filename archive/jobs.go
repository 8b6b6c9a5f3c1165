package archive

import (
	"context"
	"errors"
	"sync"

	"github.com/shopdesk/shopdesk/session"
)

// Flusher moves messages from the hot tier to the warm store: session.RedisLog.
type Flusher interface {
	Flush(ctx context.Context, maxMessages int) (session.FlushStats, error)
}

// DefaultFlushBatch is how many messages one Flush call of the flush job moves at most.
const DefaultFlushBatch = 5000

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
// ShardedFlusher is flushed FlushShards shards at a time.
func FlushJob(f Flusher, batch int) JobFunc {
	if batch <= 0 {
		batch = DefaultFlushBatch
	}
	return func(ctx context.Context) (JobResult, error) {
		sf, ok := f.(ShardedFlusher)
		if !ok {
			return flushLoop(ctx, batch, f.Flush, nil)
		}
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
		errs := make([]error, FlushShards)
		var wg sync.WaitGroup
		for k := 0; k < FlushShards; k++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[k] = flushLoop(ctx, batch, func(ctx context.Context, n int) (session.FlushStats, error) {
					return sf.FlushShard(ctx, n, k, FlushShards)
				}, report)
			}()
		}
		wg.Wait()
		return total, errors.Join(errs...)
	}
}

// flushLoop flushes batches with flush until a batch comes back short, a flush fails or the lease
// runs out; report, when set, gets each batch's figures instead of ReportProgress.
func flushLoop(ctx context.Context, batch int, flush func(context.Context, int) (session.FlushStats, error), report func(JobResult)) (JobResult, error) {
	var res JobResult
	lease := LeaseFrom(ctx)
	for ctx.Err() == nil && lease.Held(ctx) {
		st, err := flush(ctx, batch)
		d := JobResult{Processed: int64(st.Messages), Moved: int64(st.Messages - st.Conflicts), Errors: int64(st.Conflicts)}
		res.Processed += d.Processed
		res.Moved += d.Moved
		res.Errors += d.Errors
		if err != nil {
			return res, err
		}
		if report != nil {
			if d.Processed > 0 {
				report(d)
			}
		} else {
			ReportProgress(ctx, Progress{Result: res})
		}
		if st.Messages < batch {
			break
		}
	}
	return res, ctx.Err()
}
