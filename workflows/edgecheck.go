package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
)

// EdgeCheckInput names the edges to probe; empty means all of them.
type EdgeCheckInput struct {
	EdgeIDs []string `json:"edgeIds"`
}

// EdgeCheckResult is the workflow result and the answer of QueryEdgeCheck.
type EdgeCheckResult struct {
	Done  bool                    `json:"done"`
	Edges []activities.EdgeHealth `json:"edges"`
}

// EdgeCheckWorkflow probes edges over HTTP and their admin port, one activity
// per edge in parallel. It is the smallest real round trip through API,
// Temporal, worker and edges, and an operator's first look at the fleet.
func EdgeCheckWorkflow(ctx workflow.Context, in EdgeCheckInput) (EdgeCheckResult, error) {
	var a *activities.EdgeCheck // only its methods' names and signatures are used
	var result EdgeCheckResult
	if err := workflow.SetQueryHandler(ctx, QueryEdgeCheck, func() (EdgeCheckResult, error) {
		return result, nil
	}); err != nil {
		return result, err
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 2},
	})
	ids := in.EdgeIDs
	if len(ids) == 0 {
		if err := workflow.ExecuteActivity(ctx, a.ListEdges).Get(ctx, &ids); err != nil {
			return result, err
		}
	}
	futures := make([]workflow.Future, len(ids))
	result.Edges = make([]activities.EdgeHealth, len(ids))
	for i, id := range ids {
		result.Edges[i] = activities.EdgeHealth{EdgeID: id}
		futures[i] = workflow.ExecuteActivity(ctx, a.CheckEdge, id)
	}
	for i, f := range futures {
		if err := f.Get(ctx, &result.Edges[i]); err != nil {
			result.Edges[i].Error = err.Error()
		}
	}
	result.Done = true
	return result, nil
}
