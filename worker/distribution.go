package worker

import (
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/workflows"
)

func registerDistributions(r sdkworker.Registry, d Deps) error {
	r.RegisterWorkflow(workflows.DistributionWorkflow)
	r.RegisterWorkflow(workflows.EdgeReconcilerWorkflow)
	a := &activities.Distribution{
		Reconcilers: workflows.Reconcilers{Temporal: d.Temporal, TaskQueue: d.Config.TaskQueue, HeartbeatTimeout: d.Config.HeartbeatTimeout},
		Inventory:   d.Inventory, DefaultOrigin: d.Config.DefaultOrigin, AllowPrivateCallbacks: d.Config.AllowPrivateCallbacks,
		PurgeACL: d.Config.PurgeACL, Logger: d.Logger,
	}
	r.RegisterActivity(a.RequestEdgeApply)
	r.RegisterActivity(a.ApplyEdgeVCL)
	r.RegisterActivity(a.DistributionCallback)
	return nil
}
