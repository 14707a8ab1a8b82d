package worker

import (
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/workflows"
)

func registerSchedules(r sdkworker.Registry, d Deps) error {
	r.RegisterWorkflow(workflows.ScheduledJobWorkflow)
	a := &activities.Scheduled{Jobs: service.New(service.Deps{
		Temporal: d.Temporal, Config: d.Config, Inventory: d.Inventory, Logger: d.Logger, Store: d.Payloads,
	})}
	r.RegisterActivity(a.RunScheduledJob)
	return nil
}
