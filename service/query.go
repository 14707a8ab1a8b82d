package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
)

// ErrWorkersUnavailable means a workflow query got no answer in time: no
// worker is polling (all crashed or restarting). The workflow itself is
// safe in Temporal and continues when a worker is back.
var ErrWorkersUnavailable = errors.New("no worker answered in time; the job is safe and continues once a worker is running")

// queryBudget bounds a workflow query, retries included. A query is
// answered by a worker. Right after a worker crash, Temporal keeps sending
// queries of the workflows that worker had cached to its sticky queue, and
// each such attempt times out (5 s), until ~10 s after the dead worker's
// last poll; then queries go to the shared queue and a restarted worker
// answers. The budget covers that window, and bounds the wait when no
// worker runs at all.
const queryBudget = 15 * time.Second

// query runs a workflow query within queryBudget, retrying timed-out
// attempts, and turns running out of budget into ErrWorkersUnavailable.
func (s *Service) query(ctx context.Context, workflowID, name string, args ...any) (converter.EncodedValue, error) {
	return withinQueryBudget(ctx, workflowID, name, func(qctx context.Context) (converter.EncodedValue, error) {
		return s.temporal.QueryWorkflow(qctx, workflowID, "", name, args...)
	})
}

// queryOpen is query for a workflow that answers only while it runs: an
// ended one answers nil, nil, refused by the server without a worker
// replaying its history (QUERY_REJECT_CONDITION_NOT_OPEN).
func (s *Service) queryOpen(ctx context.Context, workflowID, name string) (converter.EncodedValue, error) {
	return withinQueryBudget(ctx, workflowID, name, func(qctx context.Context) (converter.EncodedValue, error) {
		resp, err := s.temporal.QueryWorkflowWithOptions(qctx, &client.QueryWorkflowWithOptionsRequest{
			WorkflowID: workflowID, QueryType: name, QueryRejectCondition: enumspb.QUERY_REJECT_CONDITION_NOT_OPEN,
		})
		if err != nil || resp.QueryRejected != nil {
			return nil, err
		}
		return resp.QueryResult, nil
	})
}

// withinQueryBudget runs one query attempt after another while they time
// out, within queryBudget.
func withinQueryBudget(ctx context.Context, workflowID, name string, attempt func(context.Context) (converter.EncodedValue, error)) (converter.EncodedValue, error) {
	qctx, cancel := context.WithTimeout(ctx, queryBudget)
	defer cancel()
	for {
		v, err := attempt(qctx)
		if err == nil || !timedOut(err) {
			return v, err
		}
		if ctx.Err() != nil {
			return nil, err // the caller gave up
		}
		if qctx.Err() != nil {
			return nil, fmt.Errorf("query %s of %s: %w", name, workflowID, ErrWorkersUnavailable)
		}
		select {
		case <-qctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func timedOut(err error) bool {
	var deadline *serviceerror.DeadlineExceeded
	return errors.As(err, &deadline) || errors.Is(err, context.DeadlineExceeded)
}
