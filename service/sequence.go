package service

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/cdnflow/cdnflow/workflows"
)

// NextSeq returns the next number of a durable counter ("purge", ...),
// starting the counter's workflow on first use.
func (s *Service) NextSeq(ctx context.Context, counter string) (int64, error) {
	return s.reserveSeqs(ctx, counter, workflows.UpdateNextSeq)
}

// ReserveSeqs returns the first of n consecutive numbers of a counter.
func (s *Service) ReserveSeqs(ctx context.Context, counter string, n int) (int64, error) {
	return s.reserveSeqs(ctx, counter, workflows.UpdateReserveSeqs, n)
}

func (s *Service) reserveSeqs(ctx context.Context, counter, update string, args ...any) (int64, error) {
	start := s.temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       workflows.SequenceWorkflowID(counter),
		TaskQueue:                s.config.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
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
		return 0, fmt.Errorf("next %s seq: %w", counter, err)
	}
	var seq int64
	if err := h.Get(ctx, &seq); err != nil {
		return 0, fmt.Errorf("next %s seq: %w", counter, err)
	}
	return seq, nil
}
