package workflows

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/activities"
)

// A round's reports replace the loop's state (an edge that left the
// inventory leaves it); a failed round (the desired state unread) keeps
// the last reports, so the orphans and differing entries seen before it
// still count as seen when the next round runs.
func TestEdgeSyncKeepsLastReports(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(EdgeSyncWorkflow)
	var mu sync.Mutex
	var inputs []activities.SyncEdgesInput
	answers := []func() ([]activities.EdgeSyncReport, error){
		func() ([]activities.EdgeSyncReport, error) {
			return []activities.EdgeSyncReport{{EdgeID: "A", Orphans: []string{"x.test"}}, {EdgeID: "B"}}, nil
		},
		func() ([]activities.EdgeSyncReport, error) { return nil, errors.New("visibility unavailable") },
		func() ([]activities.EdgeSyncReport, error) {
			return []activities.EdgeSyncReport{{EdgeID: "A", Orphans: []string{"y.test"}}}, nil
		},
	}
	env.OnActivity((*activities.EdgeSync)(nil).SyncEdges, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SyncEdgesInput) ([]activities.EdgeSyncReport, error) {
			mu.Lock()
			defer mu.Unlock()
			inputs = append(inputs, in)
			if n := len(inputs); n <= len(answers) {
				return answers[n-1]()
			}
			return answers[len(answers)-1]()
		})
	var last map[string]activities.EdgeSyncReport
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryEdgeSync)
		if err == nil {
			err = v.Get(&last)
		}
		if err != nil {
			t.Errorf("query: %v", err)
		}
		env.CancelWorkflow()
	}, 3*DefaultEdgeSyncEvery+time.Second)
	env.ExecuteWorkflow(EdgeSyncWorkflow, EdgeSyncInput{})

	mu.Lock()
	defer mu.Unlock()
	if len(inputs) < 4 {
		t.Fatalf("%d rounds ran, want 4", len(inputs))
	}
	if got := inputs[2].Last["A"].Orphans; !slices.Equal(got, []string{"x.test"}) || len(inputs[2].Last) != 2 {
		t.Fatalf("the round after a failed one got last %v, want both edges with A's orphans [x.test]", inputs[2].Last)
	}
	if _, ok := inputs[3].Last["B"]; ok || !slices.Equal(inputs[3].Last["A"].Orphans, []string{"y.test"}) {
		t.Fatalf("round 4 got last %v, want A's report only", inputs[3].Last)
	}
	if _, ok := last["B"]; ok || len(last) != 1 {
		t.Fatalf("query answers %v, want A only", last)
	}
}
