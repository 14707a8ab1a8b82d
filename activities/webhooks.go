package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// Error types of DeliverWebhook that end a delivery at once.
const (
	// ErrWebhookRefused: the endpoint resolves to an address the
	// callback policy refuses (internal/netguard via CallbackClient).
	ErrWebhookRefused = "WebhookRefused"
	// ErrWebhookBadSecret: the stored secret is not a "whsec_" base64 key.
	ErrWebhookBadSecret = "WebhookBadSecret"
)

// WebhookAttemptTimeout bounds one delivery attempt (connect, TLS, the
// receiver's answer); CallbackClient's own limit is 15 s.
const WebhookAttemptTimeout = 30 * time.Second

// WebhookKnobs are the worker's webhook settings that the delivery
// workflow needs for its activity options (config.Webhooks). Zero values
// mean the workflow's defaults.
type WebhookKnobs struct {
	// RetryInitial is the wait before the second attempt of a delivery;
	// each next wait doubles, up to RetryMax.
	RetryInitial time.Duration `json:"retryInitial,omitempty"`
	RetryMax     time.Duration `json:"retryMax,omitempty"`
	// RetryWindow is how long after it was queued a message is retried.
	RetryWindow time.Duration `json:"retryWindow,omitempty"`
	// Concurrency is how many messages of one subscription are in flight
	// at once.
	Concurrency int `json:"concurrency,omitempty"`
}

// Webhooks delivers signed job events (docs/webhooks.md).
type Webhooks struct {
	Knobs WebhookKnobs
	// AllowPrivate lets deliveries reach loopback and private addresses,
	// as AllowPrivateCallbacks does for callbacks (tests and dev only).
	AllowPrivate bool

	once   sync.Once
	client *http.Client
}

// WebhookRequest is one delivery: the event (Type, At in epoch ms, Data
// the job event), MessageID its webhook-id, Secret the subscription's
// "whsec_" secret.
type WebhookRequest struct {
	URL       string `json:"url"`
	Secret    string `json:"secret"`
	MessageID string `json:"messageId"`
	Type      string `json:"type"`
	At        int64  `json:"at"`
	Data      any    `json:"data"`
}

// webhookBody is the Standard Webhooks payload of req ("Payload
// structure"): {"type", "timestamp" (RFC 3339, the event's time), "data"}.
func webhookBody(req WebhookRequest) ([]byte, error) {
	return json.Marshal(struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      any    `json:"data"`
	}{req.Type, time.UnixMilli(req.At).UTC().Format(time.RFC3339Nano), req.Data})
}

// WebhookResult is a delivered message: the receiver's HTTP status and
// the attempt that got it.
type WebhookResult struct {
	Status   int   `json:"status"`
	Attempts int32 `json:"attempts"`
}

// WebhookKnobs answers this worker's webhook knobs (a local activity of
// the delivery workflow, recorded in its history). A nil receiver answers
// zero knobs (defaults).
func (w *Webhooks) WebhookKnobs(context.Context) (WebhookKnobs, error) {
	if w == nil {
		return WebhookKnobs{}, nil
	}
	return w.Knobs, nil
}

// httpClient is the callbacks' client (the same address policy, checked
// on every connection after DNS) that does not follow redirects: a 3xx is
// a failed attempt, so a redirect cannot move a signed event elsewhere.
func (w *Webhooks) httpClient() *http.Client {
	w.once.Do(func() {
		w.client = CallbackClient(w.AllowPrivate)
		w.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	})
	return w.client
}

// DeliverWebhook POSTs req.Body to req.URL signed per Standard Webhooks
// (https://www.standardwebhooks.com, "Signature scheme"): webhook-id,
// webhook-timestamp (this attempt's time, Unix seconds) and
// webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>", signed
// by the reference library. A 2xx answer delivers it. Errors: a
// non-retryable ErrWebhookRefused for an internal address,
// ErrWebhookBadSecret for a secret the library refuses; any other failure
// (connection, non-2xx) is retried by the workflow's policy. Errors carry
// the URL without userinfo, query or fragment and never the secret.
func (w *Webhooks) DeliverWebhook(ctx context.Context, req WebhookRequest) (WebhookResult, error) {
	attempt := activity.GetInfo(ctx).Attempt
	wh, err := standardwebhooks.NewWebhook(req.Secret)
	if err != nil {
		return WebhookResult{}, temporal.NewNonRetryableApplicationError("webhook secret is not a whsec_ base64 key", ErrWebhookBadSecret, nil)
	}
	body, err := webhookBody(req)
	if err != nil {
		return WebhookResult{}, temporal.NewNonRetryableApplicationError("webhook body: "+err.Error(), ErrWebhookBadSecret, nil)
	}
	now := time.Now()
	sig, err := wh.Sign(req.MessageID, now, body)
	if err != nil {
		return WebhookResult{}, temporal.NewNonRetryableApplicationError("webhook signature: "+err.Error(), ErrWebhookBadSecret, nil)
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, req.URL, bytes.NewReader(body))
	if err != nil {
		err = redactCallbackError(err)
		return WebhookResult{}, temporal.NewNonRetryableApplicationError("webhook url: "+err.Error(), ErrWebhookRefused, err)
	}
	h := httpReq.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "cdnflow-webhooks/1")
	h.Set(standardwebhooks.HeaderWebhookID, req.MessageID)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	resp, err := w.httpClient().Do(httpReq)
	if err != nil {
		err = redactCallbackError(err)
		var refused *RefusedAddressError
		if errors.As(err, &refused) {
			return WebhookResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrWebhookRefused, err)
		}
		return WebhookResult{}, fmt.Errorf("webhook %s attempt %d: %w", req.MessageID, attempt, err)
	}
	// Read a little of the answer so the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		activity.GetLogger(ctx).Info("webhook not accepted", "id", req.MessageID, "status", resp.StatusCode, "attempt", attempt)
		return WebhookResult{}, fmt.Errorf("webhook %s: the receiver answered HTTP %d", req.MessageID, resp.StatusCode)
	}
	return WebhookResult{Status: resp.StatusCode, Attempts: attempt}, nil
}
