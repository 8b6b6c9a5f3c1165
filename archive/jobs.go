package archive

import (
	"context"

	"github.com/shopdesk/shopdesk/session"
)

// Flusher moves messages from the hot tier to the warm store: session.RedisLog.
type Flusher interface {
	Flush(ctx context.Context, maxMessages int) (session.FlushStats, error)
}

// FlushJob is the flush job hot → warm as a scheduler job: one Flush of at most maxMessages (0: the
// flusher's default). Conflicts (a warm row with another client_msg_id) count as errors to alarm on.
func FlushJob(f Flusher, maxMessages int) JobFunc {
	return func(ctx context.Context) (JobResult, error) {
		st, err := f.Flush(ctx, maxMessages)
		return JobResult{Processed: int64(st.Messages), Moved: int64(st.Messages - st.Conflicts), Errors: int64(st.Conflicts)}, err
	}
}
