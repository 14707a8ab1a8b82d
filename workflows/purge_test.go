package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/activities"
)

func TestPurgeRetriesEdgeUntilConfirmed(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(PurgeWorkflow)
	var mu sync.Mutex
	attempts := map[string]int{}
	env.OnActivity((*activities.Purge)(nil).PurgeEdge, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.PurgeEdgeInput) (activities.PurgeEdgeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		attempts[in.EdgeID]++
		if in.EdgeID == "B" && attempts["B"] < 4 {
			return activities.PurgeEdgeResult{}, errors.New("dial edge B: connection refused")
		}
		return activities.PurgeEdgeResult{Verified: "probed"}, nil
	})
	var mid PurgeStatus
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryPurgeStatus)
		if err == nil {
			_ = v.Get(&mid)
		}
	}, 1200*time.Millisecond)
	env.ExecuteWorkflow(PurgeWorkflow, PurgeRequest{Type: activities.PurgeItem, Hosts: []string{"d.test"}, Paths: []string{"/a"}, EdgeIDs: []string{"A", "B"}, Deadline: time.Hour, Seq: 7})
	var st PurgeStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Progress != 100 || st.State != PurgeDone || attempts["B"] != 4 || st.Edges[1].Verified != "probed" {
		t.Fatalf("status %+v attempts %v", st, attempts)
	}
	if mid.Progress != 50 || mid.Edges[1].Confirmed {
		t.Fatalf("while B was down: %+v", mid)
	}
}

func TestPurgeDeadlineLeavesProgressBelow100(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(PurgeWorkflow)
	env.OnActivity((*activities.Purge)(nil).PurgeEdge, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.PurgeEdgeInput) (activities.PurgeEdgeResult, error) {
		if in.EdgeID == "B" {
			return activities.PurgeEdgeResult{}, errors.New("edge B down")
		}
		return activities.PurgeEdgeResult{Verified: "probed"}, nil
	})
	env.ExecuteWorkflow(PurgeWorkflow, PurgeRequest{Type: activities.PurgeAll, Hosts: []string{"d.test"}, EdgeIDs: []string{"A", "B", "C"}, Deadline: time.Minute})
	var st PurgeStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Progress != 66 || st.State != PurgeExpired || st.Edges[1].Error == "" {
		t.Fatalf("status %+v", st)
	}
}
