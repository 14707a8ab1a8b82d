package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
)

// scheduleWaitsForJob is the GetVersion change id of a scheduled run that
// waits for the job it started (version 1); runs recorded before it end
// once the job is submitted.
const scheduleWaitsForJob = "schedule-waits-for-job"

// ScheduledJobWorkflow is what a schedule starts each time it fires: it
// submits the job through the same service code as the API, so a
// scheduled run is validated, rate-limited and numbered like any other,
// then waits until that job has ended (AwaitScheduledRun). The run lasts
// as long as its job, so the schedule's overlap policy (SKIP, BUFFER_ONE,
// ...) applies to the job, not to a submission that ends in milliseconds.
func ScheduledJobWorkflow(ctx workflow.Context, job activities.ScheduledJob) (activities.ScheduledRun, error) {
	sctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts:        5,
			NonRetryableErrorTypes: []string{activities.ErrInvalidRequest},
		},
	})
	var a *activities.Scheduled
	var run activities.ScheduledRun
	if err := workflow.ExecuteActivity(sctx, a.RunScheduledJob, job).Get(ctx, &run); err != nil {
		return run, err
	}
	if workflow.GetVersion(ctx, scheduleWaitsForJob, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return run, nil
	}
	wctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// The watcher's limit ends the wait sooner: a prewarm's timeout
		// is at most 24 h, a purge's deadline the worker's setting.
		StartToCloseTimeout: 25 * time.Hour,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: 10 * time.Second, MaximumAttempts: 10},
	})
	if err := workflow.ExecuteActivity(wctx, a.AwaitScheduledRun, activities.ScheduledWait{Job: job, Run: run}).Get(ctx, nil); err != nil {
		// The job was started; only following it failed.
		workflow.GetLogger(ctx).Warn("scheduled run: stopped waiting for its job", "error", err)
	}
	return run, nil
}
