package workflows

import (
	"errors"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
)

var webhookActivities *activities.Webhooks

// Defaults of the webhook knobs, used where a worker gives none.
const (
	defaultWebhookRetryInitial = 5 * time.Second
	defaultWebhookRetryMax     = time.Hour
	defaultWebhookRetryWindow  = 25 * time.Hour
	defaultWebhookConcurrency  = 8
)

// webhookKnobs asks the worker for its webhook knobs (a local activity
// recorded in history, like workerKnobs), with defaults for what it
// leaves unset.
func webhookKnobs(ctx workflow.Context) activities.WebhookKnobs {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: 10 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var k activities.WebhookKnobs
	if err := workflow.ExecuteLocalActivity(lctx, webhookActivities.WebhookKnobs).Get(ctx, &k); err != nil {
		workflow.GetLogger(ctx).Warn("webhook knobs unavailable; using defaults", "error", err)
	}
	if k.RetryInitial <= 0 {
		k.RetryInitial = defaultWebhookRetryInitial
	}
	if k.RetryMax < k.RetryInitial {
		k.RetryMax = max(defaultWebhookRetryMax, k.RetryInitial)
	}
	if k.RetryWindow <= 0 {
		k.RetryWindow = defaultWebhookRetryWindow
	}
	if k.Concurrency <= 0 {
		k.Concurrency = defaultWebhookConcurrency
	}
	return k
}

// deliveryRun is one run of a WebhookDeliveryWorkflow.
type deliveryRun struct {
	st        *WebhookDeliveryState
	knobs     activities.WebhookKnobs
	inFlight  map[string]bool
	delivered int // this run, for continue-as-new
}

// WebhookDeliveryWorkflow delivers one subscription's messages: each is
// POSTed, signed (activities.Webhooks.DeliverWebhook), up to the worker's
// WebhookConcurrency at a time, each retried with exponential backoff
// (WebhookRetryInitial doubling up to WebhookRetryMax) until a 2xx or
// until WebhookRetryWindow after it was queued; the server runs the
// retries, so a receiver down for a day costs no history. A message id
// seen before is not queued again. SignalWebhookStop ends it. Before it
// continues as new (when suggested or after webhookDeliveriesPerRun) it
// cancels the deliveries in flight, which stay queued for the next run.
func WebhookDeliveryWorkflow(ctx workflow.Context, st WebhookDeliveryState) error {
	r := &deliveryRun{st: &st, knobs: webhookKnobs(ctx), inFlight: map[string]bool{}}
	err := workflow.SetQueryHandler(ctx, QueryWebhookLog, func() (WebhookLog, error) {
		l := st.Log
		l.Queued, l.InFlight = len(st.Queue), len(r.inFlight)
		return l, nil
	})
	if err != nil {
		return err
	}
	msgs := workflow.GetSignalChannel(ctx, SignalWebhookMessages)
	stop := workflow.GetSignalChannel(ctx, SignalWebhookStop)
	dctx, cancel := workflow.WithCancel(ctx)
	for {
		err := workflow.Await(ctx, func() bool {
			return msgs.Len() > 0 || stop.Len() > 0 || r.continueAsNew(ctx) || (r.next() >= 0 && len(r.inFlight) < r.knobs.Concurrency)
		})
		if err != nil {
			cancel()
			return err
		}
		if stop.Len() > 0 {
			cancel()
			return nil
		}
		r.receive(ctx, msgs)
		if r.continueAsNew(ctx) {
			cancel()
			if err := workflow.Await(ctx, func() bool { return len(r.inFlight) == 0 }); err != nil {
				return err
			}
			r.receive(ctx, msgs)
			return workflow.NewContinueAsNewError(ctx, WebhookDeliveryWorkflow, st)
		}
		for len(r.inFlight) < r.knobs.Concurrency {
			i := r.next()
			if i < 0 {
				break
			}
			m := st.Queue[i]
			r.inFlight[m.ID] = true
			workflow.Go(dctx, func(ctx workflow.Context) { r.deliver(ctx, m) })
		}
	}
}

func (r *deliveryRun) continueAsNew(ctx workflow.Context) bool {
	return r.delivered >= webhookDeliveriesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
}

// next answers the index of the oldest queued message not in flight, or -1.
func (r *deliveryRun) next() int {
	return slices.IndexFunc(r.st.Queue, func(m WebhookMessage) bool { return !r.inFlight[m.ID] })
}

// receive queues the messages signalled so far: those seen or queued
// before are skipped; past MaxWebhookQueue the oldest not in flight is
// dropped and logged.
func (r *deliveryRun) receive(ctx workflow.Context, ch workflow.ReceiveChannel) {
	var batch []WebhookMessage
	for ch.ReceiveAsync(&batch) {
		for _, m := range batch {
			if slices.Contains(r.st.Seen, m.ID) || slices.ContainsFunc(r.st.Queue, func(q WebhookMessage) bool { return q.ID == m.ID }) {
				continue
			}
			if len(r.st.Queue) >= MaxWebhookQueue {
				if i := r.next(); i >= 0 {
					old := r.st.Queue[i]
					r.st.Queue = slices.Delete(r.st.Queue, i, i+1)
					r.record(ctx, old, WebhookDelivery{Outcome: DeliveryDropped, Error: "queue full"})
				}
			}
			r.st.Queue = append(r.st.Queue, m)
		}
		batch = nil
	}
}

// deliver runs DeliverWebhook for m with retries until its window ends
// and records the outcome; cancelled (continue-as-new, stop), m stays
// queued.
func (r *deliveryRun) deliver(ctx workflow.Context, m WebhookMessage) {
	defer delete(r.inFlight, m.ID)
	left := time.UnixMilli(m.Queued).Add(r.knobs.RetryWindow).Sub(workflow.Now(ctx))
	var res activities.WebhookResult
	var err error
	if left <= 0 {
		err = errors.New("retry window passed")
	} else {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			ScheduleToCloseTimeout: left,
			StartToCloseTimeout:    activities.WebhookAttemptTimeout,
			// Cancelled (continue-as-new) while an attempt runs: its
			// outcome is still taken, so a message the receiver accepted
			// is not sent again by the next run.
			WaitForCancellation: true,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval: r.knobs.RetryInitial, BackoffCoefficient: 2, MaximumInterval: r.knobs.RetryMax,
				NonRetryableErrorTypes: []string{activities.ErrWebhookRefused, activities.ErrWebhookBadSecret},
			},
		})
		req := activities.WebhookRequest{URL: r.st.Sub.URL, Secret: r.st.Secret, MessageID: m.ID, Type: m.Event.Type, At: m.Event.At, Data: m.Event}
		err = workflow.ExecuteActivity(actx, webhookActivities.DeliverWebhook, req).Get(ctx, &res)
	}
	if err != nil && ctx.Err() != nil {
		return // cancelled before a 2xx: stays queued
	}
	r.st.Queue = slices.DeleteFunc(r.st.Queue, func(q WebhookMessage) bool { return q.ID == m.ID })
	d := WebhookDelivery{Outcome: DeliveryDelivered, Attempts: res.Attempts, Status: res.Status}
	var appErr *temporal.ApplicationError
	switch {
	case errors.As(err, &appErr) && appErr.Type() == activities.ErrWebhookRefused:
		d = WebhookDelivery{Outcome: DeliveryRefused, Error: rootMessage(err)}
	case err != nil:
		d = WebhookDelivery{Outcome: DeliveryFailed, Error: rootMessage(err)}
	}
	r.delivered++
	r.record(ctx, m, d)
}

// record adds d (for m) to the log and m's id to the ids seen.
func (r *deliveryRun) record(ctx workflow.Context, m WebhookMessage, d WebhookDelivery) {
	d.ID, d.Type, d.JobID, d.At = m.ID, m.Event.Type, m.Event.JobID, workflow.Now(ctx).UTC()
	l := &r.st.Log
	switch d.Outcome {
	case DeliveryDelivered:
		l.Delivered++
	case DeliveryDropped:
		l.Dropped++
	default:
		l.Failed++
	}
	l.Recent = append(l.Recent, d)
	if len(l.Recent) > WebhookLogSize {
		l.Recent = slices.Delete(l.Recent, 0, len(l.Recent)-WebhookLogSize)
	}
	r.st.Seen = append(r.st.Seen, m.ID)
	if len(r.st.Seen) > webhookSeenSize {
		r.st.Seen = slices.Delete(r.st.Seen, 0, len(r.st.Seen)-webhookSeenSize)
	}
}
