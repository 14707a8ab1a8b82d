package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ActivityRunScheduledJob starts the job of one scheduled run.
const ActivityRunScheduledJob = "RunScheduledJob"

// ScheduledJob is the action of a Temporal Schedule: a prewarm or purge
// request exactly as the API takes it. Bodies are JSON so the workflow
// stays independent of the API's types.
type ScheduledJob struct {
	ScheduleID string `json:"scheduleId"`
	Kind       string `json:"kind"` // prewarm or purge
	AppKey     string `json:"appKey,omitempty"`
	Body       []byte `json:"body"`
}

// ScheduledRun is what one run started.
type ScheduledRun struct {
	RequestID string  `json:"requestID,omitempty"`
	PurgeSeqs []int64 `json:"purgeSeqs,omitempty"`
}

// ScheduledJobWorkflow is what a schedule starts each time it fires: it
// submits the job through the same service code as the API, so a
// scheduled run is validated, rate-limited and numbered like any other.
func ScheduledJobWorkflow(ctx workflow.Context, job ScheduledJob) (ScheduledRun, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts:        5,
			NonRetryableErrorTypes: []string{"InvalidRequest"},
		},
	})
	var run ScheduledRun
	err := workflow.ExecuteActivity(ctx, ActivityRunScheduledJob, job).Get(ctx, &run)
	return run, err
}
