package worker_test

import (
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/worker"
)

// Workflows call activities by method reference, so an activity's
// registered name is its Go method name. Running workflows and the
// recorded histories name these activities: renaming a method must fail
// here (register it under the old name with activity.RegisterOptions).
// Workflow names are kept by TestReplayRecordedHistories.
func TestActivityNamesAreStable(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	if err := worker.Register(env, worker.Deps{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"WorkerKnobs", "ListEdges", "CheckEdge", "PrewarmChunk", "PurgeEdges", "CatchUpEdge",
		"DistributionCallback", "RunScheduledJob",
		"ProbeDistributionOrigins", "ApplySite", "SyncEdges", "RolloutFleet", "GateEdges",
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("activity %q is not registered: %v", name, r)
				}
			}()
			env.OnActivity(name)
		}()
	}
}
