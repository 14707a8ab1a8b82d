package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"
)

// A claim held by one owner refuses every other owner (naming the host
// only), takes its own owner again, ignores a release by anyone else and
// ends once its owner releases it.
func TestHostClaimOneOwner(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(HostWorkflow)
	env.RegisterActivity(&HostActivities{})
	env.OnActivity(hostActivities.CheckHostOwner, mock.Anything, mock.Anything).Return(true, nil)
	demo := HostOwner{AppKey: "demo", Domain: "a1.cdn.test"}
	other := HostOwner{AppKey: "other", Domain: "b2.cdn.test"}
	var byOther, byDemo updateOutcome
	var ownerAfterForeignRelease HostOwner
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateClaimHost, "c1", recordUpdate{&byOther}, other)
		env.UpdateWorkflow(UpdateClaimHost, "c2", recordUpdate{&byDemo}, demo)
		env.SignalWorkflow(SignalReleaseHost, other)
	}, time.Second)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryHostOwner)
		if err == nil {
			_ = v.Get(&ownerAfterForeignRelease)
		}
		env.SignalWorkflow(SignalReleaseHost, demo)
	}, 2*time.Hour)
	env.ExecuteWorkflow(HostWorkflow, HostState{Host: "www.shop.test", Owner: demo})
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("completed %v, error %v", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}
	if errType(byOther.rejected) != ErrHostInUse || byOther.rejected.Error() == "" {
		t.Fatalf("other's claim: %v", byOther.rejected)
	}
	if msg := byOther.rejected.Error(); !contains(msg, "host www.shop.test is already in use") || contains(msg, "demo") || contains(msg, "a1.cdn.test") {
		t.Fatalf("refusal names more than the host: %q", msg)
	}
	if byDemo.rejected != nil || !byDemo.done {
		t.Fatalf("demo's own claim: %+v", byDemo)
	}
	if ownerAfterForeignRelease != demo {
		t.Fatalf("owner after other's release = %+v, want demo", ownerAfterForeignRelease)
	}
}

// A claim whose owner never came to exist (the check answers no) frees
// the host after HostClaimGrace and the workflow ends.
func TestHostClaimWithoutOwnerIsDropped(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(HostWorkflow)
	env.RegisterActivity(&HostActivities{})
	checks := 0
	env.OnActivity(hostActivities.CheckHostOwner, mock.Anything, mock.Anything).Return(func(context.Context, HostCheck) (bool, error) {
		checks++
		return false, nil
	})
	start := env.Now()
	env.ExecuteWorkflow(HostWorkflow, HostState{Host: "www.shop.test", Owner: HostOwner{AppKey: "x", Domain: "never.cdn.test"}})
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("completed %v, error %v", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}
	if took := env.Now().Sub(start); checks != 1 || took < HostClaimGrace-time.Second || took > HostClaimGrace+time.Minute {
		t.Fatalf("checks %d, freed after %v; want 1 check at %v", checks, took, HostClaimGrace)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
