package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
)

// Defaults of the worker's knobs, used where a worker gives none.
const (
	defaultHeartbeatTimeout  = 30 * time.Second
	defaultEdgeApplyAttempts = 10
	defaultEdgeErrorRetry    = time.Minute
)

// workerKnobs asks the worker running this workflow task for its Knobs
// (activities.Knobs.WorkerKnobs, a local activity whose result history
// records, so replays see the same values), with defaults for what it
// leaves unset or when it cannot answer.
func workerKnobs(ctx workflow.Context) activities.Knobs {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: 10 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var k *activities.Knobs
	var got activities.Knobs
	if err := workflow.ExecuteLocalActivity(lctx, k.WorkerKnobs).Get(ctx, &got); err != nil {
		workflow.GetLogger(ctx).Warn("worker knobs unavailable; using defaults", "error", err)
	}
	if got.HeartbeatTimeout <= 0 {
		got.HeartbeatTimeout = defaultHeartbeatTimeout
	}
	if got.EdgeApplyAttempts <= 0 {
		got.EdgeApplyAttempts = defaultEdgeApplyAttempts
	}
	if got.EdgeErrorRetry <= 0 {
		got.EdgeErrorRetry = defaultEdgeErrorRetry
	}
	return got
}
