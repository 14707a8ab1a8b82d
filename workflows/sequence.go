package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"
)

// MaxReserveSeqs bounds one reservation.
const MaxReserveSeqs = 10000

// SequenceState is carried across continue-as-new.
type SequenceState struct {
	Last int64 `json:"last"`
	// Held maps a purge limit key (UpdateAdmitPurge) to the epoch ms until
	// which it refuses requests.
	Held map[string]int64 `json:"held,omitempty"`
}

// seqHandoutsPerRun bounds history: each handout is a few events.
var seqHandoutsPerRun = 1000

// SequenceWorkflow is a durable counter: NHN's purgeSeq and similar ids are
// integers that must never repeat, and Temporal serialises the updates, so no
// second database is needed. Update ids make a retried request idempotent
// within a run.
func SequenceWorkflow(ctx workflow.Context, st SequenceState) error {
	handedOut := 0
	if err := workflow.SetUpdateHandler(ctx, UpdateNextSeq, func(ctx workflow.Context) (int64, error) {
		st.Last++
		handedOut++
		return st.Last, nil
	}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateReserveSeqs, func(ctx workflow.Context, n int) (int64, error) {
		first := st.Last + 1
		st.Last += int64(n)
		handedOut++
		return first, nil
	}, workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, n int) error {
		if n < 1 || n > MaxReserveSeqs {
			return fmt.Errorf("reserve %d seqs: must be 1 to %d", n, MaxReserveSeqs)
		}
		return nil
	}}); err != nil {
		return err
	}
	// Rate limit and seqs of a purge in one update; a refusal
	// is the validator's, so it leaves no event in the history.
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateAdmitPurge, func(ctx workflow.Context, a AdmitPurge) (int64, error) {
		first, err := admitPurge(ctx, &st, a)
		if err == nil {
			handedOut++
		}
		return first, err
	}, workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, a AdmitPurge) error {
		return admitHeld(ctx, &st, a)
	}}); err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(ctx, QuerySequenceLast, func() (int64, error) { return st.Last, nil }); err != nil {
		return err
	}
	err := workflow.Await(ctx, func() bool {
		return handedOut >= seqHandoutsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
	})
	if err != nil {
		return err
	}
	// Let accepted updates finish before the run ends, so none is lost.
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	return workflow.NewContinueAsNewError(ctx, SequenceWorkflow, st)
}
