package service

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/workflows"
)

// ReserveSeqs returns the first of n consecutive numbers of a counter.
func (s *Service) ReserveSeqs(ctx context.Context, counter string, n int) (int64, error) {
	return s.reserveSeqs(ctx, counter, workflows.UpdateReserveSeqs, n)
}

func (s *Service) reserveSeqs(ctx context.Context, counter, update string, args ...any) (int64, error) {
	seq, err := s.updateCounter(ctx, counter, update, args...)
	if err != nil {
		return 0, fmt.Errorf("next %s seq: %w", counter, err)
	}
	return seq, nil
}

// updateCounter runs update with args on the counter's SequenceWorkflow,
// starting it when new (update-with-start), waits for the update to
// complete and answers its int64 result. Errors are Temporal's (a
// validator's refusal is an ApplicationError), unwrapped.
func (s *Service) updateCounter(ctx context.Context, counter, update string, args ...any) (int64, error) {
	start := s.temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       workflows.SequenceWorkflowID(counter),
		TaskQueue:                s.config.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		// The counters' workflow tasks (the admit-purge updates) go ahead
		// of the jobs' in the shared task queue: a backlog of prewarm
		// tasks never holds a purge's admission or refusal
		// (service/admission.go).
		Priority: temporal.Priority{PriorityKey: counterPriority},
	}, workflows.SequenceWorkflow, workflows.SequenceState{})
	h, err := s.temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			WorkflowID:   workflows.SequenceWorkflowID(counter),
			UpdateName:   update,
			Args:         args,
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return 0, err
	}
	var v int64
	if err := h.Get(ctx, &v); err != nil {
		return 0, err
	}
	return v, nil
}
