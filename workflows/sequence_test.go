package workflows

import (
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

type updateResult struct {
	val int64
	err error
}

type collectCallback struct {
	out *[]updateResult
}

func (c collectCallback) Accept() {}
func (c collectCallback) Reject(err error) {
	*c.out = append(*c.out, updateResult{err: err})
}
func (c collectCallback) Complete(success interface{}, err error) {
	v, _ := success.(int64)
	*c.out = append(*c.out, updateResult{val: v, err: err})
}

func TestSequenceHandsOutConsecutiveNumbersAndContinuesAsNew(t *testing.T) {
	defer func(n int) { seqHandoutsPerRun = n }(seqHandoutsPerRun)
	seqHandoutsPerRun = 20
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	var got []updateResult
	for i := 0; i < seqHandoutsPerRun; i++ {
		env.RegisterDelayedCallback(func() {
			env.UpdateWorkflow(UpdateNextSeq, "", collectCallback{out: &got})
		}, time.Duration(i+1)*time.Millisecond)
	}
	env.ExecuteWorkflow(SequenceWorkflow, SequenceState{Last: 41})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not finish its run")
	}
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if err == nil || !asContinueAsNew(err, &can) {
		t.Fatalf("want continue-as-new after %d handouts, got %v", seqHandoutsPerRun, err)
	}
	if len(got) != seqHandoutsPerRun {
		t.Fatalf("got %d results", len(got))
	}
	for i, r := range got {
		if r.err != nil || r.val != int64(42+i) {
			t.Fatalf("handout %d = %d, %v; want %d", i, r.val, r.err, 42+i)
		}
	}
	// The next run starts from the carried state: no number handed out
	// twice across the continue-as-new.
	var next SequenceState
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatalf("decode the continue-as-new input: %v", err)
	}
	if next.Last != 41+int64(seqHandoutsPerRun) {
		t.Fatalf("continue-as-new carries last %d, want %d", next.Last, 41+seqHandoutsPerRun)
	}
	env = ts.NewTestWorkflowEnvironment()
	var more []updateResult
	env.RegisterDelayedCallback(func() { env.UpdateWorkflow(UpdateReserveSeqs, "", collectCallback{out: &more}, 5) }, time.Millisecond)
	env.RegisterDelayedCallback(func() { env.UpdateWorkflow(UpdateNextSeq, "", collectCallback{out: &more}) }, 2*time.Millisecond)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Second)
	env.ExecuteWorkflow(SequenceWorkflow, next)
	if len(more) != 2 || more[0].err != nil || more[0].val != next.Last+1 || more[1].err != nil || more[1].val != next.Last+6 {
		t.Fatalf("next run handed out %+v, want a reservation from %d then %d", more, next.Last+1, next.Last+6)
	}
}

// A reservation counts as one handout toward the run's bound and its whole
// range is carried: a run that ends on a reservation continues after its
// last number.
func TestSequenceContinuesAfterAReservation(t *testing.T) {
	defer func(n int) { seqHandoutsPerRun = n }(seqHandoutsPerRun)
	seqHandoutsPerRun = 2
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	var got []updateResult
	env.RegisterDelayedCallback(func() { env.UpdateWorkflow(UpdateNextSeq, "", collectCallback{out: &got}) }, time.Millisecond)
	env.RegisterDelayedCallback(func() { env.UpdateWorkflow(UpdateReserveSeqs, "", collectCallback{out: &got}, 7) }, 2*time.Millisecond)
	env.ExecuteWorkflow(SequenceWorkflow, SequenceState{Last: 100})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !asContinueAsNew(err, &can) {
		t.Fatalf("want continue-as-new after 2 handouts, got %v", err)
	}
	var next SequenceState
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].val != 101 || got[1].val != 102 || next.Last != 108 {
		t.Fatalf("handouts %+v, carried last %d; want 101, a reservation 102-108, then last 108", got, next.Last)
	}
}

// A reservation takes n numbers at once; the next handout follows it, and
// an out-of-range n is rejected without using any number.
func TestSequenceReservesRanges(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	var got []updateResult
	env.RegisterDelayedCallback(func() { env.UpdateWorkflow(UpdateReserveSeqs, "", collectCallback{out: &got}, 5) }, time.Millisecond)
	env.RegisterDelayedCallback(func() { env.UpdateWorkflow(UpdateReserveSeqs, "", collectCallback{out: &got}, 0) }, 2*time.Millisecond)
	env.RegisterDelayedCallback(func() { env.UpdateWorkflow(UpdateNextSeq, "", collectCallback{out: &got}) }, 3*time.Millisecond)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Second)
	env.ExecuteWorkflow(SequenceWorkflow, SequenceState{Last: 10})
	if len(got) != 3 || got[0].val != 11 || got[0].err != nil || got[1].err == nil || got[2].val != 16 {
		t.Fatalf("got %+v, want first 11, a rejection, then 16", got)
	}
}
