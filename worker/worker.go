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
	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/service"
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
	// MoreDesired, when set, is desired state the edge sync adds to the
	// running distributions' (workflows.DesiredSites): bench/apply's
	// simulated distributions (bench/harness.Simulated).
	MoreDesired activities.DesiredSites
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
//
// Workflow inputs carry what a request asked for; how the work is done is
// this worker's, from its config.Worker: the activity structs hold their
// knobs, and activities.Knobs answers the few that workflows need for the
// options of the activities they schedule (heartbeat timeout, tries of a
// distribution change, the wait before one in ERROR is tried again).
func Register(r sdkworker.Registry, d Deps) error {
	cfg, edges := d.Config.Worker, d.edgeClient()
	origins, err := connector.New(d.Config.ConnectorOptions("", d.Logger))
	if err != nil {
		return fmt.Errorf("register: origin probe: %w", err)
	}
	knobs := &activities.Knobs{HeartbeatTimeout: cfg.HeartbeatTimeout, EdgeApplyAttempts: cfg.EdgeApplyAttempts, EdgeErrorRetry: cfg.EdgeErrorRetry}
	edgeCheck := &activities.EdgeCheck{Inventory: d.Inventory, Edges: edges}
	prewarm := &activities.Prewarm{
		Inventory: d.Inventory, Edge: edges, Store: d.payloadStore(),
		Attempts: cfg.PrewarmAttempts, AttemptTimeout: cfg.PrewarmAttemptTimeout,
		PerEdge: cfg.PrewarmConcurrency, InFlight: cfg.PrewarmWorkerConcurrency, Pipeline: cfg.PrewarmPipeline,
	}
	purge := &activities.Purge{Inventory: d.Inventory, Edge: edges, PerEdge: cfg.EdgePurgeConcurrency}
	distributions := &activities.Distribution{
		Inventory: d.Inventory, DefaultOrigin: d.Config.DefaultOrigin, AllowPrivateCallbacks: cfg.AllowPrivateCallbacks,
		PurgeACL: cfg.PurgeACL, ControlPlane: d.Config.ControlPlane(), Origins: origins, Edges: edges,
		Rollout:         activities.RolloutKnobs{Waves: cfg.RolloutWaves, Bake: cfg.RolloutBake, HealthPath: cfg.RolloutHealthPath},
		SiteConcurrency: cfg.EdgeSiteConcurrency,
	}
	var desired activities.DesiredSites = workflows.DesiredSites{Temporal: d.Temporal}
	if d.MoreDesired != nil {
		desired = activities.JoinDesired(desired, d.MoreDesired)
	}
	sync := &activities.EdgeSync{
		EdgeConfig: activities.EdgeConfig{DefaultOrigin: d.Config.DefaultOrigin, PurgeACL: cfg.PurgeACL, ControlPlane: d.Config.ControlPlane()},
		Inventory:  d.Inventory, Edges: edges, Desired: desired,
		MaxDeleteShare: cfg.EdgeSyncMaxDeleteShare, AllowMassDelete: cfg.EdgeSyncAllowMassDelete,
	}
	hosts := &workflows.HostActivities{Temporal: d.Temporal}
	scheduled := &activities.Scheduled{Jobs: service.New(service.Deps{
		Temporal: d.Temporal, Config: d.Config, Inventory: d.Inventory, Logger: d.Logger, Store: d.Payloads,
	})}

	for _, wf := range []any{
		workflows.EdgeCheckWorkflow, workflows.SequenceWorkflow, workflows.PrewarmWorkflow, workflows.PurgeWorkflow,
		workflows.DistributionWorkflow, workflows.EdgeSyncWorkflow, workflows.ScheduledJobWorkflow,
		workflows.FleetSettingsWorkflow, workflows.TokensWorkflow, workflows.HostWorkflow,
	} {
		r.RegisterWorkflow(wf)
	}
	for _, a := range []any{
		knobs.WorkerKnobs, edgeCheck.ListEdges, edgeCheck.CheckEdge, prewarm.PrewarmChunk,
		purge.PurgeEdges, purge.CatchUpEdge,
		distributions.DistributionCallback, distributions.ProbeDistributionOrigins, distributions.ApplySite,
		distributions.RolloutFleet, distributions.GateEdges,
		sync.SyncEdges, scheduled.RunScheduledJob, scheduled.AwaitScheduledRun,
		hosts.CheckHostOwner, hosts.ClaimHosts,
	} {
		r.RegisterActivity(a)
	}
	registerWebhooks(r, d)
	// Releases (workflows/release.go): the job, and the warmth a prewarm
	// job with Verify measures.
	r.RegisterWorkflow(workflows.ReleaseWorkflow)
	r.RegisterActivity(prewarm.MeasureWarmth)
	return nil
}

// registerWebhooks registers the signed job events' workflows and
// activities (docs/webhooks.md).
func registerWebhooks(r sdkworker.Registry, d Deps) {
	w := d.Config.Webhooks
	wh := &activities.Webhooks{AllowPrivate: d.Config.AllowPrivateCallbacks, Knobs: activities.WebhookKnobs{
		RetryInitial: w.WebhookRetryInitial, RetryMax: w.WebhookRetryMax, RetryWindow: w.WebhookRetryWindow, Concurrency: w.WebhookConcurrency,
	}}
	r.RegisterWorkflow(workflows.WebhooksWorkflow)
	r.RegisterWorkflow(workflows.WebhookDeliveryWorkflow)
	r.RegisterActivity(wh.DeliverWebhook)
	r.RegisterActivity(wh.WebhookKnobs)
	r.RegisterActivity((&workflows.WebhookPublisher{Temporal: d.Temporal}).SendJobEvent)
}
