package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/distribution"
)

func cfgPath(p string) distribution.Config {
	return distribution.Config{Region: "GLOBAL", Origins: []distribution.Origin{{Origin: "o.test", Port: 80, OriginPath: p}}}
}

// versionsEnv is a distribution workflow whose edges take every change.
func versionsEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *[]activities.ApplySiteInput) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(DistributionWorkflow)
	env.RegisterActivity(&activities.Knobs{EdgeApplyAttempts: 1, EdgeErrorRetry: time.Hour})
	env.OnActivity(distributionActivities.ProbeDistributionOrigins, mock.Anything, mock.Anything).Return(nil)
	var applied []activities.ApplySiteInput
	env.OnActivity(distributionActivities.ApplySite, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ApplySiteInput) error {
		applied = append(applied, in)
		return nil
	})
	return env, &applied
}

// Every accepted change is a version with its caller; a rollback makes a
// new version equal to the old one and applies it; a stale IfMatch and an
// unknown version are refused; versions survive continue-as-new.
func TestDistributionVersions(t *testing.T) {
	env, applied := versionsEnv(t)
	var outcomes []*updateOutcome
	step := func(at time.Duration, name string, arg any) *updateOutcome {
		o := &updateOutcome{}
		outcomes = append(outcomes, o)
		env.RegisterDelayedCallback(func() { env.UpdateWorkflow(name, name+at.String(), recordUpdate{o}, arg) }, at)
		return o
	}
	c2, c3 := cfgPath("/v2"), cfgPath("/v3")
	step(1*time.Minute, UpdateModify, ChangeRequest{Config: &c2, KeyID: "k", RequestID: "r2", IfMatch: 1})
	stale := step(2*time.Minute, UpdateModify, ChangeRequest{Config: &c3, KeyID: "k", RequestID: "stale", IfMatch: 1})
	step(3*time.Minute, UpdateModify, ChangeRequest{Config: &c3, KeyID: "k", RequestID: "r3"})
	step(4*time.Minute, UpdateSuspend, ChangeRequest{KeyID: "k", RequestID: "r4", IfMatch: 3})
	step(5*time.Minute, UpdateResume, ChangeRequest{KeyID: "k", RequestID: "r5"})
	unknown := step(6*time.Minute, UpdateRollback, RollbackRequest{Version: 99, KeyID: "k"})
	step(7*time.Minute, UpdateRollback, RollbackRequest{Version: 2, KeyID: "k", RequestID: "r6", IfMatch: 5, Immediate: true})
	var versions []distribution.Version
	var st distribution.State
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryVersions)
		if err == nil {
			err = v.Get(&versions)
		}
		if err == nil {
			v, err = env.QueryWorkflow(QueryDistribution)
		}
		if err == nil {
			err = v.Get(&st)
		}
		if err != nil {
			t.Error(err)
		}
		env.SetContinueAsNewSuggested(true)
	}, 8*time.Minute)
	env.ExecuteWorkflow(DistributionWorkflow, DistributionInit{
		State: distribution.State{AppKey: "k", Domain: "d.test", Status: distribution.StatusOpening, Config: cfgPath("/v1"), CreateTime: 1000},
	})
	if errType(stale.rejected) != ErrVersionMismatch {
		t.Fatalf("stale IfMatch: %v", stale.rejected)
	}
	if errType(unknown.rejected) != ErrUnknownVersion {
		t.Fatalf("unknown version: %v", unknown.rejected)
	}
	want := []struct {
		action, path, rid string
		susp              bool
	}{
		{distribution.ActionCreate, "/v1", "", false},
		{distribution.ActionModify, "/v2", "r2", false},
		{distribution.ActionModify, "/v3", "r3", false},
		{distribution.ActionSuspend, "/v3", "r4", true},
		{distribution.ActionResume, "/v3", "r5", false},
		{distribution.ActionRollback, "/v2", "r6", false},
	}
	if len(versions) != len(want) {
		t.Fatalf("versions = %+v", versions)
	}
	for i, w := range want {
		v := versions[i]
		if v.N != i+1 || v.Action != w.action || v.Config.Origins[0].OriginPath != w.path || v.RequestID != w.rid || v.Suspended != w.susp || (i > 0 && v.KeyID != "k") || v.At == 0 {
			t.Fatalf("version %d = %+v, want %+v", i+1, v, w)
		}
	}
	if versions[5].RollbackOf != 2 || st.Version != 6 || st.Status != distribution.StatusOpen || st.Config.Origins[0].OriginPath != "/v2" {
		t.Fatalf("after rollback: %+v, state %+v", versions[5], st)
	}
	if last := (*applied)[len(*applied)-1]; last.Spec.Config.Origins[0].OriginPath != "/v2" || last.Spec.Suspended {
		t.Fatalf("last applied = %+v", last.Spec)
	}
	// Continue-as-new carries the versions and the current number.
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next DistributionInit
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if len(next.Versions) != 6 || next.State.Version != 6 || next.Versions[5].RollbackOf != 2 {
		t.Fatalf("continued with %d versions, state version %d", len(next.Versions), next.State.Version)
	}
}

// Past MaxVersions the oldest go; the numbers go on, across
// continue-as-new too.
func TestDistributionVersionsKeepNewest(t *testing.T) {
	env, _ := versionsEnv(t)
	const edits = MaxVersions + 8
	for i := 0; i < edits; i++ {
		c := cfgPath("/e" + itoa(i))
		env.RegisterDelayedCallback(func() {
			env.UpdateWorkflow(UpdateModify, "m"+itoa(i), recordUpdate{&updateOutcome{}}, ChangeRequest{Config: &c, IfMatch: i + 1})
		}, time.Duration(i+1)*time.Minute)
	}
	var versions []distribution.Version
	old := &updateOutcome{}
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryVersions)
		if err != nil || v.Get(&versions) != nil {
			t.Error(err)
		}
		env.UpdateWorkflow(UpdateRollback, "old", recordUpdate{old}, RollbackRequest{Version: 2})
	}, time.Duration(edits+2)*time.Minute)
	env.RegisterDelayedCallback(func() { env.SetContinueAsNewSuggested(true) }, time.Duration(edits+3)*time.Minute)
	env.ExecuteWorkflow(DistributionWorkflow, DistributionInit{
		State: distribution.State{AppKey: "k", Domain: "d.test", Status: distribution.StatusOpening, Config: cfgPath("/v1")},
	})
	if len(versions) != MaxVersions || versions[0].N != edits+1-MaxVersions+1 || versions[MaxVersions-1].N != edits+1 {
		t.Fatalf("kept %d versions, %d..%d", len(versions), versions[0].N, versions[len(versions)-1].N)
	}
	if errType(old.rejected) != ErrUnknownVersion {
		t.Fatalf("rollback to a dropped version: %v", old.rejected)
	}
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next DistributionInit
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	// The next run keeps the newest MaxVersions and numbers on from them;
	// a rollback to the oldest kept one works.
	env2, applied := versionsEnv(t)
	rb := &updateOutcome{}
	oldest := next.Versions[0]
	env2.RegisterDelayedCallback(func() {
		env2.UpdateWorkflow(UpdateRollback, "rb", recordUpdate{rb}, RollbackRequest{Version: oldest.N, IfMatch: edits + 1})
	}, time.Minute)
	env2.RegisterDelayedCallback(func() {
		v, err := env2.QueryWorkflow(QueryVersions)
		if err != nil || v.Get(&versions) != nil {
			t.Error(err)
		}
		env2.UpdateWorkflow(UpdateDelete, "del", recordUpdate{&updateOutcome{}})
	}, 2*time.Minute)
	env2.ExecuteWorkflow(DistributionWorkflow, next)
	if rb.rejected != nil || len(versions) != MaxVersions || versions[0].N != oldest.N+1 || versions[MaxVersions-1].N != edits+2 || versions[MaxVersions-1].RollbackOf != oldest.N {
		t.Fatalf("after continue-as-new: rollback %v, %d versions %d..%d", rb.rejected, len(versions), versions[0].N, versions[len(versions)-1].N)
	}
	if got := (*applied)[0].Spec.Config.Origins[0].OriginPath; got != oldest.Config.Origins[0].OriginPath {
		t.Fatalf("rollback after continue-as-new applied %s, want %s", got, oldest.Config.Origins[0].OriginPath)
	}
}

func itoa(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }
