package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/workflows"
)

// Scheduled submits scheduled jobs through the service layer.
type Scheduled struct {
	Service *service.Service
}

// RunScheduledJob starts the prewarm or purge of one scheduled run. The
// idempotency key is the run's workflow id, so a retried activity does not
// start the prewarm twice.
func (a *Scheduled) RunScheduledJob(ctx context.Context, job workflows.ScheduledJob) (workflows.ScheduledRun, error) {
	var run workflows.ScheduledRun
	switch job.Kind {
	case workflows.KindPrewarm:
		var req service.PrewarmRequest
		if err := json.Unmarshal(job.Body, &req); err != nil {
			return run, temporal.NewNonRetryableApplicationError("prewarm body: "+err.Error(), "InvalidRequest", err)
		}
		id, err := a.Service.StartPrewarm(ctx, req, "schedule/"+activity.GetInfo(ctx).WorkflowExecution.ID)
		run.RequestID = id
		return run, classify(err)
	case workflows.KindPurge:
		var req service.PurgeRequest
		if err := json.Unmarshal(job.Body, &req); err != nil {
			return run, temporal.NewNonRetryableApplicationError("purge body: "+err.Error(), "InvalidRequest", err)
		}
		res, err := a.Service.StartPurge(ctx, job.AppKey, req)
		run.PurgeSeqs = res.PurgeSeqs
		return run, classify(err)
	}
	return run, temporal.NewNonRetryableApplicationError("unknown scheduled job kind "+job.Kind, "InvalidRequest", nil)
}

// classify makes input errors final; others (Temporal briefly away, rate
// limit) are retried.
func classify(err error) error {
	var ve *service.ValidationError
	if errors.As(err, &ve) || errors.Is(err, service.ErrUnknownDomain) {
		return temporal.NewNonRetryableApplicationError(err.Error(), "InvalidRequest", err)
	}
	if err != nil {
		return fmt.Errorf("scheduled job: %w", err)
	}
	return nil
}
