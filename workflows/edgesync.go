package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
)

// EdgeSyncInput configures the loop; continue-as-new carries Last.
type EdgeSyncInput struct {
	// Every is the time between rounds (default 15 s).
	Every time.Duration `json:"every,omitempty"`
	// Last is the latest report per edge.
	Last map[string]activities.EdgeSyncReport `json:"last,omitempty"`
}

// DefaultEdgeSyncEvery is the time between two sync rounds.
const DefaultEdgeSyncEvery = 15 * time.Second

// edgeSyncRoundsPerRun bounds one run's history (about 8 events a round).
const edgeSyncRoundsPerRun = 200

// EdgeSyncWorkflow keeps every edge as desired, forever: each round (one
// SyncEdges activity over all edges, whatever their number) compares each
// edge's active VCL and site table with the running distributions' last
// applied state and heals drift — another VCL active, an edge or
// connector restarted empty, missing, older, planted or orphan sites, and
// empties draining edges. It touches only this control plane's entries
// and deletes within the valves of activities.EdgeSync. It holds no
// sites of its own (only the last report per edge), so a terminated or
// restarted loop loses nothing: every round rebuilds the desired state
// from the distribution workflows.
func EdgeSyncWorkflow(ctx workflow.Context, in EdgeSyncInput) error {
	if in.Every <= 0 {
		in.Every = DefaultEdgeSyncEvery
	}
	if in.Last == nil {
		in.Last = map[string]activities.EdgeSyncReport{}
	}
	if err := workflow.SetQueryHandler(ctx, QueryEdgeSync, func() (map[string]activities.EdgeSyncReport, error) {
		return in.Last, nil
	}); err != nil {
		return err
	}
	var a *activities.EdgeSync // only its methods' names and signatures are used
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	for round := 0; round < edgeSyncRoundsPerRun; round++ {
		var reports []activities.EdgeSyncReport
		err := workflow.ExecuteActivity(actx, a.SyncEdges, activities.SyncEdgesInput{Last: in.Last}).Get(ctx, &reports)
		if err != nil {
			// The desired state could not be read: nothing was touched,
			// and the last reports (orphans seen, differing entries) stay
			// for the next round.
			workflow.GetLogger(ctx).Warn("edge sync round failed", "error", err)
		} else {
			// The reports of this round only: an edge that left the
			// inventory leaves the state, so it stays as small as the
			// fleet (each report's name lists are capped).
			in.Last = make(map[string]activities.EdgeSyncReport, len(reports))
		}
		for _, r := range reports {
			in.Last[r.EdgeID] = r
		}
		if err := workflow.Sleep(ctx, in.Every); err != nil {
			return err
		}
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			break
		}
	}
	return workflow.NewContinueAsNewError(ctx, EdgeSyncWorkflow, in)
}
