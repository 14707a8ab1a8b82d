package workflows

import (
	"context"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cdnflow/cdnflow/activities"
)

// Reconcilers sends desired sites to edge reconcilers from outside a
// workflow (the RequestEdgeApply activity): it implements
// activities.EdgeReconcilers next to the workflow it starts.
type Reconcilers struct {
	Temporal  client.Client
	TaskQueue string
	// HeartbeatTimeout is handed to reconcilers started here.
	HeartbeatTimeout time.Duration
}

// SendSite signals spec to edgeID's reconciler (SignalDesiredSite),
// starting an EdgeReconcilerWorkflow when the edge has none.
func (r Reconcilers) SendSite(ctx context.Context, edgeID string, spec activities.SiteSpec) error {
	_, err := r.Temporal.SignalWithStartWorkflow(ctx, ReconcilerWorkflowID(edgeID), SignalDesiredSite, spec,
		client.StartWorkflowOptions{ID: ReconcilerWorkflowID(edgeID), TaskQueue: r.TaskQueue},
		EdgeReconcilerWorkflow, ReconcilerState{EdgeID: edgeID, HeartbeatTimeout: r.HeartbeatTimeout})
	return err
}
