package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/workflows"
)

// SubmitScheduledJob starts the prewarm or purge of one scheduled run
// (activities.JobSubmitter): job.Body is the API body of job.Kind, and
// idempotencyKey makes a retried run start its prewarm once. Input errors
// (a body that does not decode or validate, an unknown domain or kind) are
// non-retryable activities.ErrInvalidRequest errors; others (Temporal
// briefly away, rate limit) are returned for a retry.
func (s *Service) SubmitScheduledJob(ctx context.Context, job activities.ScheduledJob, idempotencyKey string) (activities.ScheduledRun, error) {
	var run activities.ScheduledRun
	switch job.Kind {
	case workflows.KindPrewarm:
		var req PrewarmRequest
		if err := json.Unmarshal(job.Body, &req); err != nil {
			return run, temporal.NewNonRetryableApplicationError("prewarm body: "+err.Error(), activities.ErrInvalidRequest, err)
		}
		if job.AppKey != "" {
			// The run acts for the appKey the schedule was created on, and
			// only on it: a domain that moved to another appKey since is
			// refused (ErrForbidden), not warmed or purged.
			ctx = WithGrant(ctx, Grant{Verbs: []string{VerbPrewarm, VerbPurge}, AppKeys: []string{job.AppKey}})
		}
		id, err := s.StartPrewarm(ctx, req, idempotencyKey)
		run.RequestID = id
		return run, classifyScheduled(err)
	case workflows.KindPurge:
		var req PurgeRequest
		if err := json.Unmarshal(job.Body, &req); err != nil {
			return run, temporal.NewNonRetryableApplicationError("purge body: "+err.Error(), activities.ErrInvalidRequest, err)
		}
		res, err := s.StartPurge(ctx, job.AppKey, req)
		run.PurgeSeqs = res.PurgeSeqs
		return run, classifyScheduled(err)
	}
	return run, temporal.NewNonRetryableApplicationError("unknown scheduled job kind "+job.Kind, activities.ErrInvalidRequest, nil)
}

// classifyScheduled makes input errors and refusals final; others (Temporal briefly
// away, rate limit) are retried.
func classifyScheduled(err error) error {
	var ve *ValidationError
	if errors.As(err, &ve) || errors.Is(err, ErrUnknownDomain) || errors.Is(err, ErrForbidden) {
		return temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrInvalidRequest, err)
	}
	if err != nil {
		return fmt.Errorf("scheduled job: %w", err)
	}
	return nil
}

// ScheduledRunDone tells whether the job a scheduled run started has
// ended (activities.RunWatcher): its prewarm workflow, or every purge seq
// workflow, is closed. A run waits for a prewarm at most its longest
// timeout (MaxPrewarmTimeout) and for a purge at most the purge deadline
// (a catch-up owed to an edge that stayed down goes on without it).
func (s *Service) ScheduledRunDone(ctx context.Context, job activities.ScheduledJob, run activities.ScheduledRun) (bool, time.Duration, error) {
	var ids []string
	limit := MaxPrewarmTimeout
	switch job.Kind {
	case workflows.KindPrewarm:
		if run.RequestID != "" {
			ids = append(ids, workflows.PrewarmWorkflowID(run.RequestID))
		}
	case workflows.KindPurge:
		limit = s.config.PurgeDeadline
		for _, seq := range run.PurgeSeqs {
			ids = append(ids, workflows.PurgeWorkflowID(job.AppKey, seq))
		}
	}
	for _, id := range ids {
		desc, err := s.temporal.DescribeWorkflowExecution(ctx, id, "")
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return false, limit, fmt.Errorf("scheduled run: describe %s: %w", id, err)
		}
		if desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return false, limit, nil
		}
	}
	return true, limit, nil
}
