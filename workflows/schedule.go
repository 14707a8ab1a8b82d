package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
)

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
	var a *activities.Scheduled
	var run activities.ScheduledRun
	err := workflow.ExecuteActivity(ctx, a.RunScheduledJob, job).Get(ctx, &run)
	return run, err
}
