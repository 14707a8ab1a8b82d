package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/activities"
)

// A resync reloads the sites the reconciler already has (an edge restarted
// empty); a burst of resyncs is one load; a site change is another.
func TestReconcilerResyncReloadsKnownSites(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(EdgeReconcilerWorkflow)
	var loads [][]string
	env.OnActivity(distributionActivities.ApplyEdgeVCL, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ApplyEdgeVCLInput) error {
		var domains []string
		for _, s := range in.Sites {
			domains = append(domains, s.Domain)
		}
		loads = append(loads, domains)
		return nil
	})
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalResyncEdge, nil)
		env.SignalWorkflow(SignalResyncEdge, nil)
	}, time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalDesiredSite, activities.SiteSpec{WorkflowID: "w2", Domain: "b.test", Version: 1})
	}, time.Minute)
	var told []EdgeApplied
	env.OnSignalExternalWorkflow("default-test-namespace", "w2", "", SignalEdgeApplied, mock.Anything).Return(
		func(_, _, _, _ string, a any) error { told = append(told, a.(EdgeApplied)); return nil })
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Hour)
	env.ExecuteWorkflow(EdgeReconcilerWorkflow, ReconcilerState{EdgeID: "E1", Sites: map[string]activities.SiteSpec{
		"w1": {WorkflowID: "w1", Domain: "a.test", Version: 3},
	}})
	if len(loads) != 2 || len(loads[0]) != 1 || loads[0][0] != "a.test" || len(loads[1]) != 2 {
		t.Fatalf("loads = %v, want [[a.test] [a.test b.test]]", loads)
	}
	if len(told) != 1 || !told[0].OK || told[0].Version != 1 {
		t.Fatalf("b.test was told %+v", told)
	}
}
