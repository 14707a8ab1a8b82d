package worker

import (
	"fmt"

	sdkworker "go.temporal.io/sdk/worker"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/workflows"
)

func registerDistributions(r sdkworker.Registry, d Deps) error {
	r.RegisterWorkflow(workflows.DistributionWorkflow)
	r.RegisterWorkflow(workflows.EdgeReconcilerWorkflow)
	origins, err := connector.New(d.Config.ConnectorOptions("", d.Logger))
	if err != nil {
		return fmt.Errorf("origin probe: %w", err)
	}
	a := &activities.Distribution{
		Reconcilers: workflows.Reconcilers{Temporal: d.Temporal, TaskQueue: d.Config.TaskQueue, HeartbeatTimeout: d.Config.HeartbeatTimeout},
		Inventory:   d.Inventory, DefaultOrigin: d.Config.DefaultOrigin, AllowPrivateCallbacks: d.Config.AllowPrivateCallbacks,
		PurgeACL: d.Config.PurgeACL, Origins: origins, Logger: d.Logger,
	}
	r.RegisterActivity(a.RequestEdgeApply)
	r.RegisterActivity(a.ApplyEdgeVCL)
	r.RegisterActivity(a.DistributionCallback)
	r.RegisterActivity(a.ProbeDistributionOrigins)
	return nil
}
