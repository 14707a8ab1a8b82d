package worker

import (
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/workflows"
)

func registerPurge(r sdkworker.Registry, d Deps) error {
	r.RegisterWorkflow(workflows.PurgeWorkflow)
	a := &activities.Purge{Inventory: d.Inventory, Edge: d.edgeClient(), PerEdge: d.Config.EdgePurgeConcurrency}
	r.RegisterActivity(a.PurgeEdges)
	r.RegisterActivity(a.CatchUpEdge)
	return nil
}
