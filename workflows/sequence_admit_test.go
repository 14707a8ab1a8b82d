package workflows

import (
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// One admit-purge update applies the purge rate limit and
// reserves the seqs. Within the interval the same limit key is refused
// (ErrPurgeRateLimited, naming the scope and interval) and takes no seq;
// another key is not held back; after the interval the key is admitted
// again, its seqs following the others.
func TestAdmitPurgeLimitsAndReserves(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	var got []updateResult
	admit := func(at time.Duration, a AdmitPurge) {
		env.RegisterDelayedCallback(func() { env.UpdateWorkflow(UpdateAdmitPurge, "", collectCallback{out: &got}, a) }, at)
	}
	items := AdmitPurge{Key: "app/items", Scope: "items", Every: time.Second, N: 3}
	admit(time.Millisecond, items)
	admit(500*time.Millisecond, items)                                                                    // refused: 0.5 s after
	admit(600*time.Millisecond, AdmitPurge{Key: "other/items", Scope: "items", Every: time.Second, N: 1}) // other appKey
	admit(700*time.Millisecond, AdmitPurge{Key: "app/all/d", Scope: "all/d", N: 2})                       // no limit
	admit(1100*time.Millisecond, items)                                                                   // 1.1 s after: admitted
	admit(1200*time.Millisecond, AdmitPurge{Key: "app/items", Scope: "items", Every: time.Second, N: 0})
	env.RegisterDelayedCallback(env.CancelWorkflow, 5*time.Second)
	env.ExecuteWorkflow(SequenceWorkflow, SequenceState{Last: 10})
	if len(got) != 6 {
		t.Fatalf("got %d answers: %+v", len(got), got)
	}
	var appErr *temporal.ApplicationError
	if !errors.As(got[1].err, &appErr) || appErr.Type() != ErrPurgeRateLimited || appErr.Message() != "purges of this appKey (items) are limited to one per 1s" {
		t.Fatalf("second request 0.5 s after the first = %+v, want an %s refusal", got[1], ErrPurgeRateLimited)
	}
	want := []int64{11, 0, 14, 15, 17}
	for i, w := range want {
		if i != 1 && (got[i].err != nil || got[i].val != w) {
			t.Fatalf("answer %d = %+v, want seq %d (all answers %+v)", i, got[i], w, got)
		}
	}
	if got[5].err == nil {
		t.Fatalf("a request for 0 seqs was admitted: %+v", got[5])
	}
}

// The holds are carried across continue-as-new, and expired ones are
// dropped when a new one is taken, so the state stays small.
func TestAdmitPurgeHoldsSurviveContinueAsNew(t *testing.T) {
	defer func(n int) { seqHandoutsPerRun = n }(seqHandoutsPerRun)
	seqHandoutsPerRun = 2
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	var got []updateResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateAdmitPurge, "", collectCallback{out: &got}, AdmitPurge{Key: "a/items", Scope: "items", Every: time.Second, N: 1})
	}, time.Millisecond)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateAdmitPurge, "", collectCallback{out: &got}, AdmitPurge{Key: "b/all/d", Scope: "all/d", Every: time.Hour, N: 1})
	}, 2*time.Second)
	env.ExecuteWorkflow(SequenceWorkflow, SequenceState{})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !asContinueAsNew(err, &can) {
		t.Fatalf("want continue-as-new after 2 handouts, got %v (answers %+v)", err, got)
	}
	var next SequenceState
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.Last != 2 || len(next.Held) != 1 || next.Held["b/all/d"] == 0 {
		t.Fatalf("carried %+v, want last 2 and only b's hold (a's expired)", next)
	}
}
