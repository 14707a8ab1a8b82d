// Package worker assembles the Temporal worker: every workflow and activity
// cdnflow has, registered on one task queue.
package worker

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/internal/config"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/workflows"
)

// Deps is what the activities need from the process around them.
type Deps struct {
	Config    config.Config
	Inventory *inventory.Inventory
	Logger    *zap.Logger
	// Edge defaults to a client built from Config. Payloads is the
	// claim-check store (payload.Open of Config.PayloadStoreURL(), opened
	// once per process by stack); nil: payload.Missing, every
	// prewarm chunk fails.
	Edge     *edge.Client
	Payloads payload.Store
	// Temporal lets activities start and list workflows (set by New).
	Temporal client.Client
}

// New creates a worker with everything registered; the caller runs it.
func New(c client.Client, d Deps) (sdkworker.Worker, error) {
	d.Temporal = c
	w := sdkworker.New(c, d.Config.TaskQueue, sdkworker.Options{
		// Activities stop heartbeating when the process is told to stop; give
		// them a moment to record progress so a restart resumes from there.
		WorkerStopTimeout:                  10 * time.Second,
		MaxConcurrentActivityExecutionSize: 200,
		// More pollers take many activities scheduled at once (the chunks
		// of prewarm jobs) off the queue in parallel instead of one poll at
		// a time.
		MaxConcurrentActivityTaskPollers: 8,
		// The SDK splits these between the task queue and this worker's
		// sticky queue, which also carries every status query of a running
		// job; with 4, under bench/load, tasks waited out the 5 s sticky
		// timeout and the worker took ~3 workflow tasks/s (16: 6-10/s,
		// docs/performance.md).
		MaxConcurrentWorkflowTaskPollers: 16,
		EnableSessionWorker:              false,
	})
	if err := Register(w, d); err != nil {
		return nil, err
	}
	return w, nil
}

// Register puts every workflow and activity on r. Replay tests use it too, so
// a workflow that is not registered here fails them.
func Register(r sdkworker.Registry, d Deps) error {
	r.RegisterWorkflow(workflows.EdgeCheckWorkflow)
	r.RegisterWorkflow(workflows.SequenceWorkflow)
	edgeCheck := &activities.EdgeCheck{Inventory: d.Inventory}
	r.RegisterActivity(edgeCheck.ListEdges)
	r.RegisterActivity(edgeCheck.CheckEdge)
	for _, reg := range []func(sdkworker.Registry, Deps) error{registerPrewarm, registerPurge, registerDistributions, registerSchedules} {
		if err := reg(r, d); err != nil {
			return fmt.Errorf("register: %w", err)
		}
	}
	return nil
}
