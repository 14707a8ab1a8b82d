package service

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/internal/netguard"
	"github.com/cdnflow/cdnflow/workflows"
)

// WebhookSecretPrefix starts every webhook signing secret: "whsec_" and
// the base64 of 32 random bytes (Standard Webhooks, "Signature scheme").
const WebhookSecretPrefix = "whsec_"

// webhookEvents are the event types a subscription may name
// (workflows/events.go).
var webhookEvents = []string{
	workflows.EventPurgeDone, workflows.EventPrewarmDone, workflows.EventReleaseStepDone,
	workflows.EventReleaseDone, workflows.EventDistributionState,
}

// webhookResolveTimeout bounds the DNS lookup of a webhook host at create.
const webhookResolveTimeout = 5 * time.Second

// WebhookRequest creates a subscription: appKey (a configured one), url
// (http or https, at most 1024 characters, not resolving to an internal
// address) and events (the types to receive; empty: all).
type WebhookRequest struct {
	AppKey string   `json:"appKey"`
	URL    string   `json:"url"`
	Events []string `json:"events,omitempty"`
}

// checkWebhook validates req and answers its subscription (no id yet).
func (s *Service) checkWebhook(ctx context.Context, req WebhookRequest) (workflows.WebhookSubscription, error) {
	sub := workflows.WebhookSubscription{AppKey: req.AppKey, URL: req.URL, Created: time.Now().UTC(), CreatedBy: CallerFrom(ctx).KeyID}
	if len(req.URL) > 1024 {
		return sub, invalid("url is longer than 1024 characters")
	}
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return sub, invalid("url %q is not an http(s) URL", redactWebhookURL(req.URL))
	}
	for _, e := range req.Events {
		if !slices.Contains(webhookEvents, e) {
			return sub, invalid("unknown event %q: use %s", e, strings.Join(webhookEvents, ", "))
		}
		if !slices.Contains(sub.Events, e) {
			sub.Events = append(sub.Events, e)
		}
	}
	if err := s.checkWebhookAddress(ctx, u.Hostname()); err != nil {
		return sub, err
	}
	return sub, nil
}

// checkWebhookAddress refuses a host that is, or resolves to, an address
// the callbacks' policy refuses (internal/netguard.Forbidden: loopback,
// private, link-local and metadata, multicast, reserved), unless
// AllowPrivateCallbacks. A name that does not resolve passes: every
// delivery checks each connection's address again (activities.CallbackClient),
// which also covers a DNS change after the create.
func (s *Service) checkWebhookAddress(ctx context.Context, host string) error {
	if s.config.AllowPrivateCallbacks {
		return nil
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		rctx, cancel := context.WithTimeout(ctx, webhookResolveTimeout)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupIPAddr(rctx, host)
		if err != nil {
			return nil
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	for _, ip := range ips {
		if netguard.Forbidden(ip) {
			return invalid("url host %s is or resolves to %s, a loopback, private, link-local or metadata address: refused", host, ip)
		}
	}
	return nil
}

// CreateWebhook subscribes req.URL to req.AppKey's job events and answers
// the subscription with its signing secret, shown this once: it is kept
// only in the delivery workflow's input, sealed at rest by the payload
// codec. Errors: *ValidationError (bad input, internal address, the
// appKey's MaxWebhooksPerAppKey reached), ErrForbidden without admin on
// the appKey, or Temporal's.
func (s *Service) CreateWebhook(ctx context.Context, req WebhookRequest) (workflows.WebhookSubscription, string, error) {
	if _, ok := s.config.AppKeys[req.AppKey]; !ok {
		return workflows.WebhookSubscription{}, "", invalid("appKey %q is not a configured appKey", req.AppKey)
	}
	if err := authorize(ctx, VerbAdmin, req.AppKey); err != nil {
		return workflows.WebhookSubscription{}, "", err
	}
	sub, err := s.checkWebhook(ctx, req)
	if err != nil {
		return sub, "", err
	}
	var id [8]byte
	var key [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return sub, "", fmt.Errorf("webhook id: %w", err)
	}
	if _, err := rand.Read(key[:]); err != nil {
		return sub, "", fmt.Errorf("webhook secret: %w", err)
	}
	sub.ID = "wh_" + hex.EncodeToString(id[:])
	secret := WebhookSecretPrefix + base64.StdEncoding.EncodeToString(key[:])
	if err := s.updateWebhooks(ctx, req.AppKey, workflows.UpdateWebhookCreate, workflows.WebhookCreate{Sub: sub, Secret: secret}); err != nil {
		return sub, "", err
	}
	return sub, secret, nil
}

// DeleteWebhook removes subscription id of appKey; its queued events are
// not delivered. Errors: ErrNotFound, ErrForbidden, Temporal's.
func (s *Service) DeleteWebhook(ctx context.Context, appKey, id string) error {
	if err := s.configuredAppKey(appKey); err != nil {
		return err
	}
	if err := authorize(ctx, VerbAdmin, appKey); err != nil {
		return err
	}
	if !workflows.ValidWebhookID(id) {
		return fmt.Errorf("webhook %s: %w", id, ErrNotFound)
	}
	return s.updateWebhooks(ctx, appKey, workflows.UpdateWebhookDelete, id)
}

// configuredAppKey answers ErrNotFound for an appKey that is not
// configured (checked before the scope: every caller gets the same answer).
func (s *Service) configuredAppKey(appKey string) error {
	if _, ok := s.config.AppKeys[appKey]; !ok {
		return fmt.Errorf("appKey %q: %w", appKey, ErrNotFound)
	}
	return nil
}

func (s *Service) updateWebhooks(ctx context.Context, appKey, update string, arg any) error {
	id := workflows.WebhooksWorkflowID(appKey)
	start := s.temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID: id, TaskQueue: s.config.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, workflows.WebhooksWorkflow, workflows.WebhookTable{AppKey: appKey})
	h, err := s.temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			WorkflowID: id, UpdateName: update, Args: []any{arg},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	var appErr *temporal.ApplicationError
	switch {
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrUnknownWebhook:
		return fmt.Errorf("webhook: %w", ErrNotFound)
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrWebhookTableFull:
		return invalid("%s", appErr.Message())
	case err != nil:
		return fmt.Errorf("webhooks of %s: %s: %w", appKey, update, err)
	}
	return nil
}

// ListWebhooks answers appKey's subscriptions (never their secrets);
// none yet is an empty list. Errors: ErrForbidden without read on the
// appKey, ErrNotFound for an appKey not configured, Temporal's.
func (s *Service) ListWebhooks(ctx context.Context, appKey string) ([]workflows.WebhookSubscription, error) {
	if err := s.configuredAppKey(appKey); err != nil {
		return nil, err
	}
	if err := authorize(ctx, VerbRead, appKey); err != nil {
		return nil, err
	}
	v, err := s.query(ctx, workflows.WebhooksWorkflowID(appKey), workflows.QueryWebhooks)
	if isNotFound(err) {
		return []workflows.WebhookSubscription{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("webhooks of %s: %w", appKey, err)
	}
	var t workflows.WebhookTable
	if err := v.Get(&t); err != nil {
		return nil, fmt.Errorf("webhooks of %s: decode: %w", appKey, err)
	}
	if t.Subs == nil {
		t.Subs = []workflows.WebhookSubscription{}
	}
	return t.Subs, nil
}

// WebhookDeliveries answers the delivery log of subscription id of
// appKey: counters and the last WebhookLogSize deliveries. Errors:
// ErrNotFound for an id the appKey does not have, ErrForbidden,
// Temporal's.
func (s *Service) WebhookDeliveries(ctx context.Context, appKey, id string) (workflows.WebhookLog, error) {
	subs, err := s.ListWebhooks(ctx, appKey)
	if err != nil {
		return workflows.WebhookLog{}, err
	}
	if !slices.ContainsFunc(subs, func(w workflows.WebhookSubscription) bool { return w.ID == id }) {
		return workflows.WebhookLog{}, fmt.Errorf("webhook %s: %w", id, ErrNotFound)
	}
	v, err := s.query(ctx, workflows.WebhookDeliveryWorkflowID(appKey, id), workflows.QueryWebhookLog)
	if err != nil {
		return workflows.WebhookLog{}, fmt.Errorf("webhook %s deliveries: %w", id, err)
	}
	var l workflows.WebhookLog
	if err := v.Get(&l); err != nil {
		return l, fmt.Errorf("webhook %s deliveries: decode: %w", id, err)
	}
	return l, nil
}

// redactWebhookURL is raw without userinfo, query and fragment, for
// messages ("<url>" when it does not parse).
func redactWebhookURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<url>"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}
