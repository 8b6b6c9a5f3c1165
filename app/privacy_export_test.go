package app

import (
	"context"

	"github.com/shopdesk/shopdesk/archive"
)

// Retain runs the retention job over scope at once, as `shopdesk archive retention --shop --until`
// does, for the tests of package app_test.
func Retain(ctx context.Context, a *App, scope archive.Scope) (archive.JobResult, error) {
	return a.privacy.Retain(ctx, scope)
}

// RunJob runs a job registered on the node's scheduler at once, under its lease.
func RunJob(ctx context.Context, a *App, name string) (archive.JobResult, error) {
	return a.scheduler.RunNow(ctx, name)
}
