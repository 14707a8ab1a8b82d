package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Job event types a workflow publishes when a step of a job finishes.
// Webhook subscriptions (docs/webhooks.md) deliver them, signed, to the
// appKey's endpoints; the names are part of the /v1 contract.
const (
	EventPurgeDone         = "purge.done"         // one purge seq reached DONE or EXPIRED
	EventPrewarmDone       = "prewarm.done"       // a prewarm job finished (any outcome)
	EventReleaseStepDone   = "release.step.done"  // one step of a release finished
	EventReleaseDone       = "release.done"       // a release finished (any outcome)
	EventDistributionState = "distribution.state" // a distribution changed status
)

// JobEvent is one event of a job, as a webhook delivers it (the "data"
// of the Standard Webhooks payload, with Type as its "type").
type JobEvent struct {
	Type   string `json:"type"`   // one of the Event* constants
	AppKey string `json:"appKey"` // the tenant whose subscriptions receive it
	// JobID is the job's id as the API names it: requestID, purge seq,
	// release id or domain; with Type it makes the event's idempotency key.
	JobID string `json:"jobId"`
	Step  string `json:"step,omitempty"`  // release step (purge, prewarm, verify)
	State string `json:"state,omitempty"` // outcome or distribution status
	// At is the workflow time the event happened, epoch ms.
	At int64 `json:"at"`
	// Detail is a small, bounded summary for the receiver (counts,
	// progress); never URL lists.
	Detail map[string]any `json:"detail,omitempty"`
}

// PublishJobEvent hands ev to the appKey's webhook subscriptions. It never
// fails the calling workflow: delivery is durable and retried on its own.
//
// It runs WebhookPublisher.SendJobEvent as a local activity, which
// signals the appKey's WebhooksWorkflow before the caller's workflow task
// completes (a signal command of a workflow that completes in the same
// task would be dropped by the server). Its cost to the caller is
// constant: one marker per call, and one version marker per run
// (changePublishJobEvent: histories recorded before it replay without
// it). An appKey without subscriptions has no hub: nothing is sent. A
// send that still fails after its tries is logged; the job goes on. An
// event without an appKey goes to nobody; Detail is bounded by
// boundDetail.
func PublishJobEvent(ctx workflow.Context, ev JobEvent) {
	if ev.AppKey == "" || ev.Type == "" {
		return
	}
	if workflow.GetVersion(ctx, changePublishJobEvent, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	ev.Detail = boundDetail(ev.Detail)
	// A cancelled job still tells its end.
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	lctx := workflow.WithLocalActivityOptions(dctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: 30 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3},
	})
	var p *WebhookPublisher
	if err := workflow.ExecuteLocalActivity(lctx, p.SendJobEvent, ev).Get(dctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("job event not handed to webhooks", "type", ev.Type, "jobId", ev.JobID, "error", err)
	}
}
