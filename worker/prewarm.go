package worker

import (
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/workflows"
)

func registerPrewarm(r sdkworker.Registry, d Deps) error {
	r.RegisterWorkflow(workflows.PrewarmWorkflow)
	a := &activities.Prewarm{Inventory: d.Inventory, Edge: d.edgeClient(), Store: d.payloadStore(), PerEdge: d.Config.PrewarmConcurrency, InFlight: d.Config.PrewarmWorkerConcurrency, Pipeline: d.Config.PrewarmPipeline}
	r.RegisterActivity(a.PrewarmChunk)
	return nil
}
