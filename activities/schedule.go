package activities

import (
	"context"

	"go.temporal.io/sdk/activity"
)

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

// JobSubmitter submits a scheduled job like an API request, so it is
// validated, rate-limited and numbered like any other; service.Service
// implements it (service/schedule_run.go). Input that no longer validates
// is returned as a non-retryable ErrInvalidRequest; other errors are
// retried.
type JobSubmitter interface {
	SubmitScheduledJob(ctx context.Context, job ScheduledJob, idempotencyKey string) (ScheduledRun, error)
}

// Scheduled submits scheduled jobs through the service layer.
type Scheduled struct {
	Jobs JobSubmitter
}

// RunScheduledJob starts the prewarm or purge of one scheduled run. The
// idempotency key is the run's workflow id, so a retried activity does not
// start the prewarm twice.
func (a *Scheduled) RunScheduledJob(ctx context.Context, job ScheduledJob) (ScheduledRun, error) {
	return a.Jobs.SubmitScheduledJob(ctx, job, "schedule/"+activity.GetInfo(ctx).WorkflowExecution.ID)
}
