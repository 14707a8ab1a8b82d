package workflows

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/activities"
)

// fakePurgeEdges stands in for PurgeEdges: edges in down fail until their
// call count reaches the given number, every other edge confirms. Like the
// real activity, a regular attempt with an edge pending fails with
// ErrEdgesPending (rows as details); the local first pass answers rows.
type fakePurgeEdges struct {
	mu    sync.Mutex
	down  map[string]int
	calls []activities.PurgeEdgesInput
}

func (f *fakePurgeEdges) run(_ context.Context, in activities.PurgeEdgesInput) (activities.PurgeEdgesResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, in)
	var res activities.PurgeEdgesResult
	for _, id := range in.EdgeIDs {
		if n, ok := f.down[id]; ok && (n < 0 || len(f.calls) < n) {
			res.Edges = append(res.Edges, activities.PurgeEdgeOutcome{EdgeID: id, Error: "dial edge " + id + ": connection refused"})
			continue
		}
		res.Edges = append(res.Edges, activities.PurgeEdgeOutcome{EdgeID: id, Confirmed: true, Verified: "probed"})
	}
	if res.Pending() && in.Budget == 0 {
		return res, temporal.NewApplicationError("edges pending", activities.ErrEdgesPending, res.Edges)
	}
	return res, nil
}

// A purge's first pass confirms the healthy edges; the one down is retried
// (one activity for the edges left, retried by Temporal) until it
// confirms, and progress shows only what confirmed meanwhile.
func TestPurgeRetriesEdgeUntilConfirmed(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(PurgeWorkflow)
	f := &fakePurgeEdges{down: map[string]int{"B": 4}}
	env.OnActivity((*activities.Purge)(nil).PurgeEdges, mock.Anything, mock.Anything).Return(f.run)
	var mid PurgeStatus
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryPurgeStatus)
		if err == nil {
			_ = v.Get(&mid)
		}
	}, 1200*time.Millisecond)
	env.ExecuteWorkflow(PurgeWorkflow, PurgeSeq{Type: activities.PurgeItem, Hosts: []string{"d.test"}, Paths: []string{"/a"}, EdgeIDs: []string{"A", "B", "C"}, Deadline: time.Hour, Seq: 7})
	var st PurgeStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Progress != 100 || st.State != PurgeDone || len(f.calls) != 4 || st.Edges[1].Verified != "probed" {
		t.Fatalf("status %+v after %d calls", st, len(f.calls))
	}
	if mid.Progress != 66 || mid.Edges[1].Confirmed || mid.Edges[1].Error == "" {
		t.Fatalf("while B was down: %+v", mid)
	}
	for _, c := range f.calls[1:] {
		if len(c.EdgeIDs) != 1 || c.EdgeIDs[0] != "B" || c.Until == 0 {
			t.Fatalf("retries sent to %v (until %d), want only B until the deadline", c.EdgeIDs, c.Until)
		}
	}
}

// An edge down past the deadline leaves the purge EXPIRED below 100 with
// the edge's error (no catch-up configured).
func TestPurgeDeadlineLeavesProgressBelow100(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(PurgeWorkflow)
	f := &fakePurgeEdges{down: map[string]int{"B": -1}}
	env.OnActivity((*activities.Purge)(nil).PurgeEdges, mock.Anything, mock.Anything).Return(f.run)
	env.ExecuteWorkflow(PurgeWorkflow, PurgeSeq{Type: activities.PurgeAll, Hosts: []string{"d.test"}, EdgeIDs: []string{"A", "B", "C"}, Deadline: time.Minute})
	var st PurgeStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Progress != 66 || st.State != PurgeExpired || st.Edges[1].Error == "" || st.Edges[1].Confirmed {
		t.Fatalf("status %+v", st)
	}
}
