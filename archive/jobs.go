package archive

import (
	"context"

	"github.com/shopdesk/shopdesk/session"
)

// Flusher moves messages from the hot tier to the warm store: session.RedisLog.
type Flusher interface {
	Flush(ctx context.Context, maxMessages int) (session.FlushStats, error)
}

// DefaultFlushBatch is how many messages one Flush call of the flush job moves at most.
const DefaultFlushBatch = 5000

// FlushJob is the flush job hot → warm as a scheduler job: it flushes batches of at most batch
// messages (0: DefaultFlushBatch) until the hot tier is drained, the flush fails or the run's lease
// runs out (the next run goes on; flushing deletes nothing, so the lease only keeps runs from
// piling up). Conflicts (a warm row with another client_msg_id) count as errors to alarm on.
func FlushJob(f Flusher, batch int) JobFunc {
	if batch <= 0 {
		batch = DefaultFlushBatch
	}
	return func(ctx context.Context) (JobResult, error) {
		var res JobResult
		lease := LeaseFrom(ctx)
		for ctx.Err() == nil && lease.Held(ctx) {
			st, err := f.Flush(ctx, batch)
			res.Processed += int64(st.Messages)
			res.Moved += int64(st.Messages - st.Conflicts)
			res.Errors += int64(st.Conflicts)
			if err != nil {
				return res, err
			}
			ReportProgress(ctx, Progress{Result: res})
			if st.Messages < batch {
				break
			}
		}
		return res, ctx.Err()
	}
}
