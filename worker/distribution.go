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
	r.RegisterWorkflow(workflows.EdgeSyncWorkflow)
	origins, err := connector.New(d.Config.ConnectorOptions("", d.Logger))
	if err != nil {
		return fmt.Errorf("origin probe: %w", err)
	}
	a := &activities.Distribution{
		Inventory: d.Inventory, DefaultOrigin: d.Config.DefaultOrigin, AllowPrivateCallbacks: d.Config.AllowPrivateCallbacks,
		PurgeACL: d.Config.PurgeACL, Origins: origins, Edges: d.edgeClient(),
	}
	r.RegisterActivity(a.DistributionCallback)
	r.RegisterActivity(a.ProbeDistributionOrigins)
	r.RegisterActivity(a.ApplySite)
	sync := &activities.EdgeSync{
		EdgeConfig: activities.EdgeConfig{DefaultOrigin: d.Config.DefaultOrigin, PurgeACL: d.Config.PurgeACL},
		Inventory:  d.Inventory, Edges: d.edgeClient(), Desired: workflows.DesiredSites{Temporal: d.Temporal},
	}
	r.RegisterActivity(sync.SyncEdges)
	return nil
}
