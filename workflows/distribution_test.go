package workflows

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/distribution"
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

// Edges that never answer: OPENING ends in ERROR once its tries are
// spent; meanwhile a change is refused as in progress; in ERROR a suspend
// is the wrong state; a delete is accepted and ends the entity in CLOSE.
func TestDistributionStateMachineGuards(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(DistributionWorkflow)
	// The worker's knobs, not the workflow's input, bound the tries.
	env.RegisterActivity(&activities.Knobs{EdgeApplyAttempts: 3, EdgeErrorRetry: time.Hour})
	tries := 0
	env.OnActivity(distributionActivities.ApplySite, mock.Anything, mock.Anything).Return(func(context.Context, activities.ApplySiteInput) error {
		tries++
		return errors.New("edge E1: connection refused")
	})
	var duringOpen, inError, deleted updateOutcome
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateSuspend, "u1", recordUpdate{&duringOpen})
	}, time.Second)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateSuspend, "u2", recordUpdate{&inError})
		env.UpdateWorkflow(UpdateDelete, "u3", recordUpdate{&deleted})
	}, 10*time.Minute)
	env.ExecuteWorkflow(DistributionWorkflow, DistributionInit{
		State: distribution.State{AppKey: "k", Domain: "d.test", Status: distribution.StatusOpening},
	})
	var st distribution.State
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if errType(duringOpen.rejected) != ErrOperationInFlight {
		t.Fatalf("update while OPENING: %v", duringOpen.rejected)
	}
	if errType(inError.rejected) != ErrInvalidState {
		t.Fatalf("suspend in ERROR: %v", inError.rejected)
	}
	if deleted.rejected != nil || !deleted.done || st.Status != distribution.StatusClose || st.DeleteTime == 0 {
		t.Fatalf("delete: %+v, state %+v", deleted, st)
	}
	if !strings.Contains(st.LastError, "connection refused") {
		t.Fatalf("ERROR without the edge's reason: %+v", st)
	}
	// OPENING: 3 tries, then taking the site off again: 3; delete: 3.
	if tries != 9 {
		t.Fatalf("%d tries of ApplySite, want 9 (ApplyAttempts 3 per change)", tries)
	}
}

// A change in ERROR because an edge was unreachable is tried again by the
// workflow itself, with growing waits, and goes OPEN once the edge is back.
func TestDistributionErrorRetried(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(DistributionWorkflow)
	env.RegisterActivity(&activities.Knobs{EdgeApplyAttempts: 2, EdgeErrorRetry: time.Minute})
	var down bool = true
	var errorSeen bool
	env.OnActivity(distributionActivities.ApplySite, mock.Anything, mock.Anything).Return(func(context.Context, activities.ApplySiteInput) error {
		if down {
			return errors.New("edge E1: connection refused")
		}
		return nil
	})
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryDistribution)
		if err != nil {
			t.Error(err)
			return
		}
		var st distribution.State
		_ = v.Get(&st)
		errorSeen = st.Status == distribution.StatusError
		down = false // the edge is back
	}, 3*time.Minute)
	var after distribution.State
	env.RegisterDelayedCallback(func() {
		v, _ := env.QueryWorkflow(QueryDistribution)
		_ = v.Get(&after)
		env.UpdateWorkflow(UpdateDelete, "del", recordUpdate{&updateOutcome{}})
	}, 20*time.Minute)
	env.ExecuteWorkflow(DistributionWorkflow, DistributionInit{
		State: distribution.State{AppKey: "k", Domain: "d.test", Status: distribution.StatusOpening},
	})
	if !errorSeen {
		t.Fatal("the distribution was not in ERROR while the edge was down")
	}
	if after.Status != distribution.StatusOpen || after.LastError != "" {
		t.Fatalf("after the edge came back: %+v, want OPEN without an error", after)
	}
}
