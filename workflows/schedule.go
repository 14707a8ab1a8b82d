package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
)

// ActivityRunScheduledJob starts the job of one scheduled run.
const ActivityRunScheduledJob = "RunScheduledJob"

// ScheduledJobWorkflow is what a schedule starts each time it fires: it
// submits the job through the same service code as the API, so a
// scheduled run is validated, rate-limited and numbered like any other.
func ScheduledJobWorkflow(ctx workflow.Context, job activities.ScheduledJob) (activities.ScheduledRun, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts:        5,
			NonRetryableErrorTypes: []string{activities.ErrInvalidRequest},
		},
	})
	var run activities.ScheduledRun
	err := workflow.ExecuteActivity(ctx, ActivityRunScheduledJob, job).Get(ctx, &run)
	return run, err
}
