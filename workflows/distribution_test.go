package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/activities"
)

type updateOutcome struct {
	rejected error
	done     bool
}

type recordUpdate struct{ out *updateOutcome }

func (r recordUpdate) Accept()                     {}
func (r recordUpdate) Reject(err error)            { r.out.rejected = err }
func (r recordUpdate) Complete(interface{}, error) { r.out.done = true }

func errType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}

// Edges that never answer: OPENING times out into ERROR; meanwhile a
// change is refused as in progress; in ERROR a suspend is the wrong state;
// a delete is accepted and ends the entity in CLOSE.
func TestDistributionStateMachineGuards(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(DistributionWorkflow)
	env.OnActivity(distributionActivities.RequestEdgeApply, mock.Anything, mock.Anything).Return(func(context.Context, activities.EdgeApplyRequest) error { return nil })
	var duringOpen, inError, deleted updateOutcome
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateSuspend, "u1", recordUpdate{&duringOpen})
	}, time.Second)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateSuspend, "u2", recordUpdate{&inError})
		env.UpdateWorkflow(UpdateDelete, "u3", recordUpdate{&deleted})
	}, 10*time.Minute)
	env.ExecuteWorkflow(DistributionWorkflow, DistributionInit{
		State:   activities.DistributionState{AppKey: "k", Domain: "d.test", Status: activities.StatusOpening},
		EdgeIDs: []string{"E1"}, ApplyTimeout: time.Minute,
	})
	var st activities.DistributionState
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if errType(duringOpen.rejected) != ErrOperationInFlight {
		t.Fatalf("update while OPENING: %v", duringOpen.rejected)
	}
	if errType(inError.rejected) != ErrInvalidState {
		t.Fatalf("suspend in ERROR: %v", inError.rejected)
	}
	if deleted.rejected != nil || !deleted.done || st.Status != activities.StatusClose || st.DeleteTime == 0 {
		t.Fatalf("delete: %+v, state %+v", deleted, st)
	}
	if st.LastError == "" {
		t.Fatalf("ERROR without a reason: %+v", st)
	}
}
