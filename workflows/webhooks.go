package workflows

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/distribution"
)

// Names of the webhook subscriptions (docs/webhooks.md), defined beside
// their workflows like the token table's. Each appKey has one
// WebhooksWorkflow (its subscriptions, the hub PublishJobEvent signals)
// and one WebhookDeliveryWorkflow per subscription (its queue, retries and
// delivery log; the only place its signing secret is kept).
const (
	// SignalJobEvent carries a JobEvent to the appKey's WebhooksWorkflow.
	SignalJobEvent = "job-event"
	// SignalWebhookMessages carries a []WebhookMessage to a subscription's
	// WebhookDeliveryWorkflow.
	SignalWebhookMessages = "webhook-messages"
	// SignalWebhookStop ends a subscription's WebhookDeliveryWorkflow (the
	// subscription was deleted); messages still queued are not delivered.
	SignalWebhookStop = "webhook-stop"
	// UpdateWebhookCreate takes a WebhookCreate and answers nothing.
	UpdateWebhookCreate = "webhook-create"
	// UpdateWebhookDelete takes a subscription id.
	UpdateWebhookDelete = "webhook-delete"
	// QueryWebhooks answers the WebhookTable (no secrets).
	QueryWebhooks = "webhooks"
	// QueryWebhookLog answers a subscription's WebhookLog.
	QueryWebhookLog = "webhook-log"
	// ErrUnknownWebhook is the ApplicationError type of a delete of an id
	// that is not a subscription of the appKey.
	ErrUnknownWebhook = "UnknownWebhook"
	// ErrWebhookTableFull is the ApplicationError type of a create refused
	// because the appKey has MaxWebhooksPerAppKey subscriptions.
	ErrWebhookTableFull = "WebhookTableFull"
)

// Bounds of what a subscription may hold (Temporal limits: 2 MB payloads,
// continue-as-new carries the state). A message is under 2 KB
// (maxEventDetail), so a full queue stays under 2 MB.
const (
	// MaxWebhooksPerAppKey bounds the subscriptions of one appKey.
	MaxWebhooksPerAppKey = 10
	// MaxWebhookQueue bounds the messages one subscription holds
	// undelivered; past it the oldest not in flight is dropped (logged).
	MaxWebhookQueue = 1000
	// WebhookLogSize is how many recent deliveries a log keeps.
	WebhookLogSize = 100
	// webhookSeenSize bounds the ids remembered as delivered, so a message
	// handed over twice is sent once.
	webhookSeenSize = 2000
	// maxDetailKeys, maxDetailKey and maxDetailString bound a JobEvent's
	// Detail (boundDetail) to about 1 KB.
	maxDetailKeys   = 8
	maxDetailKey    = 32
	maxDetailString = 64
	// webhookChangesPerRun and webhookDeliveriesPerRun bound a run's
	// history before it continues as new (also when the server suggests).
	webhookChangesPerRun    = 500
	webhookDeliveriesPerRun = 1000
	// changePublishJobEvent versions the command PublishJobEvent adds to a
	// job's workflow (docs/versioning.md).
	changePublishJobEvent = "publish-job-event"
)

// Outcomes of a delivery in a WebhookLog.
const (
	DeliveryDelivered = "delivered" // the receiver answered 2xx
	DeliveryFailed    = "failed"    // no 2xx within the retry window
	DeliveryRefused   = "refused"   // the address is internal (netguard)
	DeliveryDropped   = "dropped"   // the queue was full
)

// WebhooksWorkflowID is the id of appKey's WebhooksWorkflow.
func WebhooksWorkflowID(appKey string) string { return "cdnflow-webhooks/" + appKey }

// WebhookDeliveryWorkflowID is the id of one subscription's
// WebhookDeliveryWorkflow.
func WebhookDeliveryWorkflowID(appKey, id string) string {
	return "cdnflow-webhook/" + appKey + "/" + id
}

var webhookIDRe = regexp.MustCompile(`^wh_[0-9a-f]{16}$`)

// ValidWebhookID reports whether id has the shape of a subscription id
// ("wh_" and 16 lower-case hex digits).
func ValidWebhookID(id string) bool { return webhookIDRe.MatchString(id) }

// WebhookSubscription is one endpoint of an appKey, without its secret.
// Events lists the event types it receives; empty: all.
type WebhookSubscription struct {
	ID        string    `json:"id"`
	AppKey    string    `json:"appKey"`
	URL       string    `json:"url"`
	Events    []string  `json:"events,omitempty"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"createdBy,omitempty"`
}

// wants reports whether s receives events of type typ.
func (s WebhookSubscription) wants(typ string) bool {
	return len(s.Events) == 0 || slices.Contains(s.Events, typ)
}

// WebhookCreate is UpdateWebhookCreate's argument: the subscription and
// its signing secret ("whsec_" + base64), which goes to the delivery
// workflow's input only (sealed at rest by the payload codec).
type WebhookCreate struct {
	Sub    WebhookSubscription `json:"sub"`
	Secret string              `json:"secret"`
}

// WebhookTable is an appKey's WebhooksWorkflow state, carried across
// continue-as-new.
type WebhookTable struct {
	AppKey string                `json:"appKey"`
	Subs   []WebhookSubscription `json:"subs"`
}

// WebhookMessage is one event for one subscription: ID is the
// webhook-id (stable for the event, the receiver's idempotency key),
// Queued the workflow time (epoch ms) the hub handed it over, from which
// the retry window runs.
type WebhookMessage struct {
	ID     string   `json:"id"`
	Event  JobEvent `json:"event"`
	Queued int64    `json:"queued"`
}

// WebhookDelivery is one line of a delivery log.
type WebhookDelivery struct {
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	JobID    string    `json:"jobId"`
	Outcome  string    `json:"outcome"` // Delivery* constants
	Attempts int32     `json:"attempts,omitempty"`
	Status   int       `json:"status,omitempty"` // the receiver's last HTTP status
	Error    string    `json:"error,omitempty"`  // redacted: no URL query, userinfo or secret
	At       time.Time `json:"at"`
}

// WebhookLog is QueryWebhookLog's answer: counters since the
// subscription was created and the last WebhookLogSize deliveries.
type WebhookLog struct {
	Queued    int               `json:"queued"`
	InFlight  int               `json:"inFlight"`
	Delivered int64             `json:"delivered"`
	Failed    int64             `json:"failed"`
	Dropped   int64             `json:"dropped"`
	Recent    []WebhookDelivery `json:"recent"`
}

// WebhookDeliveryState is a WebhookDeliveryWorkflow's input and state.
type WebhookDeliveryState struct {
	Sub    WebhookSubscription `json:"sub"`
	Secret string              `json:"secret"`
	Queue  []WebhookMessage    `json:"queue,omitempty"`
	Seen   []string            `json:"seen,omitempty"`
	Log    WebhookLog          `json:"log"`
}

// WebhookPublisher hands job events to the appKeys' hubs: the local
// activity of PublishJobEvent, registered with the worker's client.
type WebhookPublisher struct {
	Temporal client.Client
}

// SendJobEvent signals ev to its appKey's WebhooksWorkflow. No hub (no
// subscription) is no error; a nil receiver or client sends nothing (a
// workflow test environment). Errors: Temporal's, retried by the local
// activity's policy.
func (p *WebhookPublisher) SendJobEvent(ctx context.Context, ev JobEvent) error {
	if p == nil || p.Temporal == nil {
		return nil
	}
	err := p.Temporal.SignalWorkflow(ctx, WebhooksWorkflowID(ev.AppKey), "", SignalJobEvent, ev)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("signal %s event of %s to the webhooks of %s: %w", ev.Type, ev.JobID, ev.AppKey, err)
	}
	return nil
}

// WebhookMessageID is the webhook-id of ev: "msg_" and 32 hex digits of
// the SHA-256 of what identifies the event (type, appKey, job, step,
// state, time), so an event handed over twice keeps its id.
func WebhookMessageID(ev JobEvent) string {
	key := ev.Type + "\x00" + ev.AppKey + "\x00" + ev.JobID + "\x00" + ev.Step + "\x00" + ev.State + "\x00" + strconv.FormatInt(ev.At, 10)
	sum := sha256.Sum256([]byte(key))
	return "msg_" + hex.EncodeToString(sum[:16])
}

// boundDetail answers d cut to what an event may carry: its first
// maxDetailKeys keys of at most maxDetailKey bytes in sorted order,
// strings cut to maxDetailString bytes, booleans and numbers as they are,
// other values left out (an event summarises; it never carries lists).
func boundDetail(d map[string]any) map[string]any {
	if len(d) == 0 {
		return nil
	}
	keys := make([]string, 0, len(d))
	// The keys are sorted below: the order of this range does not matter.
	//workflowcheck:ignore
	for k := range d {
		if len(k) <= maxDetailKey {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := map[string]any{}
	for _, k := range keys[:min(len(keys), maxDetailKeys)] {
		switch v := d[k].(type) {
		case string:
			if len(v) > maxDetailString {
				v = v[:maxDetailString]
			}
			out[k] = v
		case bool, int, int32, int64, uint, uint32, uint64, float32, float64:
			out[k] = v
		}
	}
	return out
}

// WebhooksWorkflow holds an appKey's subscriptions (UpdateWebhookCreate
// starts each one's WebhookDeliveryWorkflow, UpdateWebhookDelete stops
// it) and hands every JobEvent signalled to it (SignalJobEvent) to the
// subscriptions that want its type, in batches: one signal per
// subscription for all events waiting. It continues as new when the
// server suggests or after webhookChangesPerRun changes and batches.
func WebhooksWorkflow(ctx workflow.Context, t WebhookTable) error {
	changes := 0
	if err := registerWebhookHandlers(ctx, &t, &changes); err != nil {
		return err
	}
	events := workflow.GetSignalChannel(ctx, SignalJobEvent)
	for {
		err := workflow.Await(ctx, func() bool {
			return events.Len() > 0 || changes >= webhookChangesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
		})
		if err != nil {
			return err
		}
		if events.Len() == 0 {
			if workflow.AllHandlersFinished(ctx) {
				// Nothing waits and nothing runs: no event is left behind.
				return workflow.NewContinueAsNewError(ctx, WebhooksWorkflow, t)
			}
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return err
			}
			continue
		}
		var batch []JobEvent
		var ev JobEvent
		for len(batch) < 200 && events.ReceiveAsync(&ev) {
			batch, ev = append(batch, ev), JobEvent{}
		}
		forwardJobEvents(ctx, t, batch)
		changes++
	}
}

// forwardJobEvents signals each subscription its share of batch and waits
// for the signals; a subscription whose delivery workflow is gone is
// logged and skipped.
func forwardJobEvents(ctx workflow.Context, t WebhookTable, batch []JobEvent) {
	now := workflow.Now(ctx).UnixMilli()
	var futures []workflow.Future
	for _, sub := range t.Subs {
		var msgs []WebhookMessage
		for _, ev := range batch {
			if !sub.wants(ev.Type) {
				continue
			}
			msgs = append(msgs, WebhookMessage{ID: WebhookMessageID(ev), Event: ev, Queued: now})
		}
		if len(msgs) > 0 {
			futures = append(futures, workflow.SignalExternalWorkflow(ctx, WebhookDeliveryWorkflowID(t.AppKey, sub.ID), "", SignalWebhookMessages, msgs))
		}
	}
	for _, f := range futures {
		if err := f.Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("webhook messages not handed over", "error", err)
		}
	}
}

// registerWebhookHandlers sets the hub's create and delete updates and
// its query.
func registerWebhookHandlers(ctx workflow.Context, t *WebhookTable, changes *int) error {
	hasID := func(id string) func(WebhookSubscription) bool {
		return func(s WebhookSubscription) bool { return s.ID == id }
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateWebhookCreate, func(ctx workflow.Context, c WebhookCreate) error {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:        WebhookDeliveryWorkflowID(t.AppKey, c.Sub.ID),
			ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		})
		child := workflow.ExecuteChildWorkflow(cctx, WebhookDeliveryWorkflow, WebhookDeliveryState{Sub: c.Sub, Secret: c.Secret})
		if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
			return fmt.Errorf("start delivery of webhook %s: %w", c.Sub.ID, err)
		}
		t.Subs = append(t.Subs, c.Sub)
		*changes++
		return nil
	}, workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, c WebhookCreate) error {
		switch {
		case !ValidWebhookID(c.Sub.ID) || c.Sub.AppKey != t.AppKey || c.Sub.URL == "" || c.Secret == "":
			return fmt.Errorf("webhook %q: needs an id wh_<16 hex>, this appKey, a url and a secret", c.Sub.ID)
		case slices.ContainsFunc(t.Subs, hasID(c.Sub.ID)):
			return fmt.Errorf("webhook id %s is taken", c.Sub.ID)
		case len(t.Subs) >= MaxWebhooksPerAppKey:
			return temporal.NewApplicationError(fmt.Sprintf("appKey %s has %d webhooks, its limit; delete some first", t.AppKey, MaxWebhooksPerAppKey), ErrWebhookTableFull)
		}
		return nil
	}})
	if err != nil {
		return err
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, UpdateWebhookDelete, func(ctx workflow.Context, id string) error {
		t.Subs = slices.DeleteFunc(t.Subs, hasID(id))
		*changes++
		err := workflow.SignalExternalWorkflow(ctx, WebhookDeliveryWorkflowID(t.AppKey, id), "", SignalWebhookStop, nil).Get(ctx, nil)
		if err != nil {
			workflow.GetLogger(ctx).Warn("webhook delivery not stopped", "id", id, "error", err)
		}
		return nil
	}, workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, id string) error {
		if !slices.ContainsFunc(t.Subs, hasID(id)) {
			return temporal.NewApplicationError("no webhook "+id, ErrUnknownWebhook)
		}
		return nil
	}})
	if err != nil {
		return err
	}
	return workflow.SetQueryHandler(ctx, QueryWebhooks, func() (WebhookTable, error) { return *t, nil })
}

// purgeDoneEvent is EventPurgeDone of one seq (JobID: the seq).
func purgeDoneEvent(ctx workflow.Context, req PurgeSeq, st PurgeStatus) JobEvent {
	return JobEvent{
		Type: EventPurgeDone, AppKey: req.AppKey, JobID: strconv.FormatInt(req.Seq, 10), State: st.State,
		At:     workflow.Now(ctx).UnixMilli(),
		Detail: map[string]any{"domain": req.Domain, "purgeType": req.Type, "progress": st.Progress, "edges": len(st.Edges)},
	}
}

// prewarmDoneEvent is EventPrewarmDone of a prewarm job (JobID: its
// requestID), for the appKey the job was started for (its AppKeyAttr;
// jobs of no appKey or of a caller-keyed tenant "key:…" go to nobody).
func prewarmDoneEvent(ctx workflow.Context, st *prewarmState) JobEvent {
	appKey, _ := workflow.GetTypedSearchAttributes(ctx).GetKeyword(AppKeyAttr)
	if strings.Contains(appKey, ":") {
		appKey = ""
	}
	s := st.snapshot(PrewarmPage{Limit: 1})
	return JobEvent{
		Type: EventPrewarmDone, AppKey: appKey, JobID: st.job.JobID, State: st.status,
		At:     workflow.Now(ctx).UnixMilli(),
		Detail: map[string]any{"domain": st.job.Domain, "total": s.Total, "success": s.SuccessCount, "failed": s.FailedCount},
	}
}

// distributionStateEvent is EventDistributionState of a distribution
// (JobID: its domain) entering status.
func distributionStateEvent(ctx workflow.Context, st *distribution.State) JobEvent {
	ev := JobEvent{Type: EventDistributionState, AppKey: st.AppKey, JobID: st.Domain, State: st.Status, At: workflow.Now(ctx).UnixMilli()}
	if st.LastError != "" {
		ev.Detail = map[string]any{"lastError": st.LastError}
	}
	return ev
}
